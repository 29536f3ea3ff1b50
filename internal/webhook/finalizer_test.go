package webhook

import (
	"context"
	"encoding/json"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

func finalizerRequest(op admissionv1.Operation, object string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op, Object: runtime.RawExtension{Raw: []byte(object)},
	}}
}

// The patch adds the finalizer exactly once, keeps the client's finalizers, and is sent on
// create only.
func TestFinalizerDefaulterPatches(t *testing.T) {
	for name, c := range map[string]struct {
		op     admissionv1.Operation
		object string
		want   string // the patch as JSON; empty for none
	}{
		"create without finalizers": {admissionv1.Create, `{"metadata":{"name":"a"}}`,
			`[{"op":"add","path":"/metadata/finalizers","value":["` + ownership.Finalizer + `"]}]`},
		"create with null finalizers": {admissionv1.Create, `{"metadata":{"name":"a","finalizers":null}}`,
			`[{"op":"add","path":"/metadata/finalizers","value":["` + ownership.Finalizer + `"]}]`},
		"create with another finalizer": {admissionv1.Create, `{"metadata":{"name":"a","finalizers":["x.example.com/y"]}}`,
			`[{"op":"add","path":"/metadata/finalizers/-","value":"` + ownership.Finalizer + `"}]`},
		"create that already has it": {admissionv1.Create, `{"metadata":{"name":"a","finalizers":["` + ownership.Finalizer + `"]}}`, ""},
		"update":                     {admissionv1.Update, `{"metadata":{"name":"a"}}`, ""},
		"delete":                     {admissionv1.Delete, `{"metadata":{"name":"a","deletionTimestamp":"2026-01-01T00:00:00Z"}}`, ""},
	} {
		t.Run(name, func(t *testing.T) {
			resp := FinalizerDefaulter{}.Handle(context.Background(), finalizerRequest(c.op, c.object))
			if !resp.Allowed {
				t.Fatalf("refused: %+v", resp.Result)
			}
			got := ""
			if len(resp.Patches) > 0 {
				raw, err := json.Marshal(resp.Patches)
				if err != nil {
					t.Fatal(err)
				}
				got = string(raw)
			}
			if got != c.want {
				t.Errorf("patch %s, want %s", got, c.want)
			}
		})
	}
}

func TestFinalizerDefaulterRefusesGarbage(t *testing.T) {
	if resp := (FinalizerDefaulter{}).Handle(context.Background(), finalizerRequest(admissionv1.Create, `{"metadata":`)); resp.Allowed {
		t.Error("an unreadable object was admitted")
	}
}
