package ownership

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
)

func TestChildNameIsStableAndDistinct(t *testing.T) {
	owner := types.NamespacedName{Namespace: "shop", Name: "httpbin"}
	first := ChildName(owner, "route")
	if again := ChildName(owner, "route"); again != first {
		t.Fatalf("ChildName is not stable: %q then %q", first, again)
	}
	if !strings.HasPrefix(first, "httpbin-route-") {
		t.Fatalf("ChildName %q does not start with <apirule>-<purpose>-", first)
	}
	others := []string{
		ChildName(types.NamespacedName{Namespace: "other", Name: "httpbin"}, "route"),
		ChildName(owner, "authz"),
		ChildName(owner, "route", "x"),
	}
	for _, other := range others {
		if other == first {
			t.Fatalf("ChildName collides: %q", other)
		}
	}
}

func TestChildNameOfLongOwnerIsAValidLabel(t *testing.T) {
	long := strings.Repeat("a", 50) + "-" + strings.Repeat("b", 12)
	a := ChildName(types.NamespacedName{Namespace: "ns", Name: long}, "authz", "x")
	b := ChildName(types.NamespacedName{Namespace: "ns", Name: long + "c"}, "authz", "x")
	for _, name := range []string{a, b} {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			t.Fatalf("ChildName %q is not a DNS label: %v", name, errs)
		}
	}
	if a == b {
		t.Fatalf("shortened names collide: %q", a)
	}
}
