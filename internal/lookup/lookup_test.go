package lookup

import (
	"context"
	"fmt"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
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

// sharedReader is a reader that, as the operator's cache does, hands out its own objects when
// asked not to copy them, and matches a field selector against the stored index values.
type sharedReader struct {
	objects []*corev1.ConfigMap
	index   Index
}

func (r *sharedReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return fmt.Errorf("not used")
}

func (r *sharedReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := (&client.ListOptions{}).ApplyOptions(opts)
	if o.UnsafeDisableDeepCopy == nil || !*o.UnsafeDisableDeepCopy {
		return fmt.Errorf("asked for copies")
	}
	out := list.(*corev1.ConfigMapList)
	for _, obj := range r.objects {
		if o.FieldSelector.Matches(fields.Set{r.index.Name(): r.index.Stored(r.index.Values(obj))[0]}) {
			out.Items = append(out.Items, *obj)
		}
	}
	return nil
}

func (r *sharedReader) GroupVersionKindFor(obj runtime.Object) (schema.GroupVersionKind, error) {
	if _, ok := obj.(*corev1.ConfigMapList); !ok {
		return schema.GroupVersionKind{}, fmt.Errorf("unexpected %T", obj)
	}
	return corev1.SchemeGroupVersion.WithKind("ConfigMapList"), nil
}

// Two hosts in one bucket: a lookup of each finds its own objects only, through a fake client
// (which copies everything) and through a reader that shares its objects (of which only the
// objects kept are copied, with their kind).
func TestAHashedLookupKeepsOnlyTheObjectsThatHoldTheValue(t *testing.T) {
	a, b := sameBucket(t)
	objects := []*corev1.ConfigMap{configMap("a-0", a), configMap("b-0", b), configMap("a-1", a)}

	builder := fake.NewClientBuilder().WithIndex(&corev1.ConfigMap{}, byHost.Name(), func(obj client.Object) []string {
		return byHost.Stored(byHost.Values(obj))
	})
	for _, obj := range objects {
		builder = builder.WithObjects(obj.DeepCopy())
	}
	shared := &sharedReader{objects: objects, index: byHost}
	for name, reader := range map[string]client.Reader{"fake client": builder.Build(), "shared objects": shared} {
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

	list := &corev1.ConfigMapList{}
	if err := byHost.List(context.Background(), shared, list, b); err != nil {
		t.Fatal(err)
	}
	list.Items[0].Labels["host"] = "changed"
	if objects[1].Labels["host"] != b {
		t.Errorf("changing a listed object changed the reader's own")
	}
	if gvk := list.Items[0].GroupVersionKind(); gvk != corev1.SchemeGroupVersion.WithKind("ConfigMap") {
		t.Errorf("listed with kind %v, want ConfigMap", gvk)
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
