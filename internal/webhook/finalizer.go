package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// MutatePath is where the webhook server serves the finalizer defaulting. On Kubernetes 1.36
// and later the API server sets the finalizer itself (the MutatingAdmissionPolicy of
// config/finalizer-policy) and nothing calls this path; before 1.36 the
// MutatingWebhookConfiguration of config/components/finalizer-webhook (or the chart's
// finalizerAdmission=webhook) calls it, with failurePolicy Ignore: the finalizer has a fallback
// (the reconciler patches it in before it writes the first child), so this webhook alone must
// never refuse a create.
const MutatePath = "/mutate-gateway-apirule-io-v2-apirule"

// FinalizerDefaulter sets the operator's finalizer on every APIRule as it is created, so that
// the reconciler does not spend a write of its own on it, on clusters without
// MutatingAdmissionPolicy (the policy does the same in the API server). It answers with a JSON
// patch that touches metadata.finalizers only, and with no patch when the finalizer is already
// there, so calling it twice (reinvocation, a client that sets the finalizer itself) changes
// nothing.
// Only creates get the finalizer: adding it to an APIRule being deleted would keep the
// deletion waiting for a reconcile that may already have run.
type FinalizerDefaulter struct{}

var _ admission.Handler = FinalizerDefaulter{}

// Handle answers one admission request.
func (FinalizerDefaulter) Handle(_ context.Context, req admission.Request) admission.Response {
	if req.Operation != admissionv1.Create {
		return admission.Allowed("the finalizer is set on create only")
	}
	var obj struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(req.Object.Raw, &obj); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	return admission.Patched("", finalizerPatch(obj.Metadata)...)
}

// finalizerPatch is the JSON patch that adds the finalizer to an object with this metadata;
// none when it is already there or the object is being deleted.
func finalizerPatch(meta metav1.ObjectMeta) []jsonpatch.JsonPatchOperation {
	if slices.Contains(meta.Finalizers, ownership.Finalizer) || meta.DeletionTimestamp != nil {
		return nil
	}
	if len(meta.Finalizers) == 0 {
		// "add" on a missing (or null) member creates it; a "-" index would need the array.
		return []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/metadata/finalizers", Value: []string{ownership.Finalizer}}}
	}
	return []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/metadata/finalizers/-", Value: ownership.Finalizer}}
}
