package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/log"
	sigsjson "sigs.k8s.io/json"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

// maxReviewSize is the largest AdmissionReview read: the API server's own limit of a request
// body is 3 MiB, and a review of an update holds the object twice.
const maxReviewSize = 7 << 20

// apiRuleReview is an AdmissionReview (admission.k8s.io/v1) of an APIRule, with the APIRules
// in it decoded together with the review.
type apiRuleReview struct {
	metav1.TypeMeta `json:",inline"`
	Request         *struct {
		UID       types.UID               `json:"uid"`
		Kind      metav1.GroupVersionKind `json:"kind"`
		Operation admissionv1.Operation   `json:"operation"`
		Object    *apiv2.APIRule          `json:"object"`
		OldObject *apiv2.APIRule          `json:"oldObject"`
	} `json:"request"`
}

var (
	reviewKind  = admissionv1.SchemeGroupVersion.WithKind("AdmissionReview")
	apiRuleKind = metav1.GroupVersionKind{Group: apiv2.GroupVersion.Group, Version: apiv2.GroupVersion.Version, Kind: "APIRule"}
)

// ServeHTTP answers the API server's AdmissionReview of an APIRule create or update. It
// decodes the review and the APIRules in it in one pass, as the API server's JSON decoder
// would (case-sensitive field names): controller-runtime's admission webhook reads a review's
// JSON to find its kind, decodes it, does both again for the APIRule in it and builds a
// logger for every request, 15% of the operator's CPU at 10,000 APIRules between them
// (docs/performance.md). Every answer carries the request's UID when the review has one, so
// that the API server reads it as this webhook's answer (an answer without it is a failed
// call, which a failurePolicy of Ignore would admit): a refusal with the API error as its
// status and the warnings alongside, a review it cannot read refused with 400, an operation
// other than those the configuration sends refused with 400, and a panic refused with 500.
func (v *Validator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var uid types.UID
	defer func() {
		if recovered := recover(); recovered != nil {
			log.FromContext(r.Context()).WithName("admission").Error(fmt.Errorf("%v", recovered), "panic while validating an APIRule", "uid", uid)
			refuse(r.Context(), w, uid, http.StatusInternalServerError, errors.New("internal error while validating the APIRule"))
		}
	}()
	review, status, err := readReview(r, &uid)
	if err != nil {
		log.FromContext(r.Context()).WithName("admission").Error(err, "refusing an admission request", "path", r.URL.Path, "uid", uid)
		refuse(r.Context(), w, uid, status, err)
		return
	}
	req := review.Request
	response := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true, Result: &metav1.Status{Code: http.StatusOK}}
	var warnings []string
	switch req.Operation {
	case admissionv1.Create:
		warnings, err = v.ValidateCreate(r.Context(), req.Object)
	case admissionv1.Update:
		warnings, err = v.ValidateUpdate(r.Context(), req.OldObject, req.Object)
	case admissionv1.Delete, admissionv1.Connect:
		// Never blocked; the configuration does not even send them.
	default:
		refuse(r.Context(), w, uid, http.StatusBadRequest, fmt.Errorf("unknown operation %q", req.Operation))
		return
	}
	if err != nil {
		response.Allowed = false
		var refusal apierrors.APIStatus
		if errors.As(err, &refusal) {
			response.Result = new(refusal.Status())
		} else {
			response.Result = &metav1.Status{Code: http.StatusForbidden, Reason: metav1.StatusReasonForbidden, Message: err.Error()}
		}
	}
	response.Warnings = warnings
	writeReview(r.Context(), w, response)
}

// refuse answers the request uid (empty when the review had none) with a refusal.
func refuse(ctx context.Context, w http.ResponseWriter, uid types.UID, status int, err error) {
	writeReview(ctx, w, &admissionv1.AdmissionResponse{UID: uid, Result: &metav1.Status{Code: int32(status), Message: err.Error()}})
}

// readReview reads an APIRule's AdmissionReview, or says why it cannot, with the HTTP status
// of the answer; uid gets the request's UID as soon as it is known, even from a review whose
// APIRules do not decode.
func readReview(r *http.Request, uid *types.UID) (*apiRuleReview, int, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, http.StatusBadRequest, errors.New("request body is empty")
	}
	defer func() { _ = r.Body.Close() }()
	if contentType := r.Header.Get("Content-Type"); contentType != "application/json" {
		return nil, http.StatusBadRequest, fmt.Errorf("contentType=%s, expected application/json", contentType)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewSize+1))
	switch {
	case err != nil:
		return nil, http.StatusBadRequest, err
	case len(body) == 0:
		return nil, http.StatusBadRequest, errors.New("request body is empty")
	case len(body) > maxReviewSize:
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request entity is too large; limit is %d bytes", maxReviewSize)
	}
	review := &apiRuleReview{}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(body, review); err != nil {
		var identity struct {
			Request *struct {
				UID types.UID `json:"uid"`
			} `json:"request"`
		}
		if sigsjson.UnmarshalCaseSensitivePreserveInts(body, &identity) == nil && identity.Request != nil {
			*uid = identity.Request.UID
		}
		return nil, http.StatusBadRequest, fmt.Errorf("decoding the AdmissionReview: %w", err)
	}
	req := review.Request
	if req != nil {
		*uid = req.UID
	}
	switch {
	case review.GroupVersionKind() != reviewKind:
		return nil, http.StatusBadRequest, fmt.Errorf("got a %s, want an %s", review.GroupVersionKind(), reviewKind)
	case req == nil:
		return nil, http.StatusBadRequest, errors.New("the AdmissionReview has no request")
	case req.Kind != apiRuleKind:
		return nil, http.StatusBadRequest, fmt.Errorf("the request is about a %s/%s %s, not an APIRule of %s", req.Kind.Group, req.Kind.Version, req.Kind.Kind, apiv2.GroupVersion)
	case (req.Operation == admissionv1.Create || req.Operation == admissionv1.Update) && req.Object == nil:
		return nil, http.StatusBadRequest, fmt.Errorf("the %s request has no object", req.Operation)
	case req.Operation == admissionv1.Update && req.OldObject == nil:
		return nil, http.StatusBadRequest, errors.New("the update request has no old object")
	}
	return review, http.StatusOK, nil
}

func writeReview(ctx context.Context, w http.ResponseWriter, response *admissionv1.AdmissionResponse) {
	review := admissionv1.AdmissionReview{Response: response}
	review.SetGroupVersionKind(reviewKind)
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(review); err != nil {
		log.FromContext(ctx).WithName("admission").Error(err, "writing an admission response")
	}
}
