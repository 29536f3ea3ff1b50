package model

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

func TestConsented(t *testing.T) {
	orders := types.NamespacedName{Namespace: "backend", Name: "orders"}
	grant := func(namespace, from, name string) ReferenceGrant {
		return ReferenceGrant{Namespace: namespace,
			From: []GrantFrom{{Group: apiv2.GroupVersion.Group, Kind: APIRuleKind, Namespace: from}},
			To:   []GrantTo{{Kind: "Service", Name: name}}}
	}
	for name, c := range map[string]struct {
		opts   Options
		grants []ReferenceGrant
		from   string
		want   bool
	}{
		"its own namespace":                        {from: "backend", want: true},
		"another namespace, no grant":              {from: "shop", want: false},
		"--allow-cross-namespace-backends":         {opts: Options{CrossNamespaceBackends: true}, from: "shop", want: true},
		"a grant for every Service":                {grants: []ReferenceGrant{grant("backend", "shop", "")}, from: "shop", want: true},
		"a grant for this Service":                 {grants: []ReferenceGrant{grant("backend", "shop", "orders")}, from: "shop", want: true},
		"a grant for another Service":              {grants: []ReferenceGrant{grant("backend", "shop", "payments")}, from: "shop", want: false},
		"a grant for another namespace's APIRules": {grants: []ReferenceGrant{grant("backend", "admin", "")}, from: "shop", want: false},
		"a grant in another namespace":             {grants: []ReferenceGrant{grant("shop", "shop", "")}, from: "shop", want: false},
	} {
		if got := Consented(c.opts, c.grants, c.from, orders); got != c.want {
			t.Errorf("%s: Consented = %v, want %v", name, got, c.want)
		}
	}
}
