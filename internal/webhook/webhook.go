// Package webhook holds the admission webhooks for APIRules (validation, and the finalizer on
// create) and the management of their serving certificate. The checks themselves live in internal/check and the reads in
// internal/gather, shared with the reconciler and apirulectl; this package runs them over the
// manager's cache.
package webhook

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/gather"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// Path is where the webhook server serves APIRule validation; the
// ValidatingWebhookConfiguration in config/webhook calls it.
const Path = "/validate-gateway-apirule-io-v2-apirule"

// The marker below generates config/webhook/manifests.yaml (make manifests).
//
// +kubebuilder:webhook:path=/validate-gateway-apirule-io-v2-apirule,mutating=false,failurePolicy=fail,sideEffects=None,groups=gateway.apirule.io,resources=apirules,verbs=create;update,versions=v2,name=vapirule.gateway.apirule.io,admissionReviewVersions=v1

// Validator validates APIRules on create and update.
type Validator struct {
	// Reader is the manager's cache. APIRules are looked up through the host index (see
	// internal/index), and the mesh config through the cache of that one ConfigMap.
	Reader client.Reader
	// Options are the operator's translation options (the default Gateway).
	Options model.Options
	// MeshConfig is the namespace/name of the Istio mesh config ConfigMap.
	MeshConfig types.NamespacedName
}

var _ admission.Validator[*apiv2.APIRule] = &Validator{}

// SetupWithManager registers the webhook on the manager's webhook server at Path, where the
// server counts its requests and their latency. The manager's cache must have the indexes of
// internal/index registered: the host check reads them.
func (v *Validator) SetupWithManager(mgr ctrl.Manager) error {
	mgr.GetWebhookServer().Register(Path, v)
	return nil
}

// ValidateCreate refuses a new APIRule that cannot be served as written.
func (v *Validator) ValidateCreate(ctx context.Context, rule *apiv2.APIRule) (admission.Warnings, error) {
	return v.validate(ctx, rule, nil)
}

// ValidateUpdate refuses an update that makes the APIRule unservable. An update that leaves
// the spec as it is (the operator adding or removing its finalizer, labels, annotations) is
// always allowed: refusing it could keep a deletion from finishing.
func (v *Validator) ValidateUpdate(ctx context.Context, old, rule *apiv2.APIRule) (admission.Warnings, error) {
	if equality.Semantic.DeepEqual(old.Spec, rule.Spec) || !rule.DeletionTimestamp.IsZero() {
		return nil, nil
	}
	return v.validate(ctx, rule, old)
}

// ValidateDelete allows every deletion; the configuration does not even send them.
func (v *Validator) ValidateDelete(context.Context, *apiv2.APIRule) (admission.Warnings, error) {
	return nil, nil
}

func (v *Validator) validate(ctx context.Context, rule, old *apiv2.APIRule) (admission.Warnings, error) {
	operation := "create"
	if old != nil {
		operation = "update"
	}
	findings, err := gather.Admission(ctx, v.Reader, rule, old, v.Options, v.MeshConfig)
	if err != nil {
		metrics.CountAdmission(operation, "error", nil)
		return nil, apierrors.NewInternalError(err)
	}
	warnings := admission.Warnings(findings.WarningLines())
	if errs := findings.ErrorList(); len(errs) > 0 {
		var reasons []string
		for _, f := range findings.Errors() {
			reasons = append(reasons, string(f.Reason))
		}
		metrics.CountAdmission(operation, "denied", reasons)
		return warnings, apierrors.NewInvalid(schema.GroupKind{Group: apiv2.GroupVersion.Group, Kind: "APIRule"}, rule.Name, errs)
	}
	metrics.CountAdmission(operation, "allowed", nil)
	return warnings, nil
}
