// Package check owns every finding about an APIRule: what is wrong with it, where, and how to
// fix it. It has three entry points:
//
//   - Static decides what the APIRule and the operator's options alone decide. It runs at
//     admission, offline and in every reconcile.
//   - Full adds what depends on the cluster (the Gateway, Services, Pods, Secrets, the mesh
//     config and other owners of the same hosts), over an input the gatherer read. The
//     reconciler and apirulectl run it; the translator builds objects only from an input
//     without errors.
//   - Admission is Static plus the webhook's view of the cluster (hosts other APIRules
//     claim, the extension providers) and the warnings about risky input.
//
// It is pure: it reads nothing from the cluster, and it does not depend on the translator.
package check

import (
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// Result is the outcome of Full.
type Result struct {
	Findings Findings
	// RecheckAt, when set, is when the findings change by the passing of time alone (a
	// certificate comes close to its expiry): check again then.
	RecheckAt time.Time
}

// Static checks what the spec and the operator's options decide alone: hosts and paths Istio
// would reject, rule shadowing, issuers configured twice, reserved headers, a missing
// gateway, and modes the operator's settings cannot serve.
func Static(rule *apiv2.APIRule, opts model.Options) Findings {
	var fs Findings
	specPath := field.NewPath("spec")
	checkHosts(rule.Spec.Hosts, specPath.Child("hosts"), &fs)
	patterns := checkPaths(rule.Spec.Rules, specPath.Child("rules"), &fs)
	checkShadowing(rule.Spec.Rules, patterns, specPath.Child("rules"), &fs)
	checkIssuers(&rule.Spec, specPath, &fs)
	checkReservedHeaders(&rule.Spec, specPath, &fs)
	checkInternalTraffic(&rule.Spec, opts, specPath, &fs)
	checkEscapesUnderIPRestriction(&rule.Spec, specPath, &fs)
	checkWildcardUnderIPRestriction(rule, specPath, &fs)
	checkBackendsNamed(rule, specPath, &fs)
	checkInternalTrafficAcrossNamespaces(rule, opts, specPath, &fs)
	if _, ok := model.GatewayRef(rule, opts); !ok && rule.Spec.MTLS == nil {
		if rule.Spec.Gateway != nil {
			fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, specPath.Child("gateway"), gatewayValue(rule),
				"gateway %q is not namespace/name; write the Gateway's namespace too, for example istio-system/%s", gatewayValue(rule), gatewayValue(rule))
		} else {
			fs.add(conditions.Accepted, conditions.ReasonNoGateway, specPath.Child("gateway"), "",
				"no gateway is set and the operator has no default gateway; set spec.gateway to namespace/name of an Istio Gateway")
		}
	}
	if rule.Spec.MTLS != nil {
		checkIngressGatewayKnown(opts, specPath.Child("mtls"), &fs)
	}
	if path := model.FirstRestriction(&rule.Spec); path != nil {
		checkIngressGatewayKnown(opts, path, &fs)
	}
	return fs
}

// Full checks the APIRule against what was read of the cluster. Static's findings come
// first: the Accepted condition takes its reason from the first finding about it.
func Full(in model.Input) Result {
	fs := Static(in.APIRule, in.Options)
	specPath := field.NewPath("spec")
	checkBackendConsent(in, specPath, &fs)
	if gw := model.MTLSGateway(in.APIRule, in.Options); gw != nil {
		in.Gateway = gw
	}
	checkMeshConfig(in, specPath, &fs)
	providers(in.APIRule, in.Mesh, in.MeshError != nil, Error, &fs)
	checkGateway(in, specPath, &fs)
	checkResolvedHosts(in, specPath.Child("hosts"), &fs)
	checkGatewayCredentials(in, specPath, &fs)
	checkHostClaims(in, specPath.Child("hosts"), &fs)
	recheckAt := checkMTLS(in, specPath, &fs)
	checkIPRestriction(in, &fs)
	checkBackends(in, specPath, &fs)
	checkWorkloadPeers(in, specPath, &fs)
	checkFronting(in, specPath.Child("hosts"), &fs)
	return Result{Findings: fs, RecheckAt: recheckAt}
}

// Admission is what the webhook checks: Static, the hosts other APIRules already claim (found
// by the caller through the cache's host index), the extension providers of the mesh config
// as warnings (the mesh config may be updated after the APIRule), and the warnings about risky
// input, and the consent of the backends' namespaces. in is what the webhook gathered of the
// APIRule; old is the APIRule before an update, nil on create.
func Admission(in model.Input, old *apiv2.APIRule, claims map[string][]apiv2.APIRule) Findings {
	rule, opts, mesh, meshErr := in.APIRule, in.Options, in.Mesh, in.MeshError
	fs := Static(rule, opts)
	checkBackendConsent(in, field.NewPath("spec"), &fs)
	fs = append(fs, HostConflicts(rule, old, claims, opts)...)
	if model.UsesExtAuth(rule) {
		if meshErr != nil {
			fs.warn(conditions.ResolvedRefs, conditions.ReasonMeshConfigInvalid, field.NewPath("spec", "rules"), "",
				"the Istio mesh config does not parse, so extAuth providers cannot be checked: %v", meshErr)
		} else {
			providers(rule, mesh, false, Warning, &fs)
		}
	}
	return append(fs, Risky(rule)...)
}

func gatewayValue(rule *apiv2.APIRule) string {
	if rule.Spec.Gateway != nil {
		return string(*rule.Spec.Gateway)
	}
	return ""
}
