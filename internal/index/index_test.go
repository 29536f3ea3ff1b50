package index

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/lookup"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

func TestEveryDefinitionHasAScope(t *testing.T) {
	for _, d := range Definitions(model.Options{}, types.NamespacedName{Namespace: "istio-system", Name: "istio"}) {
		if err := d.check(); err != nil {
			t.Errorf("index %s on %T: %v", d.Index.Name(), d.Object, err)
		}
	}
	none := func(client.Object) []string { return nil }
	for want, d := range map[string]Definition{
		"no scope":                          {Object: &corev1.Pod{}, Index: lookup.Plain("unscoped"), Extract: none},
		"a hashed index has its own values": {Object: &corev1.Pod{}, Index: lookup.Hashed("twice", none), Extract: none, Scope: WithinNamespace},
		"a plain one needs Extract":         {Object: &corev1.Pod{}, Index: lookup.Plain("none"), Scope: WithinNamespace},
	} {
		if err := Register(context.Background(), nil, []Definition{d}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Register took index %s: %v, want an error saying %q", d.Index.Name(), err, want)
		}
	}
}

func TestCacheKeysAreInTheFormOfTheScope(t *testing.T) {
	labels := func(client.Object) []string { return []string{"app=web"} }
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0"}}
	for _, c := range []struct {
		scope Scope
		obj   client.Object
		want  string
	}{
		{WithinNamespace, pod, "shop/app=web"},
		{AcrossNamespaces, pod, "__all_namespaces/app=web"},
		// A cluster-scoped object has no namespace: the reader looks it up across them.
		{WithinNamespace, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}, "__all_namespaces/app=web"},
	} {
		keys, err := Definition{Index: lookup.Plain("f"), Extract: labels, Scope: c.scope}.CacheKeys(c.obj)
		if err != nil || len(keys) != 1 || keys[0] != c.want {
			t.Errorf("scope %d, %T: keys %v (%v), want [%s]", c.scope, c.obj, keys, err, c.want)
		}
	}
}

func TestScopeCheckRefusesALookupOfTheOtherScope(t *testing.T) {
	check := ScopeCheck(Definitions(model.Options{}, types.NamespacedName{Namespace: "istio-system", Name: "istio"}))
	lookup := func(field, namespace string) error {
		return check(&client.ListOptions{FieldSelector: fields.OneTermEqualSelector(field, "v"), Namespace: namespace})
	}
	for _, c := range []struct {
		field, namespace string
		refused          bool
	}{
		{PodLabel.Field(), "shop", false},
		{PodLabel.Field(), "", true},
		{ServiceSelector.Field(), "", true},
		{APIRuleHost.Field(), "", false},
		{APIRuleHost.Field(), "shop", true},
		{"metadata.name", "shop", false}, // not an index of the operator's
	} {
		if err := lookup(c.field, c.namespace); (err != nil) != c.refused {
			t.Errorf("lookup of %s in namespace %q: error %v, want refused %v", c.field, c.namespace, err, c.refused)
		}
	}
	if err := check(&client.ListOptions{Namespace: "shop"}); err != nil {
		t.Errorf("a list without a field selector: %v", err)
	}
}
