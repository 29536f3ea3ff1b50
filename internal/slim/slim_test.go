package slim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/api/networking/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

func route(labels map[string]string) *networkingclientv1.VirtualService {
	controller := true
	return &networkingclientv1.VirtualService{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "team", Name: "orders-route", UID: "u1", ResourceVersion: "7", Labels: labels,
			Annotations:     map[string]string{apply.StateDigestAnnotation: "forged", "note": "x"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "gateway.apirule.io/v2", Kind: "APIRule", Name: "orders", UID: "o1", Controller: &controller}},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "apirule-operator"}},
		},
		Spec: networkingv1.VirtualService{
			Hosts:    []string{"orders.example.com"},
			Gateways: []string{"istio-system/public"},
			Http: []*networkingv1.HTTPRoute{
				{Match: []*networkingv1.HTTPMatchRequest{{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/api"}}}},
					Headers: &networkingv1.Headers{Request: &networkingv1.Headers_HeaderOperations{Set: map[string]string{"x-apirule-route": "t1"}}},
					Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "orders.team.svc.cluster.local",
						Port: &networkingv1.PortSelector{Number: 8080}}}}},
				{Route: []*networkingv1.HTTPRouteDestination{{Destination: &networkingv1.Destination{Host: "other.team.svc.cluster.local"}}}},
			},
		},
	}
}

// The operator's own routes are cached as what is read of them, with the digest of the state
// the API server sent; a digest stored on the object itself is not believed.
func TestVirtualServiceKeepsWhatIsReadOfTheOperatorsRoutes(t *testing.T) {
	labels := ownership.Labels(types.NamespacedName{Namespace: "team", Name: "orders"})
	original := route(labels)
	original.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
	state, err := manifest.ToUnstructured(original)
	if err != nil {
		t.Fatal(err)
	}
	wantDigest, err := apply.StateDigest(state.Object)
	if err != nil {
		t.Fatal(err)
	}
	out, err := VirtualService(route(labels))
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*networkingclientv1.VirtualService)
	if got.Annotations[apply.StateDigestAnnotation] != wantDigest || len(got.Annotations) != 1 {
		t.Errorf("annotations %v, want only the digest %s of the state sent", got.Annotations, wantDigest)
	}
	if got.ManagedFields != nil {
		t.Errorf("managedFields kept")
	}
	if diff := cmp.Diff(original.OwnerReferences, got.OwnerReferences); diff != "" {
		t.Errorf("owner references (-want +got):\n%s", diff)
	}
	if !cmp.Equal(got.Spec.Hosts, original.Spec.Hosts) || !cmp.Equal(got.Spec.Gateways, original.Spec.Gateways) {
		t.Errorf("hosts %v, gateways %v", got.Spec.Hosts, got.Spec.Gateways)
	}
	var hosts []string
	for _, r := range got.Spec.Http {
		if r.Match != nil || r.Headers != nil {
			t.Errorf("route kept matches or headers: %v", r)
		}
		for _, d := range r.Route {
			if d.Destination.Port != nil {
				t.Errorf("destination kept its port: %v", d)
			}
			hosts = append(hosts, d.Destination.Host)
		}
	}
	if want := []string{"orders.team.svc.cluster.local", "other.team.svc.cluster.local"}; !cmp.Equal(hosts, want) {
		t.Errorf("destination hosts %v, want %v", hosts, want)
	}

	// client-go may hand the transform's own output back to it: it comes back as it is.
	again, err := VirtualService(got)
	if err != nil {
		t.Fatal(err)
	}
	if again != got || got.Annotations[apply.StateDigestAnnotation] != wantDigest {
		t.Errorf("transforming the transform's output changed it: digest %s, want %s", got.Annotations[apply.StateDigestAnnotation], wantDigest)
	}

	// Another state, another digest.
	changed := route(labels)
	changed.Spec.Http[0].Headers.Request.Set["x-apirule-route"] = "t2"
	out, err = VirtualService(changed)
	if err != nil {
		t.Fatal(err)
	}
	if out.(*networkingclientv1.VirtualService).Annotations[apply.StateDigestAnnotation] == wantDigest {
		t.Errorf("a changed route header kept the digest")
	}
}

// Of a VirtualService the operator does not manage, only hosts and gateways are cached.
func TestVirtualServiceKeepsHostsAndGatewaysOfOthers(t *testing.T) {
	out, err := VirtualService(route(map[string]string{"app": "someone-elses"}))
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*networkingclientv1.VirtualService)
	if got.Spec.Http != nil || got.Annotations != nil || got.OwnerReferences != nil {
		t.Errorf("kept more than hosts and gateways: %+v", got)
	}
	if len(got.Spec.Hosts) != 1 || len(got.Spec.Gateways) != 1 {
		t.Errorf("hosts %v, gateways %v", got.Spec.Hosts, got.Spec.Gateways)
	}
}
