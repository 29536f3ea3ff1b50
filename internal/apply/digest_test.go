package apply_test

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	sigsjson "sigs.k8s.io/json"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/render"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// viaMap is the StateDigest of raw decoded into a map, as the applier computed it before.
func viaMap(raw []byte) (string, error) {
	m := map[string]any{}
	if err := json.Unmarshal(raw, &m); err != nil {
		return "", err
	}
	return apply.StateDigest(m)
}

// viaStoredMap is the StateDigest of raw decoded as the API server's JSON decodes into
// unstructured (integers as int64), as the cache computed a stored object's digest before.
func viaStoredMap(raw []byte) (string, error) {
	m := map[string]any{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(raw, &m); err != nil {
		return "", err
	}
	return apply.StateDigest(m)
}

// Every object the golden tests translate, encoded as the applier encodes it (its typed JSON:
// Istio's own encoding of the spec), has the same digest read as JSON as decoded into a map.
func TestTheDigestOfJSONIsTheDigestOfItsMapForEveryGoldenObject(t *testing.T) {
	objects := goldenObjects(t)
	for _, obj := range objects {
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		u, err := manifest.ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		want, err := apply.StateDigest(u.Object)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := apply.StateDigestOfJSON(raw); err != nil || got != want {
			t.Errorf("%s %s/%s: digest %s (%v), want %s", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), got, err, want)
		}
	}
	if len(objects) < 100 {
		t.Errorf("only %d objects compared", len(objects))
	}
}

// BenchmarkStateDigest digests every object the golden tests translate, from its JSON as the
// applier encodes it: read as JSON (StateDigestOfJSON) and decoded into a map (as before).
func BenchmarkStateDigest(b *testing.B) {
	var encoded [][]byte
	for _, obj := range goldenObjects(b) {
		raw, err := json.Marshal(obj)
		if err != nil {
			b.Fatal(err)
		}
		encoded = append(encoded, raw)
	}
	for name, digest := range map[string]func([]byte) (string, error){"json": apply.StateDigestOfJSON, "map": viaMap} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				for _, raw := range encoded {
					if _, err := digest(raw); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// goldenObjects are the objects translated from every golden input.
func goldenObjects(t testing.TB) []translate.Object {
	t.Helper()
	inputs, err := filepath.Glob(filepath.Join("..", "translate", "testdata", "*.in.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs (%v)", err)
	}
	var objects []translate.Object
	for _, input := range inputs {
		results, err := render.RenderFile(input)
		if err != nil {
			t.Fatal(err)
		}
		objects = append(objects, render.Objects(results)...)
	}
	return objects
}

// JSON that encoding/json would write differently, or that only a map would resolve: escapes,
// characters it escapes for HTML, non-ASCII and invalid UTF-8, numbers of every form,
// duplicate keys, whitespace, nesting, and the fields that are not state.
var digestCases = []string{
	`{}`,
	`{"spec":{}}`,
	`{"apiVersion":"v1","kind":"X","metadata":{"name":"a"},"status":{"b":1}}`,
	`{"spec":{"b":1,"a":2,"c":{"z":[],"y":{}}},"type":"Opaque","data":{"k":"dmFsdWU="}}`,
	`{"spec":{"hosts":["a.example.com","*.example.com"],"http":[{"match":[{"uri":{"regex":"^/a(/.*)?$"}}]}]}}`,
	`{"spec":{"s":"<script>&</script>","t":"\u003c\u003e\u0026","u":"a\"b\\c\/d","v":"\b\f\n\r\t\u0001"}}`,
	`{"spec":{"s":"ü€𝄞","t":"\u00fc\u20ac\ud834\udd1e","u":"\u2028\u2029","v":"\ud800","w":"` + "\xff\xfe" + `"}}`,
	`{"spec":{"\u0061":1,"a":2,"b\u0000":3,"<":4}}`,
	`{"spec":{"n":[0,-0,1,-1,8080,123456789012345,1234567890123456,12345678901234567890,1.0,1.5,-2.50,1e3,1E3,1e-7,1e21,1e20,0.000001,0.0000001,1.7976931348623157e308,5e-324]}}`,
	`{"spec":{"a":1,"a":2},"spec":{"b":[true,false,null]}}`,
	` { "spec" : { "a" : [ 1 , { "b" : null } ] , "c" : "d" } , "metadata" : { } } `,
	`{"spec":[[[]],[{}],"",0]}`,
	`{"a":1,"kind":"x","b":{"c":1,"d":{"f":1,"e":2}},"metadata":{},"c":[{"z":1,"y":{"b":1,"a":2}}],"apiVersion":"v1","d":{"a":{"b":1,"b":2},"a":3}}`,
}

func TestTheDigestOfJSONIsTheDigestOfItsMap(t *testing.T) {
	for _, raw := range digestCases {
		want, err := viaMap([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got, err := apply.StateDigestOfJSON([]byte(raw)); err != nil || got != want {
			t.Errorf("%s: digest %s (%v), want %s", raw, got, err, want)
		}
		wantStored, err := viaStoredMap([]byte(raw))
		if err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		if got, err := apply.StoredStateDigestOfJSON([]byte(raw)); err != nil || got != wantStored {
			t.Errorf("%s: stored digest %s (%v), want %s", raw, got, err, wantStored)
		}
	}
	// Integers a float64 cannot tell apart: one digest as a desired object is read, two as a
	// stored one is, so an edit of such a number is never hidden from the cache.
	x, y := []byte(`{"spec":{"n":9007199254740993}}`), []byte(`{"spec":{"n":9007199254740992}}`)
	dx, _ := apply.StateDigestOfJSON(x)
	dy, _ := apply.StateDigestOfJSON(y)
	sx, _ := apply.StoredStateDigestOfJSON(x)
	sy, _ := apply.StoredStateDigestOfJSON(y)
	if dx != dy || sx == sy {
		t.Errorf("2^53+1 and 2^53: desired digests equal %v (want true), stored digests equal %v (want false)", dx == dy, sx == sy)
	}
	// Small integers, the only ones the operator writes, read alike both ways.
	small := []byte(`{"spec":{"port":8080,"weight":0,"offset":-3}}`)
	ds, _ := apply.StateDigestOfJSON(small)
	ss, _ := apply.StoredStateDigestOfJSON(small)
	if ds != ss {
		t.Error("a small integer reads differently as desired and as stored")
	}
	// Another value has another digest.
	a, _ := apply.StateDigestOfJSON([]byte(`{"spec":{"a":"1"}}`))
	b, _ := apply.StateDigestOfJSON([]byte(`{"spec":{"a":1}}`))
	if a == b {
		t.Error("a string and a number have one digest")
	}
	for _, bad := range []string{``, `[]`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1} x`, `{"a":tru}`, `{"a":"b}`, `{"a":01}`, `{"a":1e400}`, `{"a":"` + "\x01" + `"}`, `{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}`} {
		if _, err := apply.StateDigestOfJSON([]byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
		if _, err := apply.StoredStateDigestOfJSON([]byte(bad)); err == nil {
			t.Errorf("%q, stored: no error", bad)
		}
	}
}

// FuzzStateDigestOfJSON: for every JSON object decodable into a map the two digests agree,
// and what a map cannot decode is refused.
func FuzzStateDigestOfJSON(f *testing.F) {
	for _, raw := range digestCases {
		f.Add([]byte(raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if trimmed := bytes.TrimLeft(raw, " \t\n\r"); len(trimmed) == 0 || trimmed[0] != '{' {
			// Only objects are digested (a map decodes null too, into no map).
			return
		}
		for _, c := range []struct {
			name   string
			viaMap func([]byte) (string, error)
			digest func([]byte) (string, error)
		}{{"desired", viaMap, apply.StateDigestOfJSON}, {"stored", viaStoredMap, apply.StoredStateDigestOfJSON}} {
			want, errMap := c.viaMap(raw)
			got, err := c.digest(raw)
			if errMap != nil {
				if err == nil {
					t.Errorf("%q, %s: a map cannot decode it (%v), the JSON digest is %s", raw, c.name, errMap, got)
				}
				continue
			}
			if err != nil || got != want {
				t.Errorf("%q, %s: digest %s (%v), want %s", raw, c.name, got, err, want)
			}
		}
	})
}
