package render

import (
	"context"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clienttesting "k8s.io/client-go/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/kubescheme"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// clusterReader is a reader over the objects, as a cluster would answer LoadCluster's reads.
func clusterReader(t *testing.T, objs ...client.Object) client.Reader {
	t.Helper()
	scheme, err := kubescheme.New()
	if err != nil {
		t.Fatal(err)
	}
	tracker := clienttesting.NewObjectTracker(scheme, serializer.NewCodecFactory(scheme).UniversalDecoder())
	return fake.NewClientBuilder().WithScheme(scheme).WithObjectTracker(tracker).WithObjects(objs...).Build()
}

// A cluster without the ReferenceGrant API: a grant cannot consent there, as in the operator,
// which decides it at start; with the API, the grant consents.
func TestLoadClusterFollowsTheReferenceGrantAPI(t *testing.T) {
	port := uint32(8000)
	backend := "backend"
	rule := &apiv2.APIRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cross"},
		Spec: apiv2.APIRuleSpec{
			Hosts:   []apiv2.Host{"orders.example.com"},
			Gateway: ptr(apiv2.GatewayReference("istio-system/public")),
			Service: &apiv2.Service{Name: "orders", Namespace: &backend, Port: port},
			Rules:   []apiv2.Rule{{Path: "/orders", Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: ptr(true)}},
		},
	}
	grant := &gatewayv1beta1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: "backend", Name: "from-shop"},
		Spec: gatewayv1beta1.ReferenceGrantSpec{
			From: []gatewayv1beta1.ReferenceGrantFrom{{Group: gatewayv1beta1.Group(apiv2.GroupVersion.Group), Kind: "APIRule", Namespace: "shop"}},
			To:   []gatewayv1beta1.ReferenceGrantTo{{Kind: "Service"}},
		},
	}
	reader := clusterReader(t, rule, grant,
		fixtures.Gateway("istio-system", "public", "*.example.com"),
		fixtures.Service("backend", "orders", 8000), fixtures.SidecarPod("backend", "orders-0", "orders"),
		// Nothing of this namespace is referenced: its Pods are not read.
		fixtures.SidecarPod("unrelated", "other-0", "other"))

	for name, c := range map[string]struct {
		served bool
		want   bool // a CrossNamespaceBackend finding
	}{"not served": {false, true}, "served": {true, false}} {
		mapper := meta.NewDefaultRESTMapper(nil)
		if c.served {
			gv := gatewayv1beta1.GroupVersion
			mapper.Add(schema.GroupVersionKind{Group: gv.Group, Version: gv.Version, Kind: "ReferenceGrant"}, meta.RESTScopeNamespace)
		}
		bundle, err := LoadCluster(context.Background(), reader, mapper, DefaultOptions())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, obj := range bundle.Objects {
			if obj.GetNamespace() == "unrelated" {
				t.Errorf("%s: read %T %s/%s of a namespace no APIRule references", name, obj, obj.GetNamespace(), obj.GetName())
			}
		}
		results, err := Render(bundle, DefaultOptions())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := slices.ContainsFunc(results[0].Findings, func(f check.Finding) bool {
			return f.Reason == conditions.ReasonCrossNamespaceBackend
		})
		if got != c.want {
			t.Errorf("%s: CrossNamespaceBackend reported: %v, want %v; findings: %v", name, got, c.want, FindingLines(results))
		}
		routed := slices.ContainsFunc(results[0].Objects, func(obj translate.Object) bool {
			return obj.GetObjectKind().GroupVersionKind().Kind == "VirtualService"
		})
		if routed == c.want {
			t.Errorf("%s: a VirtualService rendered: %v, want %v; findings: %v", name, routed, !c.want, FindingLines(results))
		}
	}
}

func ptr[T any](v T) *T { return &v }
