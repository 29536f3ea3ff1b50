package apply

import (
	"encoding/json"
	"reflect"
	"testing"

	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/apirule-operator/apirule-operator/internal/manifest"
)

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	out := map[string]any{}
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestStateReplacementMakesTheStateExactlyDesired(t *testing.T) {
	desired := `{"apiVersion":"v1","kind":"X","metadata":{"name":"a","labels":{"l":"1"}},"spec":{"hosts":["a"],"selector":{"app":"a"}}}`
	cases := []struct {
		name, current, want string
	}{
		{"equal, metadata and status aside",
			`{"apiVersion":"v1","kind":"X","metadata":{"name":"a","labels":{"l":"1","other":"2"}},"spec":{"hosts":["a"],"selector":{"app":"a"}},"status":{"x":1}}`,
			`null`},
		{"a field added to the spec",
			`{"metadata":{},"spec":{"hosts":["a"],"selector":{"app":"a"},"exportTo":["."]}}`,
			`[{"op":"add","path":"/spec","value":{"hosts":["a"],"selector":{"app":"a"}}}]`},
		{"a key added to a map in the spec",
			`{"metadata":{},"spec":{"hosts":["a"],"selector":{"app":"a","extra":"x"}}}`,
			`[{"op":"add","path":"/spec","value":{"hosts":["a"],"selector":{"app":"a"}}}]`},
		{"the spec missing",
			`{"metadata":{}}`,
			`[{"op":"add","path":"/spec","value":{"hosts":["a"],"selector":{"app":"a"}}}]`},
		{"a top-level field not desired",
			`{"metadata":{},"spec":{"hosts":["a"],"selector":{"app":"a"}},"immutable":true}`,
			`[{"op":"remove","path":"/immutable"}]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops := stateReplacement(decode(t, desired), decode(t, c.current))
			got, err := json.Marshal(ops)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("patch %s, want %s", got, c.want)
			}
		})
	}
}

// The digest the cache keeps for a state agrees with stateReplacement: two states have the
// same digest exactly when there is nothing to change between them.
func TestStateDigestAgreesWithStateReplacement(t *testing.T) {
	desired := `{"apiVersion":"v1","kind":"X","metadata":{"name":"a"},"spec":{"hosts":["a"],"http":[{"route":[{"weight":100}]}],"selector":{"app":"a"}}}`
	cases := []struct {
		name, current string
		same          bool
	}{
		{"equal, metadata, type and status aside",
			`{"metadata":{"name":"a","labels":{"l":"1"}},"spec":{"selector":{"app":"a"},"http":[{"route":[{"weight":100}]}],"hosts":["a"]},"status":{"x":1}}`, true},
		{"an empty list where the desired state has none",
			`{"spec":{"hosts":["a"],"http":[{"route":[{"weight":100}],"headers":{}}],"selector":{"app":"a"},"exportTo":[]}}`, false},
		{"another value",
			`{"spec":{"hosts":["b"],"http":[{"route":[{"weight":100}]}],"selector":{"app":"a"}}}`, false},
		{"another number",
			`{"spec":{"hosts":["a"],"http":[{"route":[{"weight":10}]}],"selector":{"app":"a"}}}`, false},
		{"a list in another order",
			`{"spec":{"hosts":["a"],"http":[{"route":[{"weight":100}]}],"selector":{"app":"a"},"gateways":["x","y"]}}`, false},
		{"a key added to a map",
			`{"spec":{"hosts":["a"],"http":[{"route":[{"weight":100}]}],"selector":{"app":"a","extra":"x"}}}`, false},
		{"a top-level field added",
			`{"spec":{"hosts":["a"],"http":[{"route":[{"weight":100}]}],"selector":{"app":"a"}},"immutable":true}`, false},
		{"the spec missing", `{"metadata":{"name":"a"}}`, false},
	}
	want, err := StateDigest(decode(t, desired))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			current := decode(t, c.current)
			got, err := StateDigest(current)
			if err != nil {
				t.Fatal(err)
			}
			if replaced := len(stateReplacement(decode(t, desired), current)) > 0; replaced == c.same {
				t.Fatalf("stateReplacement finds a change: %v; the case says same: %v", replaced, c.same)
			}
			if (got == want) != c.same {
				t.Errorf("digests equal: %v, want %v", got == want, c.same)
			}
		})
	}
	// An empty list or map is not null, to either of them.
	withEmpty, _ := StateDigest(decode(t, `{"spec":{"a":[],"b":{}}}`))
	withNull, _ := StateDigest(decode(t, `{"spec":{"a":null,"b":null}}`))
	if withEmpty == withNull {
		t.Errorf("an empty list or map and null digest alike")
	}
	if len(stateReplacement(decode(t, `{"spec":{"a":[],"b":{}}}`), decode(t, `{"spec":{"a":null,"b":null}}`))) == 0 {
		t.Errorf("stateReplacement takes an empty list or map for null")
	}
}

// replyLike is an object as an unstructured reply holds it: integers as int64, as the API
// server's JSON decodes them, next to floats, strings, booleans, nulls and nesting.
func replyLike() map[string]any {
	return map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
		"metadata": map[string]any{"name": "a", "generation": int64(1), "labels": map[string]any{"l": "1"}},
		"spec": map[string]any{
			"hosts": []any{"a.example.com"},
			"http": []any{map[string]any{
				"match":   []any{map[string]any{"uri": map[string]any{"prefix": "/"}}},
				"route":   []any{map[string]any{"destination": map[string]any{"host": "a", "port": map[string]any{"number": int64(8080)}}, "weight": int64(100)}},
				"timeout": "5s", "retries": nil, "mirrorPercentage": map[string]any{"value": 12.5},
				"large": int64(1) << 60, "negative": int64(-3), "enabled": true,
			}},
		},
	}
}

// normalized makes of a reply exactly what a JSON round trip makes of it, as ToUnstructured
// makes the desired object: the comparisons with the desired state rely on it.
func TestNormalizedIsTheJSONRoundTrip(t *testing.T) {
	raw, err := json.Marshal(replyLike())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{}
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	got, err := normalized(replyLike())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("normalized:\n%#v\nwant the JSON round trip:\n%#v", got, want)
	}
	if _, err := normalized(map[string]any{"spec": map[string]any{"port": int32(1)}}); err == nil {
		t.Error("a value no JSON decoding yields was accepted")
	}
}

// The check of every reply: normalized against the JSON round trip it replaces. Each includes
// building the reply, which "the reply alone" measures.
func BenchmarkNormalizedReply(b *testing.B) {
	b.Run("the reply alone", func(b *testing.B) {
		for b.Loop() {
			_ = replyLike()
		}
	})
	b.Run("in place", func(b *testing.B) {
		for b.Loop() {
			if _, err := normalized(replyLike()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json round trip", func(b *testing.B) {
		for b.Loop() {
			raw, err := json.Marshal(replyLike())
			if err != nil {
				b.Fatal(err)
			}
			out := map[string]any{}
			if err := json.Unmarshal(raw, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestHasOwnedMetaNeedsEveryDesiredLabelAndOwnerReference(t *testing.T) {
	yes := true
	owner := metav1.OwnerReference{APIVersion: "gateway.apirule.io/v2", Kind: "APIRule", Name: "a", UID: "u1", Controller: &yes}
	desired := &securityclientv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{
		Labels: map[string]string{"owner": "a", "part": "policy"}, OwnerReferences: []metav1.OwnerReference{owner},
	}}
	// The same object as the API server returns it (unstructured), so both forms are compared.
	unstructuredOf := func(obj *securityclientv1.AuthorizationPolicy) *unstructured.Unstructured {
		obj.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"))
		u, err := manifest.ToUnstructured(obj)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	no := false
	cases := []struct {
		name        string
		labels      map[string]string
		refs        []metav1.OwnerReference
		want        bool
		annotations map[string]string
	}{
		{"exactly desired", map[string]string{"owner": "a", "part": "policy"}, []metav1.OwnerReference{owner}, true, nil},
		{"with labels and owners others added", map[string]string{"owner": "a", "part": "policy", "team": "x"},
			[]metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "c", UID: "u2"}, owner}, true, nil},
		{"a label missing", map[string]string{"owner": "a"}, []metav1.OwnerReference{owner}, false, nil},
		{"a label changed", map[string]string{"owner": "a", "part": "route"}, []metav1.OwnerReference{owner}, false, nil},
		{"a label emptied", map[string]string{"owner": "a", "part": ""}, []metav1.OwnerReference{owner}, false, nil},
		{"no owner reference", map[string]string{"owner": "a", "part": "policy"}, nil, false, nil},
		{"the owner of another UID", map[string]string{"owner": "a", "part": "policy"},
			[]metav1.OwnerReference{{APIVersion: owner.APIVersion, Kind: owner.Kind, Name: "a", UID: "u9", Controller: &yes}}, false, nil},
		{"the owner no longer its controller", map[string]string{"owner": "a", "part": "policy"},
			[]metav1.OwnerReference{{APIVersion: owner.APIVersion, Kind: owner.Kind, Name: "a", UID: "u1", Controller: &no}}, false, nil},
		{"the owner with controller unset", map[string]string{"owner": "a", "part": "policy"},
			[]metav1.OwnerReference{{APIVersion: owner.APIVersion, Kind: owner.Kind, Name: "a", UID: "u1"}}, false, nil},
		// Istio would enforce the object differently: another revision's istiod alone reads it,
		// or its decisions are only logged.
		{"moved to another revision", map[string]string{"owner": "a", "part": "policy", "istio.io/rev": "canary"}, []metav1.OwnerReference{owner}, false, nil},
		{"in dry-run", map[string]string{"owner": "a", "part": "policy"}, []metav1.OwnerReference{owner}, false,
			map[string]string{"istio.io/dry-run": "true"}},
		{"in dry-run switched off", map[string]string{"owner": "a", "part": "policy"}, []metav1.OwnerReference{owner}, false,
			map[string]string{"istio.io/dry-run": "false"}},
		{"with an annotation others added", map[string]string{"owner": "a", "part": "policy"}, []metav1.OwnerReference{owner}, true,
			map[string]string{"team": "payments"}},
	}
	for _, tc := range cases {
		actual := &securityclientv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Labels: tc.labels, OwnerReferences: tc.refs, Annotations: tc.annotations}}
		if got := hasOwnedMeta(desired, actual); got != tc.want {
			t.Errorf("%s, typed: got %v, want %v", tc.name, got, tc.want)
		}
		if got := hasOwnedMeta(unstructuredOf(desired.DeepCopy()), unstructuredOf(actual)); got != tc.want {
			t.Errorf("%s, unstructured: got %v, want %v", tc.name, got, tc.want)
		}
		// And as a create's reply is read: its JSON, the state the same.
		withKind := desired.DeepCopy()
		withKind.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"))
		sent, err := encode(withKind)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := json.Marshal(actual)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := sent.storedAsSent(reply); err != nil || got != tc.want {
			t.Errorf("%s, a create's reply: got %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
}
