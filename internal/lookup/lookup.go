// Package lookup holds the field indexes of the operator's cache as values that are looked up
// with their own List, never with a field selector written by hand: an index whose values
// are (almost) one per object is kept hashed into buckets, and only its List knows to keep of
// a bucket the objects that hold the value.
//
// Why buckets: client-go's indexer keeps, for every value of an index, a set of the keys of
// the objects that hold it, and a set costs about 330 bytes however few keys it holds. The
// operator's indexes by host, backend Service, route destination, owner and label pair have
// one value per workload, nine of them per APIRule: 31 MB of a 130 MB heap at 10,000
// APIRules (docs/performance.md). Kept as one of 1,024 buckets per index (and namespace),
// the same values cost about 50 bytes each, and a lookup reads the few objects of its bucket
// as they are in the cache (CachedClient), keeping and copying only those that hold the value.
package lookup

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Index is a field index of the cache.
type Index struct {
	name string
	// values are, for a hashed index, the values an object is looked up by; nil for a plain
	// index, which keeps its values as they are.
	values func(client.Object) []string
	// holds says whether an object's values hold one, where that is cheaper than listing
	// them; nil: look in values.
	holds func(client.Object, string) bool
}

// Plain is an index whose values are shared by many objects (a Gateway, a namespace, a
// marker), kept as they are.
func Plain(name string) Index { return Index{name: name} }

// Hashed is an index whose values are about one per object, kept as their buckets; values
// are the values an object is looked up by.
func Hashed(name string, values func(client.Object) []string) Index {
	return Index{name: name, values: values}
}

// HashedPairs is a hashed index whose values are the key=value pairs (Pairs) of a map an
// object carries: its labels, a selector. Whether an object holds a pair is read off the map,
// without building every pair: the API server lets no label or selector key hold "=", so a
// pair has one key and one value. A map with such a key (apirulectl's input files are not
// validated as the API server validates objects) is answered by its pairs.
func HashedPairs(name string, pairs func(client.Object) map[string]string) Index {
	return Index{
		name:   name,
		values: func(obj client.Object) []string { return Pairs(pairs(obj)) },
		holds: func(obj client.Object, pair string) bool {
			m := pairs(obj)
			key, value, ok := strings.Cut(pair, "=")
			if got, has := m[key]; ok && has && got == value {
				return true
			}
			for k := range m {
				if strings.Contains(k, "=") {
					return slices.Contains(Pairs(m), pair)
				}
			}
			return false
		},
	}
}

// Pairs returns a map as key=value pairs.
func Pairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

// hold says whether obj's values hold value.
func (i Index) hold(obj client.Object, value string) bool {
	if i.holds != nil {
		return i.holds(obj, value)
	}
	return slices.Contains(i.values(obj), value)
}

// Name is the index's name.
func (i Index) Name() string { return i.name }

// Field is the field name under which the index is registered with a cache or a fake client.
// A hashed index's differs from its name, so that a field selector written by hand with the
// name and a value (which would find nothing in a bucket) is an error: no such index.
func (i Index) Field() string {
	if i.IsHashed() {
		return i.name + "/buckets"
	}
	return i.name
}

// IsHashed says whether the index keeps buckets rather than values.
func (i Index) IsHashed() bool { return i.values != nil }

// Values are the values obj is looked up by in a hashed index.
func (i Index) Values(obj client.Object) []string { return i.values(obj) }

// Stored are the index values under which the cache keeps values: for a hashed index their
// buckets, each once; for a plain one the values themselves.
func (i Index) Stored(values []string) []string {
	if !i.IsHashed() {
		return values
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		if b := bucket(v); !slices.Contains(out, b) {
			out = append(out, b)
		}
	}
	return out
}

// buckets is the number of buckets of a hashed index: at 10,000 values about ten values
// share one, so a set of keys holds about ten, and a lookup reads about ten objects.
const buckets = 1024

var bucketNames = func() []string {
	names := make([]string, buckets)
	for i := range names {
		names[i] = "#" + strconv.Itoa(i)
	}
	return names
}()

// seed is the process's own: the buckets are never stored or sent, and values an attacker
// chose (hosts, labels) cannot be made to fill one bucket.
var seed = maphash.MakeSeed()

func bucket(value string) string { return bucketNames[maphash.String(seed, value)%buckets] }

// Informers is what a CachedClient needs of the cache its reads go to.
type Informers interface {
	GetInformer(ctx context.Context, obj client.Object, opts ...cache.InformerGetOption) (cache.Informer, error)
}

// CachedClient is a client whose reads go to a cache, with that cache's informers: a hashed
// index's List reads a bucket from the informer's indexer itself, so the objects of the bucket
// it does not keep are not copied.
type CachedClient struct {
	client.Client
	// Informers is the cache's; not to be replaced in a client NewCachedClient made, whose
	// remembered informers are that cache's.
	Informers Informers
	// synced remembers the informers lists were read from once synced (NewCachedClient); nil:
	// every lookup finds its informer.
	synced *sync.Map // informerKey -> syncedInformer
}

// NewCachedClient is a CachedClient that remembers the synced informer of each kind it lists.
func NewCachedClient(c client.Client, informers Informers) CachedClient {
	return CachedClient{Client: c, Informers: informers, synced: &sync.Map{}}
}

// The forms of controller-runtime's cache reader (pkg/cache/internal, not importable): a
// field index is registered as field:<name>, a value kept under <namespace>/<value>, or under
// __all_namespaces/<value> for a lookup across namespaces. The envtest cache spec fails if
// they change.
const allNamespaces = "__all_namespaces"

// IndexerName is the name under which the cache's informer keeps the index registered as
// field (Field).
func IndexerName(field string) string { return "field:" + field }

// IndexerKey is the key under which the cache's informer keeps a value stored (Stored) in
// namespace; "" for a lookup across namespaces.
func IndexerKey(namespace, stored string) string {
	if namespace == "" {
		namespace = allNamespaces
	}
	return namespace + "/" + stored
}

// List lists into list the objects whose index holds value, with opts (client.InNamespace
// for an index looked up within a namespace). Of a hashed index's bucket it keeps the objects
// whose values hold value: through a CachedClient it reads the bucket from the cache's
// informer and copies only those (with their kind, as the cache's reader gives its copies);
// through another reader it lists copies of the whole bucket.
func (i Index) List(ctx context.Context, reader client.Reader, list client.ObjectList, value string, opts ...client.ListOption) error {
	if !i.IsHashed() {
		return reader.List(ctx, list, append(opts, client.MatchingFields{i.Field(): value})...)
	}
	if cached, ok := reader.(CachedClient); ok {
		if read, err := i.listFromInformer(ctx, cached, list, value, opts); read || err != nil {
			return err
		}
	}
	if err := reader.List(ctx, list, append(opts, client.MatchingFields{i.Field(): bucket(value)})...); err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	kept := make([]runtime.Object, 0, 1)
	for _, item := range items {
		if obj, ok := item.(client.Object); ok && i.hold(obj, value) {
			kept = append(kept, item)
		}
	}
	return meta.SetList(list, kept)
}

// listFromInformer lists value's bucket from the cache's informer of the list's kind. It
// leaves the list to the cache's reader (false) when the options ask for more than a
// namespace, the list is unstructured, the informer keeps no indexer of its own (a cache of
// several namespaces), or the informer has not synced: the cache has not started, its indexer
// is empty, and the reader says so rather than answering with nothing.
func (i Index) listFromInformer(ctx context.Context, c CachedClient, list client.ObjectList, value string, opts []client.ListOption) (bool, error) {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	if o.LabelSelector != nil || o.FieldSelector != nil || o.Limit > 0 || o.Continue != "" {
		return false, nil
	}
	if _, unstructured := list.(runtime.Unstructured); unstructured {
		// Its kind's informer is an unstructured one, which the reader finds.
		return false, nil
	}
	indexer, kind, synced, err := c.syncedIndexer(ctx, list)
	if err != nil || !synced {
		return false, err
	}
	objs, err := indexer.ByIndex(IndexerName(i.Field()), IndexerKey(o.Namespace, bucket(value)))
	if err != nil {
		return false, err
	}
	kept := make([]runtime.Object, 0, 1)
	for _, item := range objs {
		// The cache's own object: read, never written.
		obj, ok := item.(client.Object)
		if !ok || !i.hold(obj, value) {
			continue
		}
		copied := obj.DeepCopyObject().(client.Object)
		copied.GetObjectKind().SetGroupVersionKind(kind)
		kept = append(kept, copied)
	}
	return true, meta.SetList(list, kept)
}

// informerKey names the informer of one form of list (typed or metadata).
type informerKey struct {
	listKind schema.GroupVersionKind
	metadata bool
}

type syncedInformer struct {
	informer toolscache.SharedIndexInformer
	kind     schema.GroupVersionKind
}

// syncedIndexer is the indexer of the informer of the list's kind, and that kind; false while
// the informer has not synced or keeps no indexer of its own.
func (c CachedClient) syncedIndexer(ctx context.Context, list client.ObjectList) (toolscache.Indexer, schema.GroupVersionKind, bool, error) {
	listKind, err := c.GroupVersionKindFor(list)
	if err != nil {
		return nil, schema.GroupVersionKind{}, false, err
	}
	_, metadata := list.(*metav1.PartialObjectMetadataList)
	key := informerKey{listKind: listKind, metadata: metadata}
	// A cache keeps an informer for its life, so its kind, prototype and informer need not be
	// found again on every lookup (they were a sixth of the lookups' CPU); a stopped informer
	// (its cache stopped, or the informer removed) is found again.
	if c.synced != nil {
		if known, ok := c.synced.Load(key); ok {
			if known := known.(syncedInformer); !known.informer.IsStopped() {
				return known.informer.GetIndexer(), known.kind, true, nil
			}
			c.synced.CompareAndDelete(key, known)
		}
	}
	kind := listKind.GroupVersion().WithKind(strings.TrimSuffix(listKind.Kind, "List"))
	var prototype client.Object
	if metadata {
		prototype = &metav1.PartialObjectMetadata{}
		prototype.GetObjectKind().SetGroupVersionKind(kind)
	} else {
		obj, err := c.Scheme().New(kind)
		if err != nil {
			return nil, kind, false, err
		}
		if prototype, _ = obj.(client.Object); prototype == nil {
			return nil, kind, false, fmt.Errorf("a %T is no object", obj)
		}
	}
	informer, err := c.Informers.GetInformer(ctx, prototype)
	if err != nil {
		return nil, kind, false, err
	}
	shared, ok := informer.(toolscache.SharedIndexInformer)
	if !ok || !shared.HasSynced() {
		return nil, kind, false, nil
	}
	if c.synced != nil {
		c.synced.Store(key, syncedInformer{informer: shared, kind: kind})
	}
	return shared.GetIndexer(), kind, true, nil
}
