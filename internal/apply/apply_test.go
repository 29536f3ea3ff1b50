package apply

import (
	"encoding/json"
	"testing"
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
