package slim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// The operator's cache receives VirtualServices, AuthorizationPolicies and
// RequestAuthentications as the API server stored them, not as Istio's Go types decode them:
// those decoders drop fields they do not know, so a field that the cluster's (newer) Istio
// CRDs accept, added to a generated object, would leave the digest of its state unchanged and
// never be seen as drift. NewInformer lists and watches these kinds as JSON (storedjson.go)
// and builds from each object the slim typed object the transforms of this package build from
// a typed one, with the digest of the state as stored; the reads of the cache stay typed.

// storedKind is one kind the cache receives as stored.
type storedKind struct {
	resource schema.GroupVersionResource
	newList  func() client.ObjectList
	// fromStored builds the slim object from a stored one. An error leaves an object read from
	// its JSON to its map, and an object read from its map to the typed decoding and
	// slimTyped.
	fromStored func(s storedState) (client.Object, error)
	// specOf reads of a stored spec's JSON what fromStored reads of the spec, as the map of
	// the whole object holds it; nil: fromStored reads no spec.
	specOf func(json.RawMessage) (any, error)
	// typed is an empty typed object of the kind.
	typed func() client.Object
	// slimTyped is the kind's transform of a typed object.
	slimTyped func(any) (any, error)
}

var storedKinds = map[schema.GroupVersionKind]storedKind{
	networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"): {
		resource:   networkingclientv1.SchemeGroupVersion.WithResource("virtualservices"),
		newList:    func() client.ObjectList { return &networkingclientv1.VirtualServiceList{} },
		fromStored: virtualServiceFromStored,
		specOf:     routeSpec,
		typed:      func() client.Object { return &networkingclientv1.VirtualService{} },
		slimTyped:  VirtualService,
	},
	securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"): {
		resource:   securityclientv1.SchemeGroupVersion.WithResource("authorizationpolicies"),
		newList:    func() client.ObjectList { return &securityclientv1.AuthorizationPolicyList{} },
		fromStored: authorizationPolicyFromStored,
		specOf:     wholeSpec,
		typed:      func() client.Object { return &securityclientv1.AuthorizationPolicy{} },
		slimTyped:  AuthorizationPolicy,
	},
	securityclientv1.SchemeGroupVersion.WithKind("RequestAuthentication"): {
		resource:   securityclientv1.SchemeGroupVersion.WithResource("requestauthentications"),
		newList:    func() client.ObjectList { return &securityclientv1.RequestAuthenticationList{} },
		fromStored: requestAuthenticationFromStored,
		typed:      func() client.Object { return &securityclientv1.RequestAuthentication{} },
		slimTyped:  RequestAuthentication,
	},
}

// NewInformer is the cache's NewInformer. For the kinds above it replaces the list and watch
// with ones that read the API server's JSON (storedListWatch, through clients on cfg and
// httpClient); for Pods, which the cache holds as metadata
// (PodMetadata), with typed ones through pods whose every Pod is slimmed (Pod) into metadata
// that marks its sidecar and its end: the metadata the API server would send instead has
// neither. The lists and watches are restricted by the label selector of the kind's entry in
// the cache's byObject options (none: every object); other kinds keep theirs. It refuses
// options it would not apply: a namespace or field restriction of these kinds.
//
// Everything these lists and watches hand the informer is slim already, and their transform in
// byObject, which NewInformer sets (adding an entry for a kind that has none), passes it as it
// is: a transform of its own (a typed one would take a slim object for a whole one, and the
// default would drop the digests) is refused. So no transform needs to tell the objects it
// made from those it did not: client-go hands an informer's transform the same object twice
// when a watch list replaces the cache's content.
func NewInformer(cfg *rest.Config, httpClient *http.Client, pods typedcorev1.PodsGetter, byObject map[client.Object]cache.ByObject) (func(toolscache.ListerWatcher, runtime.Object, time.Duration, toolscache.Indexers) toolscache.SharedIndexInformer, error) {
	clients := map[schema.GroupVersionKind]rest.Interface{}
	for gvk, kind := range storedKinds {
		c, err := storedClient(cfg, httpClient, kind)
		if err != nil {
			return nil, err
		}
		clients[gvk] = c
	}
	selectors := map[schema.GroupVersionKind]labels.Selector{}
	for obj, opts := range byObject {
		gvk, replaced := replacedKind(obj)
		if !replaced {
			_, typedPod := obj.(*corev1.Pod)
			if gvk := obj.GetObjectKind().GroupVersionKind(); storedKinds[gvk].typed != nil || gvk == podKind || typedPod {
				// A second entry of the kind, which the cache would take in either order.
				return nil, fmt.Errorf("the cache lists and watches %s itself: key its options with the object NewInformer replaces, not a %T", gvk.Kind, obj)
			}
			continue
		}
		if len(opts.Namespaces) > 0 || opts.Field != nil {
			return nil, fmt.Errorf("the cache restricts %s by namespace or field, which its own list and watch do not apply", gvk.Kind)
		}
		if opts.Transform != nil {
			return nil, fmt.Errorf("the cache sets a transform of %s, which its own list and watch slim", gvk.Kind)
		}
		opts.Transform = alreadySlim
		byObject[obj] = opts
		selectors[gvk] = opts.Label
	}
	for gvk, kind := range storedKinds {
		if _, listed := selectors[gvk]; !listed {
			byObject[kind.typed()] = cache.ByObject{Transform: alreadySlim}
		}
	}
	if _, listed := selectors[podKind]; !listed {
		byObject[PodMetadata()] = cache.ByObject{Transform: alreadySlim}
	}
	return func(lw toolscache.ListerWatcher, obj runtime.Object, resync time.Duration, indexers toolscache.Indexers) toolscache.SharedIndexInformer {
		if gvk, ok := replacedKind(obj); ok {
			if gvk == podKind {
				lw = podListWatch(pods.Pods(metav1.NamespaceAll), selectors[gvk])
			} else {
				lw = storedListWatch(clients[gvk], storedKinds[gvk], selectors[gvk])
			}
		}
		return toolscache.NewSharedIndexInformer(lw, obj, resync, indexers)
	}, nil
}

var podKind = corev1.SchemeGroupVersion.WithKind("Pod")

// replacedKind is the kind of an informer's object whose list and watch NewInformer replaces.
func replacedKind(obj runtime.Object) (schema.GroupVersionKind, bool) {
	if m, ok := obj.(*metav1.PartialObjectMetadata); ok && m.GroupVersionKind() == podKind {
		return podKind, true
	}
	return typedKind(obj)
}

// podListWatch lists and watches whole Pods and hands the informer their slim metadata.
func podListWatch(pods typedcorev1.PodInterface, selector labels.Selector) *toolscache.ListWatch {
	list := func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		listed, err := pods.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		list := PodMetadataList()
		list.ListMeta = listed.ListMeta
		list.Items = make([]metav1.PartialObjectMetadata, len(listed.Items))
		for i := range listed.Items {
			list.Items[i] = *podAsMetadata(&listed.Items[i])
		}
		return list, nil
	}
	convert := func(obj runtime.Object) (runtime.Object, error) {
		pod, ok := obj.(*corev1.Pod)
		if !ok {
			return nil, fmt.Errorf("watched a %T where a Pod was due", obj)
		}
		return podAsMetadata(pod), nil
	}
	return replacedListWatch(selector, list, pods.Watch, func() client.Object { return PodMetadata() }, convert)
}

// replacedListWatch is a list and watch NewInformer gives an informer, restricted by
// selector: list makes the informer's list of what it lists, and of each object watched the
// informer gets what convert makes of it. A bookmark becomes an empty object of the informer's
// (empty) with the bookmark's resourceVersion and annotations (at the end of the initial
// events, the one that says so); a Status passes as it is, for the reflector to read; an object
// convert refuses becomes an error event.
func replacedListWatch(selector labels.Selector,
	list func(context.Context, metav1.ListOptions) (runtime.Object, error),
	watchFrom func(context.Context, metav1.ListOptions) (watch.Interface, error),
	empty func() client.Object,
	convert func(runtime.Object) (runtime.Object, error),
) *toolscache.ListWatch {
	restrict := func(opts *metav1.ListOptions) {
		if selector != nil {
			opts.LabelSelector = selector.String()
		}
	}
	return &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			restrict(&opts)
			return list(ctx, opts)
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			restrict(&opts)
			watched, err := watchFrom(ctx, opts)
			if err != nil {
				return nil, err
			}
			return watch.Filter(watched, func(event watch.Event) (watch.Event, bool) {
				m, ok := event.Object.(metav1.Object)
				switch {
				case !ok || event.Type == watch.Error:
				case event.Type == watch.Bookmark:
					bookmark := empty()
					bookmark.SetResourceVersion(m.GetResourceVersion())
					bookmark.SetAnnotations(m.GetAnnotations())
					event.Object = bookmark
				default:
					obj, err := convert(event.Object)
					if err != nil {
						return watch.Event{Type: watch.Error, Object: &apierrors.NewInternalError(err).ErrStatus}, true
					}
					event.Object = obj
				}
				return event, true
			}), nil
		},
	}
}

func typedKind(obj runtime.Object) (schema.GroupVersionKind, bool) {
	var kind string
	switch obj.(type) {
	case *networkingclientv1.VirtualService:
		kind = "VirtualService"
	case *securityclientv1.AuthorizationPolicy:
		kind = "AuthorizationPolicy"
	case *securityclientv1.RequestAuthentication:
		kind = "RequestAuthentication"
	default:
		return schema.GroupVersionKind{}, false
	}
	for gvk := range storedKinds {
		if gvk.Kind == kind {
			return gvk, true
		}
	}
	return schema.GroupVersionKind{}, false
}

// object builds the slim object from a stored one, or, when that fails, slims the typed
// object as the typed decoding would have it.
func (k storedKind) object(u *unstructured.Unstructured) (client.Object, error) {
	state, err := storedStateOf(u)
	if err == nil {
		var obj client.Object
		if obj, err = k.fromStored(state); err == nil {
			return obj, nil
		}
	}
	if !errors.Is(err, errNotOwn) {
		log.Log.WithName("cache").Error(err, "reading a stored object the typed way: its digest covers only the fields Istio's types know",
			"kind", u.GetKind(), "namespace", u.GetNamespace(), "name", u.GetName())
	}
	typed := k.typed()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, typed); err != nil {
		return nil, fmt.Errorf("decoding %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
	}
	slimmed, err := k.slimTyped(typed)
	if err != nil {
		return nil, err
	}
	return slimmed.(client.Object), nil
}

// storedState is what the slim object of a stored one is built from: its metadata
// (managedFields aside), whether the operator manages it and then the digest of its state,
// and the object as a map, of which the kinds read only the spec.
type storedState struct {
	meta    metav1.ObjectMeta
	managed bool
	digest  string
	object  map[string]any
}

// storedStateOf is the storedState of a stored object decoded into a map.
func storedStateOf(u *unstructured.Unstructured) (storedState, error) {
	s := storedState{object: u.Object}
	raw, _ := u.Object["metadata"].(map[string]any)
	// Dropped anyway; the object is the list's or the event's own.
	delete(raw, "managedFields")
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &s.meta); err != nil {
		return storedState{}, err
	}
	if _, s.managed = ownership.OwnerFromLabels(s.meta.Labels); !s.managed {
		return s, nil
	}
	digest, err := apply.StateDigest(u.Object)
	if err != nil {
		return storedState{}, err
	}
	s.digest = digest
	return s, nil
}

// ownStoredMeta is the slim metadata of one of the operator's own stored objects, with its
// owner references and state digest; errNotOwn for another's.
func ownStoredMeta(s storedState) (metav1.ObjectMeta, error) {
	if !s.managed {
		return metav1.ObjectMeta{}, errNotOwn
	}
	slim := slimMeta(s.meta)
	ownState(&slim, s.meta.OwnerReferences, s.digest)
	return slim, nil
}

func virtualServiceFromStored(s storedState) (client.Object, error) {
	vs := &networkingclientv1.VirtualService{ObjectMeta: slimMeta(s.meta)}
	var err error
	if vs.Spec.Hosts, _, err = unstructured.NestedStringSlice(s.object, "spec", "hosts"); err != nil {
		return nil, err
	}
	if vs.Spec.Gateways, _, err = unstructured.NestedStringSlice(s.object, "spec", "gateways"); err != nil {
		return nil, err
	}
	if !s.managed {
		return vs, nil
	}
	ownState(&vs.ObjectMeta, s.meta.OwnerReferences, s.digest)
	http, err := sliceAt(s.object, "spec", "http")
	if err != nil {
		return nil, err
	}
	var hosts []string
	for _, route := range http {
		destinations, err := sliceAt(asMap(route), "route")
		if err != nil {
			return nil, err
		}
		for _, d := range destinations {
			host, _, err := unstructured.NestedString(asMap(d), "destination", "host")
			if err != nil {
				return nil, err
			}
			hosts = append(hosts, host)
		}
	}
	keepDestinations(vs, hosts)
	return vs, nil
}

func authorizationPolicyFromStored(s storedState) (client.Object, error) {
	// Only the operator's own are cached; anything else goes the typed way.
	m, err := ownStoredMeta(s)
	if err != nil {
		return nil, err
	}
	ap := &securityclientv1.AuthorizationPolicy{ObjectMeta: m}
	// The rules' digests are those of the rules as Istio's types read them, as the desired
	// policy's are computed (RuleDigests).
	raw, err := json.Marshal(s.object["spec"])
	if err != nil {
		return nil, err
	}
	spec := &securityv1.AuthorizationPolicy{}
	if err := storedSpecDecoding.Unmarshal(raw, spec); err != nil {
		// What protojson refuses and Istio's own decoder reads (a null spec, a field under both
		// of its names): read it as the typed objects are.
		spec.Reset()
		if err := spec.UnmarshalJSON(raw); err != nil {
			return nil, err
		}
	}
	digests, err := ruleDigests(spec.Rules)
	if err != nil {
		return nil, err
	}
	ap.Annotations[RuleDigestsAnnotation] = strings.Join(digests, ",")
	return ap, nil
}

func requestAuthenticationFromStored(s storedState) (client.Object, error) {
	m, err := ownStoredMeta(s)
	if err != nil {
		return nil, err
	}
	return &securityclientv1.RequestAuthentication{ObjectMeta: m}, nil
}

// storedSpecDecoding reads a stored spec into Istio's types as their own UnmarshalJSON does,
// fields the types do not know left out, at about a quarter of its cost (protojson against
// the older jsonpb those types call).
var storedSpecDecoding = protojson.UnmarshalOptions{DiscardUnknown: true}

var errNotOwn = errors.New("not one of the operator's objects")

// sliceAt is the list at the path, or nil, as it is: the object is the list's or the event's
// own and is only read (unstructured.NestedSlice copies it, which was most of what reading a
// stored VirtualService allocated).
func sliceAt(obj map[string]any, fields ...string) ([]any, error) {
	v, found, err := unstructured.NestedFieldNoCopy(obj, fields...)
	if err != nil || !found || v == nil {
		return nil, err
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s is a %T, not a list", strings.Join(fields, "."), v)
	}
	return list, nil
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// alreadySlim is the cache's transform of the kinds whose list and watch NewInformer replaces:
// what those hand the informer passes as it is. An object of such a kind in another form (an
// informer of it the cache made without NewInformer, unstructured or as metadata) gets the
// default transform, which keeps no cache annotation it brought.
func alreadySlim(obj any) (any, error) {
	if o, ok := obj.(runtime.Object); ok {
		if _, replaced := replacedKind(o); replaced {
			return obj, nil
		}
	}
	return Default(obj)
}
