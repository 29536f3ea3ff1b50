package slim

import (
	"encoding/binary"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Decoding gives every string of every object the API server sends a copy of its own, and
// most strings of the cached objects are the same in thousands of them: namespaces, label keys
// and values, owner kinds, finalizers, and in APIRules the gateway, methods, issuers, condition
// reasons and messages, the kinds of the generated objects. The transforms replace each such
// string by one shared copy, taken from a bounded table: the cache then holds each of them
// once, however many objects carry it: with its label sets, a third of what a decoded APIRule
// with its status costs in memory (BenchmarkCachedAPIRule). Go strings are immutable, so
// sharing one changes nothing a reader sees.

// stringTable keeps one copy of each string it was given, in two generations: when the current
// generation is full it becomes the previous one, and a string found there moves back to the
// current one. Strings seen again and again (the shared ones) stay; strings seen once (names,
// hosts) leave the table after two generations, while the objects that hold them keep theirs.
// So the table never grows past two generations, whatever the cluster holds.
type stringTable struct {
	mu                sync.Mutex
	limit             int
	current, previous map[string]string
	// labels are the label sets (and selectors) kept once, by their content (labelsKey), in
	// the same two generations.
	labels, previousLabels map[string]map[string]string
}

// internedMax is the longest string the table keeps: a longer one (a certificate, a message
// that names objects) is rarely shared, and keeping it would cost more than it saves.
const internedMax = 256

func newStringTable(limit int) *stringTable {
	return &stringTable{limit: limit, current: make(map[string]string, limit), labels: map[string]map[string]string{}}
}

// sharedStrings is the table of the operator's cache: 16,384 strings and as many label sets a
// generation. What it holds of its own is bounded in bytes as well as in count: strings of at
// most internedMax bytes, label sets whose content (labelsKey) is at most sharedLabelsMax
// bytes, so about 30 MiB if every entry were as large as allowed, and far less for real
// labels (the children of an APIRule: about 100 bytes); the strings and sets themselves
// belong to the cached objects, which hold them anyway.
var sharedStrings = newStringTable(1 << 14)

// intern returns the table's copy of s, which equals s.
func (t *stringTable) intern(s string) string {
	if s == "" || len(s) > internedMax {
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.internLocked(s)
}

func (t *stringTable) internLocked(s string) string {
	if s == "" || len(s) > internedMax {
		return s
	}
	if kept, ok := t.current[s]; ok {
		return kept
	}
	kept, ok := t.previous[s]
	if !ok {
		// A copy of its own, so that the table holds no larger buffer s may be part of.
		kept = strings.Clone(s)
	}
	if len(t.current) >= t.limit {
		t.previous, t.current = t.current, make(map[string]string, t.limit)
	}
	t.current[kept] = kept
	return kept
}

// internMeta shares the strings of an object's metadata that other objects carry too. Its own
// name, UID and resourceVersion are left alone: no other object has them.
func (t *stringTable) internMeta(m metav1.Object) {
	m.SetNamespace(t.intern(m.GetNamespace()))
	if labels := m.GetLabels(); labels != nil {
		m.SetLabels(t.internLabels(labels))
	}
	if annotations := m.GetAnnotations(); annotations != nil {
		m.SetAnnotations(t.internMap(annotations))
	}
	finalizers := m.GetFinalizers()
	for i := range finalizers {
		finalizers[i] = t.intern(finalizers[i])
	}
	owners := m.GetOwnerReferences()
	for i := range owners {
		t.internOwner(&owners[i])
	}
}

func (t *stringTable) internOwner(owner *metav1.OwnerReference) {
	owner.APIVersion = t.intern(owner.APIVersion)
	owner.Kind = t.intern(owner.Kind)
	// The owner's name is shared by its children (and their owner labels).
	owner.Name = t.intern(owner.Name)
}

// internLabels is the one kept label set (or selector, or small annotation set such as a
// slim Pod's) with the content of labels. Objects
// that belong together carry the same one: the children of an APIRule, the Pods of a
// ReplicaSet, a workload's Pods and its Service's selector. The set is shared as its strings
// are: the cache's objects are never changed in place (every read of the cache returns a
// copy), and the transforms build new maps rather than change the ones they received. A set
// whose content is longer than sharedLabelsMax is copied with shared strings only.
func (t *stringTable) internLabels(labels map[string]string) map[string]string {
	key, ok := labelsKey(labels)
	if !ok {
		return t.internMap(labels)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	kept, ok := t.labels[key]
	if !ok {
		if kept, ok = t.previousLabels[key]; !ok {
			kept = make(map[string]string, len(labels))
			for k, v := range labels {
				kept[t.internLocked(k)] = t.internLocked(v)
			}
		}
		if len(t.labels) >= t.limit {
			t.previousLabels, t.labels = t.labels, map[string]map[string]string{}
		}
		t.labels[key] = kept
	}
	return kept
}

// sharedLabelsMax is the longest content (labelsKey) of a label set the table keeps.
const sharedLabelsMax = 256

// labelsKey is the content of a label set as one string, and whether it is short enough to be
// kept: its pairs in key order, each key and value preceded by its length, so that no two
// different sets have one content whatever bytes they hold (annotation values, unlike labels,
// may hold any).
func labelsKey(labels map[string]string) (string, bool) {
	content := 0
	for k, v := range labels {
		content += len(k) + len(v)
	}
	if len(labels) == 0 || content > sharedLabelsMax {
		return "", false
	}
	key := make([]byte, 0, content+len(labels)*2*binary.MaxVarintLen64)
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		key = binary.AppendUvarint(key, uint64(len(k)))
		key = append(key, k...)
		key = binary.AppendUvarint(key, uint64(len(labels[k])))
		key = append(key, labels[k]...)
	}
	return string(key), true
}

// internMap is a copy of m with shared keys and values.
func (t *stringTable) internMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[t.intern(k)] = t.intern(v)
	}
	return out
}

// internFields shares every string reachable from v through exported fields, pointers, slices
// and string maps: the spec and status of an APIRule, whose types may grow without this code
// having to follow.
func (t *stringTable) internFields(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(t.intern(v.String()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			t.internFields(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				t.internFields(v.Field(i))
			}
		}
	case reflect.Slice:
		// Bytes (raw JSON) are no strings.
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := range v.Len() {
			t.internFields(v.Index(i))
		}
	case reflect.Map:
		t.internMapValue(v)
	}
}

// internMapValue shares the keys of a string-keyed map and its values: a map of strings is
// copied with shared ones, and the values of another map are copied, shared, and put back.
func (t *stringTable) internMapValue(v reflect.Value) {
	if v.IsNil() || !v.CanSet() || v.Type().Key().Kind() != reflect.String {
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), v.Len())
	for it := v.MapRange(); it.Next(); {
		key := reflect.New(v.Type().Key()).Elem()
		key.SetString(t.intern(it.Key().String()))
		value := reflect.New(v.Type().Elem()).Elem()
		value.Set(it.Value())
		t.internFields(value)
		out.SetMapIndex(key, value)
	}
	v.Set(out)
}
