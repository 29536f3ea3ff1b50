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
