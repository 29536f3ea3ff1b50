package lookup

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

var byHost = Hashed("test/hosts", func(obj client.Object) []string { return []string{obj.GetLabels()["host"]} })

func configMap(name, host string) *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: name, Labels: map[string]string{"host": host}}}
}

// sameBucket are two different hosts whose bucket is one.
func sameBucket(t *testing.T) (string, string) {
	t.Helper()
	seen := map[string]string{}
	for i := range 100 * buckets {
		host := fmt.Sprintf("h%d.example.com", i)
		if other, ok := seen[bucket(host)]; ok {
			return other, host
		}
		seen[bucket(host)] = host
	}
	t.Fatal("no two hosts share a bucket")
	return "", ""
}

// informers hands out one informer, whose indexer holds the cache's own objects.
type informers struct {
	informer toolscache.SharedIndexInformer
}

// synced is an informer whose indexer was filled by hand, as if it had listed.
type synced struct{ toolscache.SharedIndexInformer }

func (synced) HasSynced() bool { return true }

func (i informers) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	return i.informer, nil
}

// Two hosts in one bucket: a lookup of each finds its own objects only, through a fake client
// (which copies the whole bucket) and through a CachedClient (which reads the bucket from the
// informer and copies only the objects it keeps, with their kind).
func TestAHashedLookupKeepsOnlyTheObjectsThatHoldTheValue(t *testing.T) {
	a, b := sameBucket(t)
	objects := []*corev1.ConfigMap{configMap("a-0", a), configMap("b-0", b), configMap("a-1", a)}
	stored := func(obj client.Object) []string { return byHost.Stored(byHost.Values(obj)) }

	builder := fake.NewClientBuilder().WithIndex(&corev1.ConfigMap{}, byHost.Field(), stored)
	for _, obj := range objects {
		builder = builder.WithObjects(obj.DeepCopy())
	}
	indexers := toolscache.Indexers{
		IndexerName(byHost.Field()): func(obj any) ([]string, error) {
			var keys []string
			for _, v := range stored(obj.(client.Object)) {
				keys = append(keys, IndexerKey("", v))
			}
			return keys, nil
		},
	}
	informer := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{}, &corev1.ConfigMap{}, 0, indexers)
	for _, obj := range objects {
		if err := informer.GetIndexer().Add(obj); err != nil {
			t.Fatal(err)
		}
	}
	// Its reads of the bucket go to the informer: the client itself holds nothing.
	cached := NewCachedClient(fake.NewClientBuilder().Build(), informers{synced{informer}})
	withIndex := builder.Build()
	for name, reader := range map[string]client.Reader{"fake client": withIndex, "cached client": cached} {
		for host, want := range map[string][]string{a: {"a-0", "a-1"}, b: {"b-0"}, "none.example.com": nil} {
			list := &corev1.ConfigMapList{}
			if err := byHost.List(context.Background(), reader, list, host); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var got []string
			for _, item := range list.Items {
				got = append(got, item.Name)
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("%s: %s found %v, want %v", name, host, got, want)
			}
		}
	}

	// A selector written by hand with the index's name is refused, not answered with nothing.
	if err := withIndex.List(context.Background(), &corev1.ConfigMapList{}, client.MatchingFields{byHost.Name(): a}); err == nil {
		t.Errorf("a field selector of the hashed index's name was answered")
	}
	// Until the informer has synced its indexer says nothing: the reader answers instead.
	unsynced := CachedClient{Client: withIndex, Informers: informers{informer}}
	list := &corev1.ConfigMapList{}
	if err := byHost.List(context.Background(), unsynced, list, b); err != nil || len(list.Items) != 1 {
		t.Errorf("listed %v (%v) before the informer synced, want b-0 from the reader", list.Items, err)
	}
	list = &corev1.ConfigMapList{}
	if err := byHost.List(context.Background(), cached, list, b); err != nil {
		t.Fatal(err)
	}
	list.Items[0].Labels["host"] = "changed"
	if objects[1].Labels["host"] != b {
		t.Errorf("changing a listed object changed the cache's own")
	}
	if gvk := list.Items[0].GroupVersionKind(); gvk != corev1.SchemeGroupVersion.WithKind("ConfigMap") {
		t.Errorf("listed with kind %v, want ConfigMap", gvk)
	}

	// A synced informer is remembered for its cache: the informer itself, so what the cache
	// receives later is found; another cache's lookups read their own informer.
	if _, remembered := cached.synced.Load(informerKey{listKind: corev1.SchemeGroupVersion.WithKind("ConfigMapList")}); !remembered {
		t.Error("the synced informer is not remembered")
	}
	if err := informer.GetIndexer().Add(configMap("b-1", b)); err != nil {
		t.Fatal(err)
	}
	list = &corev1.ConfigMapList{}
	if err := byHost.List(context.Background(), cached, list, b); err != nil || len(list.Items) != 2 {
		t.Errorf("listed %v (%v) after b-1 arrived, want b-0 and b-1", list.Items, err)
	}
	empty := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{}, &corev1.ConfigMap{}, 0, indexers)
	other := NewCachedClient(fake.NewClientBuilder().Build(), informers{synced{empty}})
	list = &corev1.ConfigMapList{}
	if err := byHost.List(context.Background(), other, list, b); err != nil || len(list.Items) != 0 {
		t.Errorf("another cache listed %v (%v), want nothing", list.Items, err)
	}
}

// A hashed index stores each bucket of an object's values once; a plain one its values.
func TestStoredValues(t *testing.T) {
	a, b := sameBucket(t)
	if got := byHost.Stored([]string{a, b, a}); len(got) != 1 || got[0] != bucket(a) {
		t.Errorf("stored %v, want the one bucket %s", got, bucket(a))
	}
	if got := Plain("p").Stored([]string{a, b}); !slices.Equal(got, []string{a, b}) {
		t.Errorf("a plain index stored %v", got)
	}
}

// A pairs index holds exactly the pairs it stores: the test that reads the map agrees with the
// list of pairs, for pairs it has and for those it has not.
func TestHashedPairsHoldWhatTheyStore(t *testing.T) {
	byLabel := HashedPairs("test/labels", func(obj client.Object) map[string]string { return obj.GetLabels() })
	obj := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web", "tier": "", "example.com/team": "a-b"}}}
	stored := byLabel.Values(obj)
	if len(stored) != 3 {
		t.Fatalf("values %v, want a pair per label", stored)
	}
	for _, pair := range append(stored, "app=", "app=webx", "tier", "app", "=web", "team=a-b", "example.com/team=a", "") {
		if got, want := byLabel.hold(obj, pair), slices.Contains(stored, pair); got != want {
			t.Errorf("holds %q: %v, but the stored pairs %v say %v", pair, got, stored, want)
		}
	}
	if byLabel.hold(&corev1.ConfigMap{}, "app=web") {
		t.Errorf("an object without labels holds a pair")
	}
	// A key with "=" (no API server takes one; an unvalidated input file may hold one).
	odd := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a=b": "c", "a": "x"}}}
	for _, pair := range []string{"a=b=c", "a=x", "a=b", "a"} {
		if got, want := byLabel.hold(odd, pair), slices.Contains(byLabel.Values(odd), pair); got != want {
			t.Errorf("holds %q of %v: %v, want %v", pair, odd.Labels, got, want)
		}
	}
}

// countingInformers hands out the informer it holds now and counts how often it was asked.
type countingInformers struct {
	informer toolscache.SharedIndexInformer
	asked    atomic.Int64
}

func (i *countingInformers) GetInformer(context.Context, client.Object, ...cache.InformerGetOption) (cache.Informer, error) {
	i.asked.Add(1)
	return i.informer, nil
}

// stoppable is a synced informer, filled by hand, that says it has stopped once told.
type stoppable struct {
	toolscache.SharedIndexInformer
	stopped *atomic.Bool
}

func (stoppable) HasSynced() bool   { return true }
func (s stoppable) IsStopped() bool { return s.stopped.Load() }

// The informer of a kind is asked for once while it runs; once it has stopped (its cache
// stopped, or the informer was removed), the next lookup asks for the kind's informer again
// and reads the new one.
func TestAStoppedInformerIsNotRemembered(t *testing.T) {
	a, _ := sameBucket(t)
	indexers := toolscache.Indexers{
		IndexerName(byHost.Field()): func(obj any) ([]string, error) {
			var keys []string
			for _, v := range byHost.Stored(byHost.Values(obj.(client.Object))) {
				keys = append(keys, IndexerKey("", v))
			}
			return keys, nil
		},
	}
	holding := func(obj *corev1.ConfigMap) stoppable {
		informer := toolscache.NewSharedIndexInformer(&toolscache.ListWatch{}, &corev1.ConfigMap{}, 0, indexers)
		if err := informer.GetIndexer().Add(obj); err != nil {
			t.Fatal(err)
		}
		return stoppable{SharedIndexInformer: informer, stopped: &atomic.Bool{}}
	}
	first := holding(configMap("a-0", a))
	informers := &countingInformers{informer: first}
	cached := NewCachedClient(fake.NewClientBuilder().Build(), informers)
	names := func() []string {
		list := &corev1.ConfigMapList{}
		if err := byHost.List(context.Background(), cached, list, a); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, item := range list.Items {
			got = append(got, item.Name)
		}
		return got
	}
	for range 3 {
		if got := names(); !slices.Equal(got, []string{"a-0"}) {
			t.Fatalf("found %v, want a-0", got)
		}
	}
	if n := informers.asked.Load(); n != 1 {
		t.Errorf("the informer was asked for %d times, want once", n)
	}

	first.stopped.Store(true)
	informers.informer = holding(configMap("a-1", a))
	if got := names(); !slices.Equal(got, []string{"a-1"}) {
		t.Errorf("found %v after the informer stopped, want a-1 from the new one", got)
	}
	if n := informers.asked.Load(); n != 2 {
		t.Errorf("the informer was asked for %d times, want twice", n)
	}
}
