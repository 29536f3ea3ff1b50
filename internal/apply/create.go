package apply

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsjson "sigs.k8s.io/json"

	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// Creator creates an object from its JSON encoding and returns the JSON of what the API server
// stored. The encoding is the one the digests are read from (manifest.Encode), so a create
// sends it as it is and the reply is checked from its JSON: neither side is converted to a map.
type Creator interface {
	Create(ctx context.Context, kind schema.GroupVersionKind, namespace string, body []byte) ([]byte, error)
}

// RESTCreator is the Creator of a running operator: a POST to the kind's collection, under the
// operator's field manager, through the manager's HTTP client (its connections and
// credentials).
type RESTCreator struct {
	client rest.Interface
	mapper meta.RESTMapper
	// collections holds each kind's collection (schema.GroupVersionKind to collection): the
	// REST mapper resolved every create's kind again, at a tenth of the create's cost. A kind's
	// resource and scope are those of its CRD, which cannot change them.
	collections sync.Map
}

// collection is where the objects of a kind are created: /apis/<group>/<version> (/api/v1 for
// the core group), then namespaces/<namespace> for a namespaced kind, then the resource.
type collection struct {
	prefix     []string
	namespaced bool
	resource   string
}

func (c collection) path(namespace string) []string {
	path := slices.Clone(c.prefix)
	if c.namespaced {
		path = append(path, "namespaces", namespace)
	}
	return append(path, c.resource)
}

// NewRESTCreator builds a RESTCreator on the manager's config, HTTP client and REST mapper;
// scheme decodes the API server's error replies.
func NewRESTCreator(cfg *rest.Config, httpClient *http.Client, mapper meta.RESTMapper, scheme *runtime.Scheme) (*RESTCreator, error) {
	cfg = rest.CopyConfig(cfg)
	// Each request names its whole path; a group version is only what the client requires.
	cfg.GroupVersion = &schema.GroupVersion{}
	cfg.ContentType = runtime.ContentTypeJSON
	// The reply is read as JSON (storedAsSent), whatever the caller's config prefers.
	cfg.AcceptContentTypes = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	c, err := rest.RESTClientForConfigAndClient(cfg, httpClient)
	if err != nil {
		return nil, err
	}
	return &RESTCreator{client: c, mapper: mapper}, nil
}

// Create posts body to the collection of kind in namespace. An error reply is an API status
// error, as a client's Create returns (apierrors.IsAlreadyExists and the others read it).
func (c *RESTCreator) Create(ctx context.Context, kind schema.GroupVersionKind, namespace string, body []byte) ([]byte, error) {
	coll, err := c.collectionOf(kind)
	if err != nil {
		return nil, err
	}
	if coll.namespaced && namespace == "" {
		return nil, fmt.Errorf("a %s is namespaced: it needs a namespace", kind.Kind)
	}
	result := c.client.Post().AbsPath(coll.path(namespace)...).
		Param("fieldManager", ownership.FieldManager).
		SetHeader("Content-Type", runtime.ContentTypeJSON).
		Body(body).Do(ctx)
	// Error, not Raw, reads the API server's Status: its reason, message and causes.
	if err := result.Error(); err != nil {
		return nil, err
	}
	return result.Raw()
}

func (c *RESTCreator) collectionOf(kind schema.GroupVersionKind) (collection, error) {
	if known, ok := c.collections.Load(kind); ok {
		return known.(collection), nil
	}
	mapping, err := c.mapper.RESTMapping(kind.GroupKind(), kind.Version)
	if err != nil {
		return collection{}, err
	}
	coll := collection{prefix: []string{"/apis", kind.Group, kind.Version}, resource: mapping.Resource.Resource,
		namespaced: mapping.Scope.Name() == meta.RESTScopeNameNamespace}
	if kind.Group == "" {
		coll.prefix = []string{"/api", kind.Version}
	}
	c.collections.Store(kind, coll)
	return coll, nil
}

// storedAsSent says whether the object the API server stored (its JSON, reply) is the desired
// one: exactly the desired state, and the desired labels and owner references. As for a
// cached child, the states are compared by their digests (StateDigestOfJSON): equal digests
// mean stateReplacement finds nothing to change (a number spelled another way, -0 for 0, makes
// them differ: a write too many, never one too few).
func (d *desiredObject) storedAsSent(reply []byte) (bool, error) {
	var stored struct {
		Metadata struct {
			Labels          map[string]string       `json:"labels"`
			Annotations     map[string]string       `json:"annotations"`
			OwnerReferences []metav1.OwnerReference `json:"ownerReferences"`
		} `json:"metadata"`
	}
	// Field names as written, as the API server and the unstructured decoding read them.
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(reply, &stored); err != nil {
		return false, fmt.Errorf("reading the created object: %w", err)
	}
	if !hasOwnedMeta(d.obj, &metav1.ObjectMeta{Labels: stored.Metadata.Labels, Annotations: stored.Metadata.Annotations,
		OwnerReferences: stored.Metadata.OwnerReferences}) {
		return false, nil
	}
	want, err := StateDigestOfJSON(d.json)
	if err != nil {
		return false, err
	}
	got, err := StateDigestOfJSON(reply)
	if err != nil {
		return false, fmt.Errorf("reading the created object: %w", err)
	}
	return got == want, nil
}

// clientCreator is the Creator of an Applier given none: a create through its client, whose
// reply is encoded again.
type clientCreator struct{ client client.Client }

func (c clientCreator) Create(ctx context.Context, _ schema.GroupVersionKind, _ string, body []byte) ([]byte, error) {
	obj := &unstructured.Unstructured{}
	if err := obj.UnmarshalJSON(body); err != nil {
		return nil, err
	}
	if err := c.client.Create(ctx, obj, client.FieldOwner(ownership.FieldManager)); err != nil {
		return nil, err
	}
	return obj.MarshalJSON()
}
