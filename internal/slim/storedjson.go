package slim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	jsonserializer "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsjson "sigs.k8s.io/json"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// The generated kinds' lists and watches are read from the API server's JSON straight into
// what the slim objects are built from: each object's metadata without its managedFields, its
// spec, and the digest of its state read from the JSON itself (apply.StoredStateDigestOfJSON).
// A dynamic client decoded every event into a map, managedFields included, after reading its
// JSON twice only to find its kind; that was the largest part of what a restarted operator
// allocated. What is built is what building it from the map gives (storedState): an object
// this reading cannot take exactly (a key twice, a value of an unexpected type) is decoded
// into a map, as before, and built from that.

// storedObject is an object of a stored kind as a watch event brings it: its JSON, with its
// type and metadata read once. The watch's convert builds the slim object from it.
type storedObject struct {
	metav1.TypeMeta
	metav1.ObjectMeta
	raw  []byte
	spec json.RawMessage
	// exact: the object was read without duplicate keys, so its struct-read metadata is what
	// a map of it holds.
	exact bool
}

func (o *storedObject) DeepCopyObject() runtime.Object {
	out := &storedObject{TypeMeta: o.TypeMeta, raw: append([]byte(nil), o.raw...), spec: append(json.RawMessage(nil), o.spec...), exact: o.exact}
	o.DeepCopyInto(&out.ObjectMeta)
	return out
}

// storedTop is how an object of a stored kind, or a Status, is read.
type storedTop struct {
	metav1.TypeMeta
	Metadata storedMetadata  `json:"metadata"`
	Spec     json.RawMessage `json:"spec"`
}

// storedMetadata is an object's metadata without its managedFields: read past, not decoded.
// The field of this struct hides ObjectMeta's, which is nested deeper.
type storedMetadata struct {
	metav1.ObjectMeta
	ManagedFields skipped `json:"managedFields"`
}

type skipped struct{}

func (*skipped) UnmarshalJSON([]byte) error { return nil }

// readStored reads one object's JSON: a Status as a Status, anything else as a storedObject.
// JSON whose metadata this reading refuses (a value of an unexpected type) is left to the map
// (exact false), which decides what it is, as it did before.
func readStored(raw []byte) (runtime.Object, error) {
	var top storedTop
	strict, err := sigsjson.UnmarshalStrict(raw, &top, sigsjson.DisallowDuplicateFields)
	if err != nil {
		return &storedObject{raw: raw}, nil
	}
	if top.Kind == "Status" {
		status := &metav1.Status{}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, status); err != nil {
			return nil, err
		}
		return status, nil
	}
	return &storedObject{TypeMeta: top.TypeMeta, ObjectMeta: top.Metadata.ObjectMeta, raw: raw, spec: top.Spec, exact: len(strict) == 0}, nil
}

// objectFromJSON builds the slim object of a stored object read from its JSON: from its
// storedState when it was read exactly and the kind's reading takes it, else from the map the
// JSON decodes into, as object does.
func (k storedKind) objectFromJSON(o *storedObject) (client.Object, error) {
	if o.exact {
		if state, err := k.storedStateOfJSON(o); err == nil {
			if obj, err := k.fromStored(state); err == nil {
				return obj, nil
			}
		}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(o.raw); err != nil {
		return nil, fmt.Errorf("decoding %s %s/%s: %w", o.Kind, o.Namespace, o.Name, err)
	}
	return k.object(u)
}

// storedStateOfJSON is the storedState of an object read from its JSON: its metadata, of its
// spec what the kind reads (specOf) as the map of the whole object holds it, and, for the
// operator's own, the digest of its state.
func (k storedKind) storedStateOfJSON(o *storedObject) (storedState, error) {
	s := storedState{meta: o.ObjectMeta, object: map[string]any{}}
	if o.spec != nil && k.specOf != nil {
		spec, err := k.specOf(o.spec)
		if err != nil {
			return storedState{}, err
		}
		s.object["spec"] = spec
	}
	if _, s.managed = ownership.OwnerFromLabels(o.Labels); s.managed {
		digest, err := apply.StoredStateDigestOfJSON(o.raw)
		if err != nil {
			return storedState{}, err
		}
		s.digest = digest
	}
	return s, nil
}

// wholeSpec is a spec decoded as the map of its object holds it.
func wholeSpec(raw json.RawMessage) (any, error) {
	var spec any
	return spec, sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &spec)
}

// routeSpec is of a VirtualService's spec what virtualServiceFromStored reads, as the map of
// the object holds it: its hosts and gateways, and of each HTTP route its destinations. The
// rest of the routes (matches, rewrites, headers: most of a route) is read past. A spec or a
// route that is no object, read whole, is what the map path decides on: an error here hands
// the object to it.
func routeSpec(raw json.RawMessage) (any, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	var spec struct {
		Hosts    json.RawMessage `json:"hosts"`
		Gateways json.RawMessage `json:"gateways"`
		HTTP     json.RawMessage `json:"http"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &spec); err != nil {
		return nil, err
	}
	out := map[string]any{}
	for field, value := range map[string]json.RawMessage{"hosts": spec.Hosts, "gateways": spec.Gateways} {
		if value != nil {
			v, err := wholeSpec(value)
			if err != nil {
				return nil, err
			}
			out[field] = v
		}
	}
	switch {
	case spec.HTTP == nil:
	case string(spec.HTTP) == "null":
		out["http"] = nil
	default:
		var routes []struct {
			Route json.RawMessage `json:"route"`
		}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(spec.HTTP, &routes); err != nil {
			return nil, err
		}
		http := make([]any, len(routes))
		for i, r := range routes {
			route := map[string]any{}
			if r.Route != nil {
				destinations, err := wholeSpec(r.Route)
				if err != nil {
					return nil, err
				}
				route["route"] = destinations
			}
			http[i] = route
		}
		out["http"] = http
	}
	return out, nil
}

// storedCodec reads the API server's JSON of one stored kind: a list into the kind's typed
// list of slim objects, a watched object into a storedObject, a Status into a Status. It
// writes nothing: the lists and watches send no body.
type storedCodec struct{ kind storedKind }

func (c storedCodec) Decode(data []byte, _ *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	switch into := into.(type) {
	case nil:
		// A watched object, or the Status of an error reply (rest.Result.Error).
		obj, err := readStored(data)
		return obj, nil, err
	case client.ObjectList:
		return into, nil, c.kind.readList(data, into)
	default:
		return nil, nil, fmt.Errorf("reading a stored %s into a %T", c.kind.resource.Resource, into)
	}
}

func (c storedCodec) Encode(runtime.Object, io.Writer) error {
	return errors.New("the stored kinds' client sends no objects")
}

func (c storedCodec) Identifier() runtime.Identifier { return "apirule-operator-stored-json" }

// readList reads a list of the kind into its typed list of slim objects.
func (k storedKind) readList(data []byte, into client.ObjectList) error {
	var list struct {
		metav1.TypeMeta
		metav1.ListMeta `json:"metadata"`
		Items           []json.RawMessage `json:"items"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, &list); err != nil {
		return err
	}
	if list.Kind == "Status" {
		// A Status with a success code: what it says went wrong is the list's error.
		status := &metav1.Status{}
		if err := sigsjson.UnmarshalCaseSensitivePreserveInts(data, status); err != nil {
			return err
		}
		return apierrors.FromObject(status)
	}
	items := make([]runtime.Object, 0, len(list.Items))
	for _, raw := range list.Items {
		read, err := readStored(raw)
		if err != nil {
			return err
		}
		o, ok := read.(*storedObject)
		if !ok {
			return fmt.Errorf("listing %s: an item is a %T", k.resource.Resource, read)
		}
		obj, err := k.objectFromJSON(o)
		if err != nil {
			return err
		}
		items = append(items, obj)
	}
	into.SetResourceVersion(list.ResourceVersion)
	into.SetContinue(list.Continue)
	into.SetRemainingItemCount(list.RemainingItemCount)
	return meta.SetList(into, items)
}

// eventCodec reads a watch event's envelope; its object is read by storedCodec.
type eventCodec struct{}

func (eventCodec) Decode(data []byte, _ *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	event, ok := into.(*metav1.WatchEvent)
	if !ok {
		return nil, nil, fmt.Errorf("reading a watch event into a %T", into)
	}
	return event, nil, sigsjson.UnmarshalCaseSensitivePreserveInts(data, event)
}

func (eventCodec) Encode(runtime.Object, io.Writer) error {
	return errors.New("the stored kinds' client sends no watch events")
}

func (eventCodec) Identifier() runtime.Identifier { return "apirule-operator-stored-watch-event" }

// storedSerializer is the stored kinds' client's only serializer: JSON, read by storedCodec.
type storedSerializer struct{ codec storedCodec }

func (s storedSerializer) SupportedMediaTypes() []runtime.SerializerInfo {
	return []runtime.SerializerInfo{{
		MediaType: runtime.ContentTypeJSON, MediaTypeType: "application", MediaTypeSubType: "json", EncodesAsText: true,
		Serializer:       s.codec,
		StreamSerializer: &runtime.StreamSerializerInfo{EncodesAsText: true, Serializer: eventCodec{}, Framer: jsonserializer.Framer},
	}}
}

func (s storedSerializer) EncoderForVersion(e runtime.Encoder, _ runtime.GroupVersioner) runtime.Encoder {
	return e
}

func (s storedSerializer) DecoderToVersion(d runtime.Decoder, _ runtime.GroupVersioner) runtime.Decoder {
	return d
}

// storedClient is the REST client of one stored kind, on cfg's credentials and httpClient.
func storedClient(cfg *rest.Config, httpClient *http.Client, kind storedKind) (rest.Interface, error) {
	cfg = rest.CopyConfig(cfg)
	gv := kind.resource.GroupVersion()
	cfg.GroupVersion = &gv
	cfg.APIPath = "/apis"
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = storedSerializer{storedCodec{kind}}
	// The user agent and the credentials are httpClient's.
	return rest.RESTClientForConfigAndClient(cfg, httpClient)
}

// listOptionsCodec writes list options as query parameters, as the dynamic client does.
var listOptionsCodec = func() runtime.ParameterCodec {
	scheme := runtime.NewScheme()
	metav1.AddToGroupVersion(scheme, optionsVersion)
	return runtime.NewParameterCodec(scheme)
}()

var optionsVersion = schema.GroupVersion{Version: "v1"}

// storedRequest is a GET of the kind's collection with the options.
func storedRequest(c rest.Interface, kind storedKind, opts *metav1.ListOptions) *rest.Request {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	return c.Get().Resource(kind.resource.Resource).SpecificallyVersionedParams(opts, listOptionsCodec, optionsVersion).Timeout(timeout)
}

// storedListWatch lists and watches a stored kind through its client: the lists hold slim
// objects, the watches' objects are slimmed by convert.
func storedListWatch(c rest.Interface, kind storedKind, selector labels.Selector) *toolscache.ListWatch {
	list := func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		list := kind.newList()
		return list, storedRequest(c, kind, &opts).Do(ctx).Into(list)
	}
	watchFrom := func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		opts.Watch = true
		return storedRequest(c, kind, &opts).Watch(ctx)
	}
	convert := func(obj runtime.Object) (runtime.Object, error) {
		o, ok := obj.(*storedObject)
		if !ok {
			return nil, fmt.Errorf("watched a %T where a stored object was due", obj)
		}
		return kind.objectFromJSON(o)
	}
	return replacedListWatch(selector, list, watchFrom, kind.typed, convert)
}
