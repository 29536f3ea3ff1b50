package harness

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"istio.io/istio/pkg/config/schema/collections"
	"istio.io/istio/pkg/webhooks/validation/server"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
	var warnings []string
	for _, w := range out.Response.Warnings {
		if !acceptedWarning(w) {
			warnings = append(warnings, w)
		}
	}
	if len(warnings) > 0 {
		return fmt.Errorf("admitted with warnings: %v", warnings)
	}
	return nil
}

// acceptedWarnings are webhook warnings that do not fail the check, each with the reason.
var acceptedWarnings = []struct{ contains, why string }{
	{
		// A DENY rule that names only HTTP attributes (hosts) denies every connection on TCP
		// filter chains of the selected proxies. Gateway allow lists are DENY rules scoped by
		// hosts; on an ingress gateway that serves only HTTP and HTTPS this never applies.
		// A gateway that also has TCP or TLS-passthrough servers would lose them; that is a
		// translator decision, so it is reported in docs/verification.md rather than hidden.
		contains: "will deny all traffic to TCP ports under its scope",
		why:      "gateway DENY rules scoped by hosts on HTTP-only gateways",
	},
}

func acceptedWarning(w string) bool {
	for _, a := range acceptedWarnings {
		if strings.Contains(w, a.contains) {
			return true
		}
	}
	return false
}
