package slim

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/protobuf/testing/protocmp"
	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// stored is an object as the API server stores what the operator sent: its unstructured form.
func stored(t *testing.T, obj client.Object) *unstructured.Unstructured {
	t.Helper()
	u, err := manifest.ToUnstructured(obj.DeepCopyObject().(client.Object))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func storedPolicy() *securityclientv1.AuthorizationPolicy {
	labels := ownership.Labels(types.NamespacedName{Namespace: "team", Name: "orders"})
	ap := &securityclientv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders-authz", UID: "p1",
		ResourceVersion: "9", Labels: labels, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "apirule-operator"}}}}
	ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": "orders"}}
	for _, p := range []string{"/a", "/b"} {
		ap.Spec.Rules = append(ap.Spec.Rules, &securityv1.Rule{To: []*securityv1.Rule_To{{Operation: &securityv1.Operation{Paths: []string{p}, Methods: []string{"GET"}}}}})
	}
	ap.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"))
	return ap
}

// From what the API server stored of what the operator sent, the cache builds exactly what
// the typed transforms build from the typed object: the same identity, owner, hosts,
// gateways and destinations, and the same digests of state and rules. A difference would make
// every child look changed.
func TestStoredObjectsSlimAsTypedOnes(t *testing.T) {
	managed := route(ownership.Labels(types.NamespacedName{Namespace: "team", Name: "orders"}))
	managed.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
	foreign := route(map[string]string{"app": "other"})
	foreign.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
	authentication := &securityclientv1.RequestAuthentication{ObjectMeta: managed.ObjectMeta}
	authentication.Spec.JwtRules = []*securityv1.JWTRule{{Issuer: "https://idp.example.com", JwksUri: "https://idp.example.com/jwks"}}
	authentication.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("RequestAuthentication"))
	for name, c := range map[string]struct {
		obj        client.Object
		typed      func(any) (any, error)
		fromStored func(*unstructured.Unstructured) (client.Object, error)
	}{
		"the operator's VirtualService": {managed, VirtualService, virtualServiceFromStored},
		"another VirtualService":        {foreign, VirtualService, virtualServiceFromStored},
		"an AuthorizationPolicy":        {storedPolicy(), AuthorizationPolicy, authorizationPolicyFromStored},
		"a RequestAuthentication":       {authentication, RequestAuthentication, requestAuthenticationFromStored},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := c.typed(c.obj.DeepCopyObject())
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.fromStored(stored(t, c.obj))
			if err != nil {
				t.Fatal(err)
			}
			wantObj := want.(client.Object)
			// The typed transform keeps the apiVersion and kind it was given; the cache sets
			// them on what it returns either way.
			wantObj.GetObjectKind().SetGroupVersionKind(got.GetObjectKind().GroupVersionKind())
			if diff := cmp.Diff(wantObj, got, protocmp.Transform()); diff != "" {
				t.Errorf("built from the stored object (+) differs from the typed transform's (-):\n%s", diff)
			}
		})
	}
}

// A field Istio's types do not know, which a newer CRD lets the API server store, changes the
// digest of the stored state; the typed transform cannot see it.
func TestAFieldTheTypesDoNotKnowChangesTheStoredDigest(t *testing.T) {
	policy := storedPolicy()
	plain, err := authorizationPolicyFromStored(stored(t, policy))
	if err != nil {
		t.Fatal(err)
	}
	widened := stored(t, policy)
	if err := unstructured.SetNestedField(widened.Object, "OFF", "spec", "futureMode"); err != nil {
		t.Fatal(err)
	}
	got, err := authorizationPolicyFromStored(widened)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetAnnotations()[apply.StateDigestAnnotation] == plain.GetAnnotations()[apply.StateDigestAnnotation] {
		t.Error("the stored digest ignores spec.futureMode")
	}
	typed, err := AuthorizationPolicy(policy.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	if typed.(client.Object).GetAnnotations()[apply.StateDigestAnnotation] != plain.GetAnnotations()[apply.StateDigestAnnotation] {
		t.Error("the stored and the typed digest of the same policy differ")
	}
}

// A list of a stored kind holds the slim typed objects built from what was stored.
func TestStoredListHoldsSlimTypedObjects(t *testing.T) {
	policy := storedPolicy()
	u := stored(t, policy)
	u.SetResourceVersion("9")
	scheme := runtime.NewScheme()
	kinds := map[schema.GroupVersionResource]string{storedKinds[policy.GroupVersionKind()].resource: "AuthorizationPolicyList"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(scheme, kinds, u)
	kind := storedKinds[policy.GroupVersionKind()]
	lw := storedListWatch(dyn.Resource(kind.resource), kind, nil)
	out, err := lw.ListWithContext(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, ok := out.(*securityclientv1.AuthorizationPolicyList)
	if !ok || len(list.Items) != 1 {
		t.Fatalf("listed %T %+v, want one AuthorizationPolicy", out, out)
	}
	want, err := AuthorizationPolicy(policy.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	got := list.Items[0]
	if got.Name != policy.Name || got.Spec.Rules != nil ||
		got.Annotations[apply.StateDigestAnnotation] != want.(client.Object).GetAnnotations()[apply.StateDigestAnnotation] ||
		got.Annotations[RuleDigestsAnnotation] != want.(client.Object).GetAnnotations()[RuleDigestsAnnotation] {
		t.Errorf("listed %+v, want the slim policy %+v", got, want)
	}
}

// Restrictions the replaced lists and watches would not apply are refused, not ignored, and
// so is a transform of their own.
func TestNewInformerRefusesRestrictionsItWouldIgnore(t *testing.T) {
	dyn := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme())
	pods := kubefake.NewClientset().CoreV1()
	for _, obj := range []client.Object{&securityclientv1.AuthorizationPolicy{}, PodMetadata()} {
		if _, err := NewInformer(dyn, pods, map[client.Object]cache.ByObject{obj: {Label: labels.Everything()}}); err != nil {
			t.Errorf("a label selector of %T refused: %v", obj, err)
		}
		for name, opts := range map[string]cache.ByObject{
			"a field selector": {Field: fields.OneTermEqualSelector("metadata.name", "x")},
			"namespaces":       {Namespaces: map[string]cache.Config{"team": {}}},
			"a transform":      {Transform: AuthorizationPolicy},
		} {
			if _, err := NewInformer(dyn, pods, map[client.Object]cache.ByObject{obj: opts}); err == nil {
				t.Errorf("%s of %T accepted", name, obj)
			}
		}
	}
}

// A replaced kind keyed in another form than the one NewInformer replaces would be a second
// entry of the kind: refused.
func TestNewInformerRefusesAReplacedKindInAnotherForm(t *testing.T) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
	for _, obj := range []client.Object{u, &corev1.Pod{}} {
		if _, err := NewInformer(dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), kubefake.NewClientset().CoreV1(),
			map[client.Object]cache.ByObject{obj: {}}); err == nil {
			t.Errorf("a %T of a replaced kind accepted", obj)
		}
	}
}

// NewInformer gives every kind whose list and watch it replaces a transform that passes the
// slim objects as they are, those byObject names and those it does not, and leaves the others'
// transforms and restrictions alone. With a typed transform, a slim VirtualService handed
// to it again would lose its digest; with the default one, every digest would be dropped.
func TestNewInformerPassesWhatItsListsAndWatchesSlimmed(t *testing.T) {
	byObject := map[client.Object]cache.ByObject{
		&securityclientv1.AuthorizationPolicy{}: {Label: labels.Everything()},
		&corev1.Service{}:                       {Transform: Service},
	}
	if _, err := NewInformer(dynamicfake.NewSimpleDynamicClient(runtime.NewScheme()), kubefake.NewClientset().CoreV1(), byObject); err != nil {
		t.Fatal(err)
	}
	slimmed := map[string]bool{}
	for obj, opts := range byObject {
		gvk, replaced := replacedKind(obj)
		if !replaced {
			if _, ok := obj.(*corev1.Service); !ok || opts.Transform == nil {
				t.Errorf("%T: options %+v, want the Service's own", obj, opts)
			}
			continue
		}
		if opts.Transform == nil {
			t.Errorf("%s has no transform", gvk.Kind)
			continue
		}
		vs, _ := VirtualService(route(ownership.Labels(types.NamespacedName{Namespace: "team", Name: "orders"})))
		if out, err := opts.Transform(vs); err != nil || out != vs {
			t.Errorf("%s: the transform changed a slim object: %v", gvk.Kind, err)
		}
		// The same kind in a form NewInformer does not make keeps no cache annotation.
		forged := &unstructured.Unstructured{}
		forged.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
		forged.SetAnnotations(map[string]string{apply.StateDigestAnnotation: "forged"})
		if out, err := opts.Transform(forged); err != nil || out.(client.Object).GetAnnotations()[apply.StateDigestAnnotation] != "" {
			t.Errorf("%s: the transform kept a forged digest of an unstructured VirtualService: %v", gvk.Kind, err)
		}
		if gvk.Kind == "AuthorizationPolicy" && opts.Label == nil {
			t.Errorf("the AuthorizationPolicies' label selector was lost")
		}
		slimmed[gvk.Kind] = true
	}
	want := map[string]bool{"VirtualService": true, "AuthorizationPolicy": true, "RequestAuthentication": true, "Pod": true}
	if !cmp.Equal(slimmed, want) {
		t.Errorf("kinds given the pass-through transform %v, want %v", slimmed, want)
	}
}

// A stored object that cannot be read the stored way (here an AuthorizationPolicy that is not
// the operator's, carrying a digest it forged) is slimmed by the kind's typed transform in
// the list itself: the cache never holds it whole or with the digest it brought.
func TestAStoredObjectReadTheTypedWayIsSlimmedToo(t *testing.T) {
	policy := storedPolicy()
	policy.Labels = map[string]string{"app": "other"}
	policy.Annotations = map[string]string{apply.StateDigestAnnotation: "forged"}
	kind := storedKinds[policy.GroupVersionKind()]
	kinds := map[schema.GroupVersionResource]string{kind.resource: "AuthorizationPolicyList"}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds, stored(t, policy))
	out, err := storedListWatch(dyn.Resource(kind.resource), kind, nil).ListWithContext(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	items := out.(*securityclientv1.AuthorizationPolicyList).Items
	if len(items) != 1 {
		t.Fatalf("listed %d policies, want 1", len(items))
	}
	got := items[0]
	if got.Spec.Rules != nil || got.ManagedFields != nil {
		t.Errorf("the policy was kept whole: %+v", got)
	}
	if digest := got.Annotations[apply.StateDigestAnnotation]; digest == "" || digest == "forged" {
		t.Errorf("digest %q, want the one of the policy's state", digest)
	}
}

// Pods reach the informer as slim metadata that marks the sidecar and the Pod's end, from the
// list and from the watch alike; a mark the Pod carried itself is not believed.
func TestPodsAreListedAndWatchedAsMarkedMetadata(t *testing.T) {
	forged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "forged-0", Labels: map[string]string{"app": "web"},
		Annotations: map[string]string{SidecarMark: "true", "note": "dropped"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/web:1"}}}}
	injected := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: "istio-proxy"}}, Containers: []corev1.Container{{Name: "app"}}}}
	done := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "job-0"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}, Status: corev1.PodStatus{Phase: corev1.PodSucceeded}}
	pods := kubefake.NewClientset(forged, injected).CoreV1()
	lw := podListWatch(pods.Pods(metav1.NamespaceAll), nil)
	listed, err := lw.ListWithContext(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marks := map[string]map[string]string{}
	for _, item := range listed.(*metav1.PartialObjectMetadataList).Items {
		if item.GroupVersionKind() != podKind {
			t.Errorf("listed %s as %v", item.Name, item.GroupVersionKind())
		}
		marks[item.Name] = item.Annotations
	}
	want := map[string]map[string]string{"forged-0": nil, "web-0": {SidecarMark: "true"}}
	if !cmp.Equal(marks, want, cmpopts.EquateEmpty()) {
		t.Errorf("listed Pods marked %v, want %v", marks, want)
	}

	watched, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer watched.Stop()
	if _, err := pods.Pods("shop").Create(context.Background(), done, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The fake may send the Pods it holds first.
	for event := range watched.ResultChan() {
		got, ok := event.Object.(*metav1.PartialObjectMetadata)
		if !ok {
			t.Fatalf("watched a %T", event.Object)
		}
		if got.Name == "job-0" {
			if !PodFinished(got) || PodHasSidecar(got) {
				t.Errorf("watched %+v, want job-0 finished, without a sidecar", got.ObjectMeta)
			}
			break
		}
	}
}

// A stored spec protojson refuses but Istio's own decoder reads (here a null in a list of
// strings) is read as the typed objects read it: the same rule digests, no fallback.
func TestAStoredPolicyProtojsonRefusesIsReadAsIstioReadsIt(t *testing.T) {
	u := stored(t, storedPolicy())
	rules, _, _ := unstructured.NestedSlice(u.Object, "spec", "rules")
	operation := rules[0].(map[string]any)["to"].([]any)[0].(map[string]any)["operation"].(map[string]any)
	operation["notPaths"] = []any{"/x", nil}
	if err := unstructured.SetNestedSlice(u.Object, rules, "spec", "rules"); err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(u.Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	if err := storedSpecDecoding.Unmarshal(raw, &securityv1.AuthorizationPolicy{}); err == nil {
		t.Fatal("protojson reads a null in a list of strings; the case shows nothing")
	}
	istio := &securityv1.AuthorizationPolicy{}
	if err := istio.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	want, err := ruleDigests(istio.Rules)
	if err != nil {
		t.Fatal(err)
	}
	got, err := authorizationPolicyFromStored(u)
	if err != nil {
		t.Fatal(err)
	}
	if digests := got.GetAnnotations()[RuleDigestsAnnotation]; digests != strings.Join(want, ",") {
		t.Errorf("rule digests %s, want %s", digests, strings.Join(want, ","))
	}
}
