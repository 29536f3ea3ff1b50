package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/webhooks/validation/server"
)

// Validator is istiod's validating admission webhook handler, served in process.
type Validator struct {
	srv *httptest.Server
}

var (
	validatorOnce sync.Once
	validator     *Validator
	validatorErr  error
)

// IstioValidator returns the shared in-process webhook.
func IstioValidator() (*Validator, error) {
	validatorOnce.Do(func() {
		mux := http.NewServeMux()
		if _, err := server.New(server.Options{Schemas: collections.PilotGatewayAPI(), DomainSuffix: "cluster.local", Mux: mux}); err != nil {
			validatorErr = err
			return
		}
		validator = &Validator{srv: httptest.NewServer(mux)}
	})
	return validator, validatorErr
}

// Validate sends one object to the webhook as the API server would on create. It returns
// nil when the webhook admits it, else the webhook's message.
func (v *Validator) Validate(d Doc) error {
	obj, err := json.Marshal(d.Object)
	if err != nil {
		return err
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "harness",
			Operation: admissionv1.Create,
			Name:      d.Name,
			Namespace: d.Namespace,
			Object:    runtime.RawExtension{Raw: obj},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return err
	}
	resp, err := http.Post(v.srv.URL+"/validate", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("webhook answer %q: %w", raw, err)
	}
	if out.Response == nil {
		return fmt.Errorf("webhook answered without a response: %s", raw)
	}
	if !out.Response.Allowed {
		msg := "rejected"
		if out.Response.Result != nil {
			msg = out.Response.Result.Message
		}
		return fmt.Errorf("%s", msg)
	}
	if len(out.Response.Warnings) > 0 {
		return fmt.Errorf("admitted with warnings: %v", out.Response.Warnings)
	}
	return nil
}
