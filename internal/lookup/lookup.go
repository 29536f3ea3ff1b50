// Package lookup holds the field indexes of the operator's cache as values that are looked up
// with their own List, never with a field selector written by hand: an index whose values
// are (almost) one per object is kept hashed into buckets, and only its List knows to keep of
// a bucket the objects that hold the value.
//
// Why buckets: client-go's indexer keeps, for every value of an index, a set of the keys of
// the objects that hold it, and a set costs about 280 bytes however few keys it holds. The
// operator's indexes by host, backend Service, route destination, owner and label pair have
// one value per workload, nine of them per APIRule: about 25 MB of the cache at 10,000
// APIRules (docs/performance.md). Kept as one of 1,024 buckets per index (and namespace),
// the same values cost about 50 bytes each, and a lookup reads the few objects of its bucket
// as they are in the cache, keeping and copying only those that hold the value.
package lookup

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Index is a field index of the cache.
type Index struct {
	name string
	// values are, for a hashed index, the values an object is looked up by; nil for a plain
	// index, which keeps its values as they are.
	values func(client.Object) []string
}

// Plain is an index whose values are shared by many objects (a Gateway, a namespace, a
// marker), kept as they are.
func Plain(name string) Index { return Index{name: name} }

// Hashed is an index whose values are about one per object, kept as their buckets; values
// are the values an object is looked up by.
func Hashed(name string, values func(client.Object) []string) Index {
	return Index{name: name, values: values}
}

// Name is the index's name, under which it is registered.
func (i Index) Name() string { return i.name }

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

// List lists into list the objects whose index holds value, with opts (client.InNamespace
// for an index looked up within a namespace). Of a hashed index's bucket it keeps the objects
// whose values hold value; it reads the bucket as the cache holds it and copies only those,
// when the reader can tell the kind of what it lists (as a client can: the copies get it, as
// the cache's own copies do), and reads copies of the whole bucket otherwise.
func (i Index) List(ctx context.Context, reader client.Reader, list client.ObjectList, value string, opts ...client.ListOption) error {
	if !i.IsHashed() {
		return reader.List(ctx, list, append(opts, client.MatchingFields{i.name: value})...)
	}
	opts = append(opts, client.MatchingFields{i.name: bucket(value)})
	// The kind of the items, as the cache's reader gives its copies.
	var gvk schema.GroupVersionKind
	kinds, shared := reader.(interface {
		GroupVersionKindFor(runtime.Object) (schema.GroupVersionKind, error)
	})
	if shared {
		listGVK, err := kinds.GroupVersionKindFor(list)
		if err != nil {
			return err
		}
		gvk = listGVK.GroupVersion().WithKind(strings.TrimSuffix(listGVK.Kind, "List"))
		opts = append(opts, client.UnsafeDisableDeepCopy)
	}
	if err := reader.List(ctx, list, opts...); err != nil {
		return err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return err
	}
	kept := make([]runtime.Object, 0, 1)
	for _, item := range items {
		obj, ok := item.(client.Object)
		if !ok {
			return fmt.Errorf("index %s: listed a %T", i.name, item)
		}
		if !slices.Contains(i.values(obj), value) {
			continue
		}
		if shared {
			// The item shares its maps and slices with the cache.
			obj = obj.DeepCopyObject().(client.Object)
			obj.GetObjectKind().SetGroupVersionKind(gvk)
		}
		kept = append(kept, obj)
	}
	return meta.SetList(list, kept)
}
