package slim_test

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/apirule-operator/apirule-operator/internal/render"
	"github.com/apirule-operator/apirule-operator/internal/slim"
)

// storedForms are the JSON of every VirtualService, AuthorizationPolicy and
// RequestAuthentication the golden tests translate, as the API server sends them back
// (identity, versions, managedFields, a finalizer), each also edited in the ways a stored
// object can differ from what the operator sent, or that only a map reads as the API server
// does.
func storedForms(t testing.TB) map[string][]byte {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join("..", "translate", "testdata", "*.in.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs (%v)", err)
	}
	forms := map[string][]byte{}
	for _, input := range inputs {
		results, err := render.RenderFile(input)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range render.Objects(results) {
			kind := obj.GetObjectKind().GroupVersionKind().Kind
			if kind != "VirtualService" && kind != "AuthorizationPolicy" && kind != "RequestAuthentication" {
				continue
			}
			sent, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			name := filepath.Base(input) + " " + kind + " " + obj.GetNamespace() + "/" + obj.GetName()
			for edit, change := range storedEdits {
				m := map[string]any{}
				if err := json.Unmarshal(sent, &m); err != nil {
					t.Fatal(err)
				}
				asServed(m)
				raw := change(m)
				if raw == nil {
					if raw, err = json.Marshal(m); err != nil {
						t.Fatal(err)
					}
				}
				forms[name+", "+edit] = raw
			}
		}
	}
	return forms
}

// asServed adds what the API server adds to an object it stores.
func asServed(m map[string]any) {
	meta := m["metadata"].(map[string]any)
	meta["uid"], meta["resourceVersion"], meta["generation"] = "5d1c", "412", 1
	meta["creationTimestamp"] = "2026-12-02T06:00:00Z"
	meta["finalizers"] = []any{"example.com/keep"}
	meta["managedFields"] = []any{map[string]any{"manager": "apirule-operator", "operation": "Update", "apiVersion": m["apiVersion"],
		"time": "2026-12-02T06:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:spec": map[string]any{".": map[string]any{}}}}}
	delete(m, "status")
}

// storedEdits change a served object (as a map); an edit that returns JSON replaces the
// encoding of the map.
var storedEdits = map[string]func(m map[string]any) []byte{
	"as served": func(map[string]any) []byte { return nil },
	"a field the operator did not set, with an integer a float64 cannot hold": func(m map[string]any) []byte {
		spec, _ := m["spec"].(map[string]any)
		if spec == nil {
			spec = map[string]any{}
			m["spec"] = spec
		}
		spec["future"] = json.Number("9007199254740993")
		return nil
	},
	"not the operator's": func(m map[string]any) []byte {
		m["metadata"].(map[string]any)["labels"] = map[string]any{"app": "other"}
		return nil
	},
	"being deleted, annotated": func(m map[string]any) []byte {
		meta := m["metadata"].(map[string]any)
		meta["deletionTimestamp"] = "2026-12-02T07:00:00Z"
		meta["annotations"] = map[string]any{"apirule.io/cached-state-digest": "forged", "team": "a"}
		return nil
	},
	"a null spec": func(m map[string]any) []byte { m["spec"] = nil; return nil },
	"no spec":     func(m map[string]any) []byte { delete(m, "spec"); return nil },
	"a Spec besides": func(m map[string]any) []byte {
		m["Spec"] = map[string]any{"hosts": []any{"evil.example.com"}}
		return nil
	},
	"hosts of another type": func(m map[string]any) []byte {
		if spec, ok := m["spec"].(map[string]any); ok {
			spec["hosts"] = []any{"a.example.com", 7}
		}
		return nil
	},
	"a null in the routes": func(m map[string]any) []byte {
		if spec, ok := m["spec"].(map[string]any); ok {
			spec["http"] = []any{nil, map[string]any{"route": []any{nil, map[string]any{"destination": nil}}}}
		}
		return nil
	},
	"routes that are no object, destinations of every shape": func(m map[string]any) []byte {
		if spec, ok := m["spec"].(map[string]any); ok {
			spec["http"] = []any{"x", 5, []any{}, true, map[string]any{"route": nil}, map[string]any{"route": []any{"d", map[string]any{},
				map[string]any{"destination": map[string]any{}}, map[string]any{"destination": map[string]any{"host": nil}},
				map[string]any{"destination": map[string]any{"host": "b.svc", "port": map[string]any{"number": 8080}}}}}}
		}
		return nil
	},
	"the routes no list":    func(m map[string]any) []byte { setSpec(m, "http", map[string]any{"route": []any{}}); return nil },
	"hosts null":            func(m map[string]any) []byte { setSpec(m, "hosts", nil); return nil },
	"gateways no list":      func(m map[string]any) []byte { setSpec(m, "gateways", "istio-system/gw"); return nil },
	"a spec that is a list": func(m map[string]any) []byte { m["spec"] = []any{map[string]any{"hosts": []any{"a"}}}; return nil },
	"a route key in another case": func(m map[string]any) []byte {
		setSpec(m, "http", []any{map[string]any{"Route": []any{map[string]any{"destination": map[string]any{"host": "evil.svc"}}}}})
		return nil
	},
	"managedFields of another type": func(m map[string]any) []byte {
		m["metadata"].(map[string]any)["managedFields"] = 5
		return nil
	},
	"labels of another type": func(m map[string]any) []byte {
		m["metadata"].(map[string]any)["labels"] = []any{"a"}
		return nil
	},
	// Keys twice: the map keeps the last; the struct reading would merge the metadata.
	"the spec twice": func(m map[string]any) []byte {
		raw, _ := json.Marshal(m)
		return append([]byte(`{"spec":{"hosts":["first.example.com"]},`), raw[1:]...)
	},
	"the metadata twice": func(m map[string]any) []byte {
		raw, _ := json.Marshal(m)
		return append([]byte(`{"metadata":{"name":"decoy","labels":{"app":"other"},"ownerReferences":[{"apiVersion":"v1","kind":"X","name":"x","uid":"u"}]},`), raw[1:]...)
	},
	"a label twice": func(m map[string]any) []byte {
		raw, _ := json.Marshal(m)
		return []byte(strings.Replace(string(raw), `"labels":{`, `"labels":{"app.kubernetes.io/managed-by":"someone-else",`, 1))
	},
}

// setSpec sets a field of the spec, a spec made for it when there is none.
func setSpec(m map[string]any, field string, value any) {
	spec, ok := m["spec"].(map[string]any)
	if !ok {
		spec = map[string]any{}
		m["spec"] = spec
	}
	spec[field] = value
}

// The cache builds from a stored object's JSON exactly what it built from the map a dynamic
// client decoded the object into: the same identity, owner, hosts, gateways, destinations,
// state digest and rule digests, or an error where that failed.
func TestAStoredObjectReadFromItsJSONIsTheOneReadFromItsMap(t *testing.T) {
	forms := storedForms(t)
	for name, raw := range forms {
		fromMap, errMap := slim.StoredFromMap(raw)
		fromJSON, err := slim.StoredFromJSON(raw)
		if (errMap != nil) != (err != nil) {
			t.Errorf("%s: from the map: %v; from the JSON: %v", name, errMap, err)
			continue
		}
		if diff := cmp.Diff(fromMap, fromJSON, protocmp.Transform()); diff != "" {
			t.Errorf("%s: read from its JSON (+) differs from the map's (-):\n%s", name, diff)
		}
	}
	if len(forms) < 500 {
		t.Errorf("only %d stored objects compared", len(forms))
	}
}

// FuzzStoredObjectFromJSON: whatever JSON the API server could send, the two readings agree.
func FuzzStoredObjectFromJSON(f *testing.F) {
	forms := storedForms(f)
	seeded := 0
	for _, raw := range forms {
		if seeded%7 == 0 {
			f.Add(raw)
		}
		seeded++
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fromMap, errMap := slim.StoredFromMap(raw)
		if errMap != nil {
			return // not an object of a stored kind, or not JSON: the map path never saw it
		}
		fromJSON, err := slim.StoredFromJSON(raw)
		if err != nil {
			t.Fatalf("%q: from the map %v, from the JSON: %v", raw, fromMap, err)
		}
		if diff := cmp.Diff(fromMap, fromJSON, protocmp.Transform()); diff != "" {
			t.Fatalf("%q: read from its JSON (+) differs from the map's (-):\n%s", raw, diff)
		}
	})
}
