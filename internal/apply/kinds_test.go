package apply

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/apirule-operator/apirule-operator/internal/translate"
)

func kindNames(kinds []Kind) string {
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = k.GVK.Kind
	}
	return strings.Join(names, ",")
}

func TestKindOrders(t *testing.T) {
	byApply := slices.Clone(Kinds)
	slices.SortFunc(byApply, func(a, b Kind) int { return a.ApplyRank - b.ApplyRank })
	if got, want := kindNames(byApply), "RequestAuthentication,AuthorizationPolicy,Secret,Gateway,VirtualService"; got != want {
		t.Errorf("apply order %s, want %s: tokens are validated before a policy requires them, "+
			"policies and the CA bundle are in place before the Gateway and the route", got, want)
	}
	if got, want := kindNames(inPruneOrder()), "VirtualService,Gateway,AuthorizationPolicy,RequestAuthentication,Secret"; got != want {
		t.Errorf("prune order %s, want %s: the route goes before what protects it", got, want)
	}
	applyRanks, pruneRanks := map[int]bool{}, map[int]bool{}
	for _, k := range Kinds {
		if applyRanks[k.ApplyRank] || pruneRanks[k.PruneRank] {
			t.Errorf("%s shares a rank with another kind: the order between them would be undefined", k.GVK.Kind)
		}
		applyRanks[k.ApplyRank], pruneRanks[k.PruneRank] = true, true
	}
}

// testScheme knows every type translate emits.
func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, networkingclientv1.AddToScheme, securityclientv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return scheme
}

func TestEveryTranslatedKindIsInTheTable(t *testing.T) {
	scheme := testScheme(t)
	// Each field of translate.Objects is a list of one kind; a field added there without a
	// row here would be applied in no defined order and never pruned.
	fields := reflect.TypeOf(translate.Objects{})
	for i := range fields.NumField() {
		f := fields.Field(i)
		obj := reflect.New(f.Type.Elem().Elem()).Interface().(client.Object)
		gvk, err := apiutil.GVKForObject(obj, scheme)
		if err != nil {
			t.Fatalf("translate.Objects.%s: %v", f.Name, err)
		}
		kind, ok := KindOf(gvk)
		if !ok {
			t.Errorf("translate.Objects.%s holds %s, which the kinds table does not list", f.Name, gvk)
			continue
		}
		listGVK, err := apiutil.GVKForObject(kind.List, scheme)
		if err != nil {
			t.Fatal(err)
		}
		if listGVK.Kind != gvk.Kind+"List" || listGVK.GroupVersion() != gvk.GroupVersion() {
			t.Errorf("%s is listed with a %s", gvk, listGVK)
		}
	}
}

// oneOfEach returns translate.Objects with two objects of every kind, named <kind>-a and
// <kind>-b, with apiVersion and kind set as translate sets them.
func oneOfEach(t *testing.T) translate.Objects {
	t.Helper()
	scheme := testScheme(t)
	var objects translate.Objects
	fields := reflect.ValueOf(&objects).Elem()
	for i := range fields.NumField() {
		f := fields.Field(i)
		for _, suffix := range []string{"a", "b"} {
			obj := reflect.New(f.Type().Elem().Elem())
			o := obj.Interface().(client.Object)
			gvk, err := apiutil.GVKForObject(o, scheme)
			if err != nil {
				t.Fatal(err)
			}
			o.GetObjectKind().SetGroupVersionKind(gvk)
			o.SetNamespace("ns")
			o.SetName(gvk.Kind + "-" + suffix)
			f.Set(reflect.Append(f, obj))
		}
	}
	return objects
}

func TestInApplyOrderSortsAllByKindAndKeepsTheOrderWithinAKind(t *testing.T) {
	all := oneOfEach(t).All()
	// Reversed, so that sorting has something to do.
	slices.Reverse(all)
	var names []string
	for _, obj := range InApplyOrder(all) {
		names = append(names, obj.GetName())
	}
	want := "RequestAuthentication-b,RequestAuthentication-a,AuthorizationPolicy-b,AuthorizationPolicy-a," +
		"Secret-b,Secret-a,Gateway-b,Gateway-a,VirtualService-b,VirtualService-a"
	if got := strings.Join(names, ","); got != want {
		t.Errorf("InApplyOrder: %s, want %s", got, want)
	}
	if all[0].GetName() != "VirtualService-b" {
		t.Errorf("InApplyOrder sorted its argument in place")
	}
}

func TestApplyRefusesAKindNotInTheTable(t *testing.T) {
	cm := &corev1.ConfigMap{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"}}
	cm.Namespace, cm.Name = "ns", "stray"
	// No client: the kind is checked before anything is read or written.
	_, err := (&Applier{}).Apply(t.Context(), []client.Object{cm})
	if err == nil || !strings.Contains(err.Error(), "not a kind of generated object") {
		t.Errorf("Apply of a ConfigMap: %v, want a refusal", err)
	}
}
