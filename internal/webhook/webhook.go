// Package webhook is the validating admission webhook for APIRules and the management of its
// serving certificate. The checks themselves live in internal/validate, shared with the
// reconciler and apirulectl; this package reads what they need from the manager's cache.
package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/translate"
	"github.com/apirule-operator/apirule-operator/internal/validate"
)

// Path is where the webhook server serves APIRule validation; the
// ValidatingWebhookConfiguration in config/webhook calls it.
const Path = "/validate-gateway-apirule-io-v2-apirule"

// The marker below generates config/webhook/manifests.yaml (make manifests).
//
// +kubebuilder:webhook:path=/validate-gateway-apirule-io-v2-apirule,mutating=false,failurePolicy=fail,sideEffects=None,groups=gateway.apirule.io,resources=apirules,verbs=create;update,versions=v2,name=vapirule.gateway.apirule.io,admissionReviewVersions=v1

// Validator validates APIRules on create and update.
type Validator struct {
	// Reader is the manager's cache. APIRules are looked up through the host index the
	// APIRule controller registers, and the mesh config through the cache of that one
	// ConfigMap.
	Reader client.Reader
	// Options are the operator's translation options (the default Gateway).
	Options translate.Options
	// MeshConfig is the namespace/name of the Istio mesh config ConfigMap.
	MeshConfig types.NamespacedName
}

var _ admission.Validator[*apiv2.APIRule] = &Validator{}

// SetupWithManager registers the webhook on the manager's webhook server. The APIRule
// controller must be set up too: its host index is what the host check reads.
func (v *Validator) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &apiv2.APIRule{}).WithValidator(v).Complete()
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
	problems := validate.Admission(rule, v.Options)

	claims, err := v.hostClaims(ctx, rule)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	problems = append(problems, validate.HostConflicts(rule, old, claims, v.Options)...)

	if usesExtAuth(rule) {
		mesh, err := v.meshConfig(ctx)
		if err != nil {
			// Whether a provider exists is only a warning; a mesh config the operator
			// cannot read is reported by the reconciler.
			problems = append(problems, validate.Problem{Severity: translate.Warning, Field: specRules(), Message: err.Error()})
		} else {
			problems = append(problems, validate.Providers(rule, mesh)...)
		}
	}

	warnings := admission.Warnings(problems.Warnings())
	if errs := problems.ErrorList(); len(errs) > 0 {
		return warnings, apierrors.NewInvalid(schema.GroupKind{Group: apiv2.GroupVersion.Group, Kind: "APIRule"}, rule.Name, errs)
	}
	return warnings, nil
}

// hostClaims finds, for each host of the APIRule, the APIRules that list it, through the
// cache's host index: one indexed lookup per host, never a list of every APIRule.
func (v *Validator) hostClaims(ctx context.Context, rule *apiv2.APIRule) (map[string][]apiv2.APIRule, error) {
	claims := map[string][]apiv2.APIRule{}
	for _, h := range rule.Spec.Hosts {
		list := &apiv2.APIRuleList{}
		if err := v.Reader.List(ctx, list, client.MatchingFields{validate.HostIndex: validate.HostIndexKey(h)}); err != nil {
			return nil, fmt.Errorf("looking up the APIRules of host %s: %w", h, err)
		}
		claims[string(h)] = list.Items
	}
	return claims, nil
}

// meshConfig reads the extension providers of the mesh config from the cache, or nil when
// the ConfigMap does not exist.
func (v *Validator) meshConfig(ctx context.Context) (*translate.MeshConfig, error) {
	cm := &corev1.ConfigMap{}
	switch err := v.Reader.Get(ctx, v.MeshConfig, cm); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the Istio mesh config %s: %w", v.MeshConfig, err)
	}
	mesh, err := meshconfig.Parse(cm.Data[meshconfig.Key])
	if err != nil {
		return nil, fmt.Errorf("the Istio mesh config %s does not parse, so extAuth providers cannot be checked: %w", v.MeshConfig, err)
	}
	return mesh, nil
}

func usesExtAuth(rule *apiv2.APIRule) bool {
	for _, r := range rule.Spec.Rules {
		if r.ExtAuth != nil {
			return true
		}
	}
	return false
}

func specRules() *field.Path { return field.NewPath("spec", "rules") }
