package slim

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
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
	if len(got.Spec.Http) != 1 {
		t.Errorf("%d routes cached, want one holding the destinations", len(got.Spec.Http))
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

// A cached policy keeps the digests of its rules, which agree with those computed from a
// policy read elsewhere, and no rule; a RequestAuthentication keeps only its state's digest.
func TestPoliciesKeepTheDigestsOfStateAndRules(t *testing.T) {
	labels := ownership.Labels(types.NamespacedName{Namespace: "team", Name: "orders"})
	policy := func(paths ...string) *securityclientv1.AuthorizationPolicy {
		ap := &securityclientv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders-authz", Labels: labels,
			Annotations: map[string]string{RuleDigestsAnnotation: "forged"}}}
		for _, p := range paths {
			ap.Spec.Rules = append(ap.Spec.Rules, &securityv1.Rule{To: []*securityv1.Rule_To{{Operation: &securityv1.Operation{Paths: []string{p}}}}})
		}
		return ap
	}
	want, err := ruleDigests(policy("/a", "/b").Spec.Rules)
	if err != nil {
		t.Fatal(err)
	}
	out, err := AuthorizationPolicy(policy("/a", "/b"))
	if err != nil {
		t.Fatal(err)
	}
	cached := out.(*securityclientv1.AuthorizationPolicy)
	if cached.Spec.Rules != nil {
		t.Errorf("rules kept in the cache")
	}
	got, err := RuleDigests(cached)
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(got, want) || len(got) != 2 || got[0] == got[1] {
		t.Errorf("cached rule digests %v, want %v (two different rules)", got, want)
	}
	if cached.Annotations[apply.StateDigestAnnotation] == "" {
		t.Errorf("no state digest: %v", cached.Annotations)
	}
	other, _ := AuthorizationPolicy(policy("/a", "/c"))
	if cached.Annotations[apply.StateDigestAnnotation] == other.(*securityclientv1.AuthorizationPolicy).Annotations[apply.StateDigestAnnotation] {
		t.Errorf("two policies with different rules share a state digest")
	}
	// A policy without rules (deny nothing, allow nothing) keeps an empty list.
	empty, _ := AuthorizationPolicy(policy())
	if rules, _ := RuleDigests(empty.(*securityclientv1.AuthorizationPolicy)); len(rules) != 0 {
		t.Errorf("rules %v of a policy without rules", rules)
	}

	ra := &securityclientv1.RequestAuthentication{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders-jwt", Labels: labels}}
	ra.Spec.JwtRules = []*securityv1.JWTRule{{Issuer: "https://idp.example.com"}}
	out, err = RequestAuthentication(ra)
	if err != nil {
		t.Fatal(err)
	}
	slimRA := out.(*securityclientv1.RequestAuthentication)
	if slimRA.Spec.JwtRules != nil || len(slimRA.Annotations) != 1 || slimRA.Annotations[apply.StateDigestAnnotation] == "" {
		t.Errorf("a RequestAuthentication keeps more than the digest of its state: %+v", slimRA)
	}
}

// The copy client-side kubectl apply keeps of an applied APIRule stays out of the cache; other
// annotations stay, and so does the copy on kinds that do not grow with the cluster.
func TestDefaultDropsKubectlsCopyOfAppliedAPIRules(t *testing.T) {
	applied := func() map[string]string {
		return map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"v1"}`, "note": "x"}
	}
	rule := &apiv2.APIRule{ObjectMeta: metav1.ObjectMeta{Name: "orders", Annotations: applied()}}
	if _, err := Default(rule); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"note": "x"}; !cmp.Equal(rule.GetAnnotations(), want) {
		t.Errorf("the APIRule keeps annotations %v, want %v", rule.GetAnnotations(), want)
	}
	mesh := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Annotations: applied()}}
	if _, err := Default(mesh); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(mesh.GetAnnotations(), applied()) {
		t.Errorf("a ConfigMap's annotations changed to %v", mesh.GetAnnotations())
	}
}

// A Service is cached as its identity, labels, selector and port numbers: what the gatherer
// and the event mappers read (model.ServiceFromCore, index.ServiceSelector).
func TestServiceKeepsSelectorAndPortNumbers(t *testing.T) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders", UID: "u1", ResourceVersion: "3",
			Labels:        map[string]string{"app": "orders"},
			Annotations:   map[string]string{corev1.LastAppliedConfigAnnotation: `{"apiVersion":"v1"}`, "note": "x"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: corev1.ServiceSpec{
			Selector:  map[string]string{"app": "orders", "tier": "api"},
			ClusterIP: "10.0.0.12", ClusterIPs: []string{"10.0.0.12"}, Type: corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 8000, Protocol: corev1.ProtocolTCP},
				{Name: "grpc", Port: 9000, AppProtocol: ptr("grpc")},
			},
		},
	}
	got, err := Service(svc)
	if err != nil {
		t.Fatal(err)
	}
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders", UID: "u1", ResourceVersion: "3", Labels: map[string]string{"app": "orders"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "orders", "tier": "api"},
			Ports:    []corev1.ServicePort{{Port: 8000}, {Port: 9000}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the slim Service (-want +got):\n%s", diff)
	}
}

func ptr[T any](v T) *T { return &v }
