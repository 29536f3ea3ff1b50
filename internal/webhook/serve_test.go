package webhook

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// A review the validator cannot read, or whose operation it does not know, is refused with
// 400, a panic in the checks with 500, each for the request's UID when the review has one.
func TestAMalformedReviewIsRefused(t *testing.T) {
	review := func(kind, request string) string {
		return `{"apiVersion":"admission.k8s.io/v1","kind":"` + kind + `"` + request + `}`
	}
	create := `,"request":{"uid":"u1","kind":{"group":"gateway.apirule.io","version":"v2","kind":"APIRule"},"operation":"CREATE"`
	for name, c := range map[string]struct {
		body, contentType string
		status            int32
		says              string
	}{
		"an APIRule that does not decode": {review("AdmissionReview", create+`,"object":{"spec":{"hosts":5}}}`), "application/json", http.StatusBadRequest, "decoding"},
		"an unknown operation": {review("AdmissionReview", strings.Replace(create, "CREATE", "create", 1)+`,"object":{}}`), "application/json",
			http.StatusBadRequest, "unknown operation"},
		// The Validator here has no reader: the checks panic.
		"a panic": {review("AdmissionReview", create+`,"object":{"apiVersion":"gateway.apirule.io/v2","kind":"APIRule","metadata":{"name":"a","namespace":"n"}}}`),
			"application/json", http.StatusInternalServerError, "internal error"},
		"no body":                 {"", "application/json", http.StatusBadRequest, "empty"},
		"another content type":    {review("AdmissionReview", create+`,"object":{}}`), "application/yaml", http.StatusBadRequest, "contentType"},
		"not JSON":                {"{", "application/json", http.StatusBadRequest, "decoding"},
		"another kind of review":  {review("Status", create+`,"object":{}}`), "application/json", http.StatusBadRequest, "want an admission.k8s.io/v1, Kind=AdmissionReview"},
		"no request":              {review("AdmissionReview", ""), "application/json", http.StatusBadRequest, "no request"},
		"another kind of object":  {review("AdmissionReview", `,"request":{"uid":"u1","kind":{"group":"","version":"v1","kind":"Pod"},"operation":"CREATE","object":{}}`), "application/json", http.StatusBadRequest, "not an APIRule"},
		"a create without object": {review("AdmissionReview", create+`}`), "application/json", http.StatusBadRequest, "no object"},
		"an update without the old object": {review("AdmissionReview", strings.Replace(create, "CREATE", "UPDATE", 1)+`,"object":{}}`), "application/json",
			http.StatusBadRequest, "no old object"},
		"too large": {review("AdmissionReview", create+`,"object":{"metadata":{"name":"`+strings.Repeat("a", maxReviewSize)+`"}}}`), "application/json",
			http.StatusRequestEntityTooLarge, "too large"},
	} {
		req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(c.body))
		req.Header.Set("Content-Type", c.contentType)
		rec := httptest.NewRecorder()
		(&Validator{}).ServeHTTP(rec, req)
		got := admissionv1.AdmissionReview{}
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Response == nil {
			t.Fatalf("%s: answered %q (%v)", name, rec.Body.String(), err)
		}
		if r := got.Response; r.Allowed || r.Result == nil || r.Result.Code != c.status || !strings.Contains(r.Result.Message, c.says) {
			t.Errorf("%s: answered %+v, want refused with %d saying %q", name, r, c.status, c.says)
		}
		if got.Kind != "AdmissionReview" || got.APIVersion != "admission.k8s.io/v1" {
			t.Errorf("%s: answered a %s %s", name, got.APIVersion, got.Kind)
		}
		// The API server reads an answer without the request's UID as a failed call; a body
		// of another content type or over the limit is not read, as controller-runtime's
		// webhook did not read it.
		unread := name == "another content type" || name == "too large"
		if strings.Contains(c.body, `"uid":"u1"`) && !unread && got.Response.UID != "u1" {
			t.Errorf("%s: answered for UID %q, want u1", name, got.Response.UID)
		}
	}
}

// Operations other than create and update are allowed without a check, with the request's UID.
func TestOtherOperationsAreAllowed(t *testing.T) {
	body := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u2","kind":{"group":"gateway.apirule.io","version":"v2","kind":"APIRule"},"operation":"DELETE"}}`
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	(&Validator{}).ServeHTTP(rec, req)
	got := admissionv1.AdmissionReview{}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || got.Response == nil {
		t.Fatalf("answered %q (%v)", rec.Body.String(), err)
	}
	if !got.Response.Allowed || got.Response.UID != "u2" {
		t.Errorf("answered %+v, want allowed for u2", got.Response)
	}
}
