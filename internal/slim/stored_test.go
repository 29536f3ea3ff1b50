package slim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
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
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	kubefake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
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

// stateOf is the storedState of a stored object decoded into a map.
func stateOf(t *testing.T, u *unstructured.Unstructured) storedState {
	t.Helper()
	s, err := storedStateOf(u)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readJSON is a stored object as the cache's watch reads it from the API server's JSON.
func readJSON(t testing.TB, u *unstructured.Unstructured) *storedObject {
	t.Helper()
	raw, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	read, err := readStored(raw)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := read.(*storedObject)
	if !ok {
		t.Fatalf("read a %T", read)
	}
	return o
}

// serveList serves a list of the kind of the objects, as the API server sends it, and the
// client of the stored kind that reads it.
func serveList(t *testing.T, objects ...*unstructured.Unstructured) (rest.Interface, storedKind) {
	t.Helper()
	kind := storedKinds[objects[0].GroupVersionKind()]
	items := make([]any, 0, len(objects))
	for _, u := range objects {
		items = append(items, u.Object)
	}
	body, err := json.Marshal(map[string]any{"apiVersion": kind.resource.GroupVersion().String(), "kind": objects[0].GetKind() + "List",
		"metadata": map[string]any{"resourceVersion": "10", "continue": "next-page", "remainingItemCount": 7}, "items": items})
	if err != nil {
		t.Fatal(err)
	}
	path := "/apis/" + kind.resource.GroupVersion().String() + "/" + kind.resource.Resource
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path || r.URL.Query().Get("watch") != "" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(server.Close)
	c, err := storedClient(&rest.Config{Host: server.URL}, server.Client(), kind)
	if err != nil {
		t.Fatal(err)
	}
	return c, kind
}

// noServer is a config of no API server: NewInformer only builds its clients.
var noServer = &rest.Config{Host: "https://127.0.0.1:1"}

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
		obj   client.Object
		typed func(any) (any, error)
	}{
		"the operator's VirtualService": {managed, VirtualService},
		"another VirtualService":        {foreign, VirtualService},
		"an AuthorizationPolicy":        {storedPolicy(), AuthorizationPolicy},
		"a RequestAuthentication":       {authentication, RequestAuthentication},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := c.typed(c.obj.DeepCopyObject())
			if err != nil {
				t.Fatal(err)
			}
			u := stored(t, c.obj)
			kind := storedKinds[u.GroupVersionKind()]
			state, err := storedStateOf(u.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			fromMap, err := kind.fromStored(state)
			if err != nil {
				t.Fatal(err)
			}
			// And read from its JSON, as the cache's lists and watches read it.
			fromJSON, err := kind.objectFromJSON(readJSON(t, u))
			if err != nil {
				t.Fatal(err)
			}
			wantObj := want.(client.Object)
			// The typed transform keeps the apiVersion and kind it was given; the cache sets
			// them on what it returns either way.
			wantObj.GetObjectKind().SetGroupVersionKind(fromMap.GetObjectKind().GroupVersionKind())
			for form, got := range map[string]client.Object{"its map": fromMap, "its JSON": fromJSON} {
				if diff := cmp.Diff(wantObj, got, protocmp.Transform()); diff != "" {
					t.Errorf("built from %s (+) differs from the typed transform's (-):\n%s", form, diff)
				}
			}
		})
	}
}

// A field Istio's types do not know, which a newer CRD lets the API server store, changes the
// digest of the stored state; the typed transform cannot see it.
func TestAFieldTheTypesDoNotKnowChangesTheStoredDigest(t *testing.T) {
	policy := storedPolicy()
	plain, err := authorizationPolicyFromStored(stateOf(t, stored(t, policy)))
	if err != nil {
		t.Fatal(err)
	}
	widened := stored(t, policy)
	if err := unstructured.SetNestedField(widened.Object, "OFF", "spec", "futureMode"); err != nil {
		t.Fatal(err)
	}
	got, err := authorizationPolicyFromStored(stateOf(t, widened))
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
	c, kind := serveList(t, u)
	lw := storedListWatch(c, kind, nil)
	out, err := lw.ListWithContext(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	list, ok := out.(*securityclientv1.AuthorizationPolicyList)
	if !ok || len(list.Items) != 1 {
		t.Fatalf("listed %T %+v, want one AuthorizationPolicy", out, out)
	}
	if list.ResourceVersion != "10" || list.Continue != "next-page" || list.RemainingItemCount == nil || *list.RemainingItemCount != 7 {
		t.Errorf("the list's metadata was not kept: %+v", list.ListMeta)
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
	pods := kubefake.NewClientset().CoreV1()
	for _, obj := range []client.Object{&securityclientv1.AuthorizationPolicy{}, PodMetadata()} {
		if _, err := NewInformer(noServer, http.DefaultClient, pods, map[client.Object]cache.ByObject{obj: {Label: labels.Everything()}}); err != nil {
			t.Errorf("a label selector of %T refused: %v", obj, err)
		}
		for name, opts := range map[string]cache.ByObject{
			"a field selector": {Field: fields.OneTermEqualSelector("metadata.name", "x")},
			"namespaces":       {Namespaces: map[string]cache.Config{"team": {}}},
			"a transform":      {Transform: AuthorizationPolicy},
		} {
			if _, err := NewInformer(noServer, http.DefaultClient, pods, map[client.Object]cache.ByObject{obj: opts}); err == nil {
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
		if _, err := NewInformer(noServer, http.DefaultClient, kubefake.NewClientset().CoreV1(),
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
	if _, err := NewInformer(noServer, http.DefaultClient, kubefake.NewClientset().CoreV1(), byObject); err != nil {
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
	c, kind := serveList(t, stored(t, policy))
	out, err := storedListWatch(c, kind, nil).ListWithContext(context.Background(), metav1.ListOptions{})
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
	got, err := authorizationPolicyFromStored(stateOf(t, u))
	if err != nil {
		t.Fatal(err)
	}
	if digests := got.GetAnnotations()[RuleDigestsAnnotation]; digests != strings.Join(want, ",") {
		t.Errorf("rule digests %s, want %s", digests, strings.Join(want, ","))
	}
}

// A watch of a stored kind read from the API server's stream: an object arrives slim, as its
// list item would (the same digests), a bookmark keeps its resourceVersion and the annotation
// that ends the initial events, and an expired resourceVersion arrives as the Status the
// reflector lists again on. The request is a watch of the kind's collection with the options.
func TestAStoredWatchReadsTheAPIServersStream(t *testing.T) {
	policy := storedPolicy()
	u := stored(t, policy)
	u.SetResourceVersion("11")
	kind := storedKinds[policy.GroupVersionKind()]
	object, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	events := []string{
		`{"type":"ADDED","object":` + string(object) + `}`,
		`{"type":"BOOKMARK","object":{"kind":"AuthorizationPolicy","apiVersion":"security.istio.io/v1","metadata":{"resourceVersion":"12","annotations":{"k8s.io/initial-events-end":"true"}}}}`,
		`{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (12)","reason":"Expired","code":410}}`,
	}
	var query url.Values
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/apis/security.istio.io/v1/authorizationpolicies" {
			http.NotFound(w, r)
			return
		}
		query = r.URL.Query()
		w.Header().Set("Content-Type", "application/json")
		for _, e := range events {
			_, _ = w.Write([]byte(e + "\n"))
		}
	}))
	t.Cleanup(server.Close)
	c, err := storedClient(&rest.Config{Host: server.URL}, server.Client(), kind)
	if err != nil {
		t.Fatal(err)
	}
	selector := labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": "apirule-operator"})
	timeout := int64(30)
	w, err := storedListWatch(c, kind, selector).WatchWithContext(context.Background(),
		metav1.ListOptions{ResourceVersion: "10", AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	var got []watch.Event
	for e := range w.ResultChan() {
		got = append(got, e)
	}
	if query.Get("watch") != "true" || query.Get("resourceVersion") != "10" || query.Get("allowWatchBookmarks") != "true" ||
		query.Get("labelSelector") != selector.String() || query.Get("timeoutSeconds") != "30" {
		t.Errorf("watched with %v", query)
	}
	if len(got) != 3 {
		t.Fatalf("got %d events, want 3: %+v", len(got), got)
	}
	want, err := kind.object(stored(t, policy))
	if err != nil {
		t.Fatal(err)
	}
	want.SetResourceVersion("11")
	if diff := cmp.Diff(want, got[0].Object, protocmp.Transform()); got[0].Type != watch.Added || diff != "" {
		t.Errorf("the added policy (%s) differs from its list item (-want +got):\n%s", got[0].Type, diff)
	}
	bookmark, ok := got[1].Object.(*securityclientv1.AuthorizationPolicy)
	if got[1].Type != watch.Bookmark || !ok || bookmark.ResourceVersion != "12" || bookmark.Annotations[metav1.InitialEventsAnnotationKey] != "true" {
		t.Errorf("the bookmark arrived as %s %#v", got[1].Type, got[1].Object)
	}
	status, ok := got[2].Object.(*metav1.Status)
	if got[2].Type != watch.Error || !ok || status.Code != http.StatusGone || status.Reason != metav1.StatusReasonExpired {
		t.Errorf("the expired resourceVersion arrived as %s %#v", got[2].Type, got[2].Object)
	}
}

// A generated object Istio would enforce differently (an AuthorizationPolicy in dry-run, a
// route moved to another revision) keeps what says so in the cache, read the typed way, from
// the map and from the JSON alike: the applier must see it to remove it.
func TestTheCacheKeepsWhatMakesIstioEnforceAnObjectDifferently(t *testing.T) {
	policy := storedPolicy()
	policy.Annotations = map[string]string{"istio.io/dry-run": "true", "team": "payments"}
	policy.Labels["istio.io/rev"] = "canary"
	route := route(ownership.Labels(types.NamespacedName{Namespace: "team", Name: "orders"}))
	route.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
	route.Annotations = map[string]string{"istio.io/dry-run": "true"}
	route.Labels["istio.io/rev"] = "canary"
	for _, tc := range []struct {
		obj   client.Object
		typed func(any) (any, error)
	}{{policy, AuthorizationPolicy}, {route, VirtualService}} {
		u := stored(t, tc.obj)
		kind := storedKinds[u.GroupVersionKind()]
		typed, err := tc.typed(tc.obj.DeepCopyObject())
		if err != nil {
			t.Fatal(err)
		}
		fromMap, err := kind.object(u.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		fromJSON, err := kind.objectFromJSON(readJSON(t, u))
		if err != nil {
			t.Fatal(err)
		}
		for form, got := range map[string]client.Object{"typed": typed.(client.Object), "map": fromMap, "JSON": fromJSON} {
			if got.GetAnnotations()["istio.io/dry-run"] != "true" || got.GetLabels()["istio.io/rev"] != "canary" {
				t.Errorf("%s, read from its %s: annotations %v, labels %v", u.GetKind(), form, got.GetAnnotations(), got.GetLabels())
			}
			if _, kept := got.GetAnnotations()["team"]; kept {
				t.Errorf("%s, read from its %s: an annotation Istio does not enforce by was kept", u.GetKind(), form)
			}
		}
	}
}

// An error reply to a list or a watch arrives as the API server's Status error: the reflector
// tells a resourceVersion too old (410 Gone, list again) from a missing permission.
func TestAStoredListOrWatchErrorIsTheAPIServersStatus(t *testing.T) {
	kind := storedKinds[securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy")]
	replies := map[string]string{
		"":     `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"authorizationpolicies is forbidden","reason":"Forbidden","code":403}`,
		"true": `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}`,
	}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reply := replies[r.URL.Query().Get("watch")]
		var status metav1.Status
		_ = json.Unmarshal([]byte(reply), &status)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(int(status.Code))
		_, _ = w.Write([]byte(reply))
	}))
	t.Cleanup(server.Close)
	c, err := storedClient(&rest.Config{Host: server.URL}, server.Client(), kind)
	if err != nil {
		t.Fatal(err)
	}
	lw := storedListWatch(c, kind, nil)
	if _, err := lw.ListWithContext(context.Background(), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the list: %v, want the API server's Forbidden", err)
	}
	if _, err := lw.WatchWithContext(context.Background(), metav1.ListOptions{ResourceVersion: "1"}); !apierrors.IsResourceExpired(err) {
		t.Errorf("the watch: %v, want the API server's Expired", err)
	}
}
