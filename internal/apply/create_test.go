package apply_test

import (
	"encoding/json"
	"maps"
	"slices"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/apply"
)

// replyEdits turn the object the applier sent (decoded) into a reply the API server could
// send, and say whether the applier must take it as the object it created.
var replyEdits = []struct {
	name string
	edit func(obj map[string]any) bool // false: the edit does not apply to this object
	want bool
}{
	{"as the API server stores it", func(obj map[string]any) bool {
		m := obj["metadata"].(map[string]any)
		m["uid"], m["resourceVersion"], m["generation"] = "0b7c", "412", 1
		m["creationTimestamp"] = "2026-12-02T06:00:00Z"
		m["managedFields"] = []any{map[string]any{"manager": "apirule-operator", "operation": "Update", "fieldsV1": map[string]any{"f:spec": map[string]any{}}}}
		obj["status"] = map[string]any{}
		return true
	}, true},
	{"a label others added", func(obj map[string]any) bool {
		m := obj["metadata"].(map[string]any)
		labels, _ := m["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels["team"] = "payments"
		m["labels"] = labels
		return true
	}, true},
	{"an annotation others added", func(obj map[string]any) bool {
		obj["metadata"].(map[string]any)["annotations"] = map[string]any{apply.StateDigestAnnotation: "forged"}
		return true
	}, true},
	{"set to dry-run by admission", func(obj map[string]any) bool {
		obj["metadata"].(map[string]any)["annotations"] = map[string]any{"istio.io/dry-run": "true"}
		return true
	}, false},
	{"moved to another revision by admission", func(obj map[string]any) bool {
		m := obj["metadata"].(map[string]any)
		labels, _ := m["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
		}
		labels["istio.io/rev"] = "canary"
		m["labels"] = labels
		return true
	}, false},
	{"a desired label changed", func(obj map[string]any) bool {
		labels, _ := obj["metadata"].(map[string]any)["labels"].(map[string]any)
		if len(labels) == 0 {
			return false
		}
		labels[slices.Sorted(maps.Keys(labels))[0]] = "changed"
		return true
	}, false},
	{"the owner reference no longer the controller", func(obj map[string]any) bool {
		refs, _ := obj["metadata"].(map[string]any)["ownerReferences"].([]any)
		if len(refs) == 0 {
			return false
		}
		delete(refs[0].(map[string]any), "controller")
		return true
	}, false},
	{"a state field admission added", func(obj map[string]any) bool {
		spec, ok := obj["spec"].(map[string]any)
		if !ok {
			obj["addedByAdmission"] = true
			return true
		}
		spec["addedByAdmission"] = []any{"*"}
		return true
	}, false},
	{"a state field admission removed", func(obj map[string]any) bool {
		for _, field := range []string{"spec", "data"} {
			if state, ok := obj[field].(map[string]any); ok && len(state) > 0 {
				delete(state, slices.Sorted(maps.Keys(state))[0])
				return true
			}
		}
		return false
	}, false},
	{"a state value admission changed", func(obj map[string]any) bool {
		spec, ok := obj["spec"].(map[string]any)
		if !ok || len(spec) == 0 {
			return false
		}
		spec[slices.Sorted(maps.Keys(spec))[0]] = "changed"
		return true
	}, false},
}

// The reply to a create is checked from its JSON as it was from its decoded form, for every
// object the golden tests translate and every reply of replyEdits: its own encoding as the
// applier sent it, and re-encoded with the members in another order.
func TestACreatesReplyIsCheckedAsItsDecodedFormWas(t *testing.T) {
	checked := 0
	for _, obj := range goldenObjects(t) {
		o := obj.(client.Object)
		sent, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		name := obj.GetObjectKind().GroupVersionKind().Kind + " " + obj.GetNamespace() + "/" + obj.GetName()
		if got, err := apply.StoredAsSent(o, sent); err != nil || !got {
			t.Errorf("%s, the bytes sent: %v (%v), want true", name, got, err)
		}
		for _, tc := range replyEdits {
			reply := map[string]any{}
			if err := json.Unmarshal(sent, &reply); err != nil {
				t.Fatal(err)
			}
			if !tc.edit(reply) {
				continue
			}
			raw, err := json.Marshal(reply) // members sorted, not in the typed order sent
			if err != nil {
				t.Fatal(err)
			}
			got, err := apply.StoredAsSent(o, raw)
			if err != nil {
				t.Fatalf("%s, %s: %v", name, tc.name, err)
			}
			viaMap, err := apply.StoredAsSentViaMap(o, raw)
			if err != nil {
				t.Fatalf("%s, %s, via the map: %v", name, tc.name, err)
			}
			if got != tc.want || viaMap != tc.want {
				t.Errorf("%s, %s: %v (via the map %v), want %v", name, tc.name, got, viaMap, tc.want)
			}
			checked++
		}
	}
	if checked < 500 {
		t.Errorf("only %d replies checked", checked)
	}
}
