package controllers

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestHostRegistryClaimsAtomically(t *testing.T) {
	r := newHostRegistry()
	a := types.NamespacedName{Namespace: "shop", Name: "a"}
	b := types.NamespacedName{Namespace: "shop", Name: "b"}
	if held := r.claim(a, []string{"x.example.com", "y.example.com"}); held != nil {
		t.Fatalf("first claim refused: %v", held)
	}
	if held := r.claim(b, []string{"z.example.com", "y.example.com"}); len(held) != 1 || held[0] != "y.example.com" {
		t.Fatalf("second claim: held %v, want [y.example.com]", held)
	}
	if _, ok := r.holder("z.example.com", a); ok {
		t.Fatal("a refused claim must not record any of its hosts")
	}
	if owner, ok := r.holder("y.example.com", b); !ok || owner != a {
		t.Fatalf("holder of y.example.com = %v %v, want %v", owner, ok, a)
	}
	if _, ok := r.holder("y.example.com", a); ok {
		t.Fatal("an owner is not a holder against itself")
	}
	r.set(a, []string{"x.example.com"})
	if held := r.claim(b, []string{"y.example.com"}); held != nil {
		t.Fatalf("y.example.com was released but the claim was refused: %v", held)
	}
	r.set(a, nil)
	if _, ok := r.holder("x.example.com", b); ok {
		t.Fatal("hosts of a deleted owner must be released")
	}
}
