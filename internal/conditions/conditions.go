// Package conditions defines the APIRule condition types, their typed reasons, and how the
// Kyma-compatible status.state is derived from them.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

// Type is an APIRule condition type.
type Type string

// The condition types, in the order they are evaluated.
const (
	// Accepted is true when the spec is valid and supported.
	Accepted Type = "Accepted"
	// ResolvedRefs is true when every referenced object exists and fits.
	ResolvedRefs Type = "ResolvedRefs"
	// Programmed is true when every desired Istio object is applied and stale ones pruned.
	Programmed Type = "Programmed"
	// Ready is true when all of the above are.
	Ready Type = "Ready"
)

// Reason is the machine-readable cause of a condition's status.
type Reason string

// Reasons of Accepted.
const (
	ReasonAccepted    Reason = "Accepted"
	ReasonInvalidSpec Reason = "InvalidSpec"
	ReasonNoGateway   Reason = "NoGateway"
	// ReasonAcceptedWithWarnings: the spec is served, but something about it deserves
	// attention; the message says what.
	ReasonAcceptedWithWarnings Reason = "AcceptedWithWarnings"
	// ReasonMultipleAuthzProviders warns that Istio will not run every ext-authz provider.
	ReasonMultipleAuthzProviders Reason = "MultipleAuthzProviders"
	// ReasonHostConflict: another owner routes one of the hosts through the Gateway.
	ReasonHostConflict Reason = "HostConflict"
	// ReasonCrossNamespaceBackend: a backend Service in another namespace, which the operator
	// does not allow (--allow-cross-namespace-backends).
	ReasonCrossNamespaceBackend Reason = "CrossNamespaceBackend"
	// ReasonWorkloadConflict: another APIRule on the same workload configures an issuer or an
	// ext-authz provider differently; Istio merges them per workload.
	ReasonWorkloadConflict Reason = "WorkloadConflict"
	// ReasonHostShared warns that an unmanaged VirtualService also routes a host.
	ReasonHostShared Reason = "HostShared"
	// ReasonGatewayConflict: another Gateway of the same ingress gateway serves an mTLS host
	// on the same port, so Istio would pick one of the two servers.
	ReasonGatewayConflict Reason = "GatewayConflict"
	// ReasonMTLSHostCovered: another route on the same ingress gateway covers an mTLS host, so
	// a client could reach it without a certificate by naming another server in TLS.
	ReasonMTLSHostCovered Reason = "MTLSHostCovered"
	// ReasonSecretConflict: the Secret the operator would write already exists and is not
	// this APIRule's.
	ReasonSecretConflict Reason = "SecretConflict"
	// ReasonNoTrustedProxies warns that IP restriction sees the address of the closest proxy
	// because the gateway trusts no X-Forwarded-For entries.
	ReasonNoTrustedProxies Reason = "NoTrustedProxies"
	// ReasonNotIngressGateway: IP restriction is enforced at the operator's ingress gateway,
	// but the APIRule's Gateway is served by other Pods.
	ReasonNotIngressGateway Reason = "GatewayNotIngressGateway"
	// ReasonRuleShadowed: an earlier rule matches every request a rule could match for a
	// method, so the rule is never reached for it (see docs/webhook.md).
	ReasonRuleShadowed Reason = "RuleShadowed"
	// ReasonRulePartlyShadowed warns that a rule is never reached for some of its methods.
	ReasonRulePartlyShadowed Reason = "RulePartlyShadowed"
	// ReasonInvalidPath: a rule path that Istio or Envoy would reject.
	ReasonInvalidPath Reason = "InvalidPath"
	// ReasonInvalidHost: a host that Istio would reject.
	ReasonInvalidHost Reason = "InvalidHost"
)

// Reasons of admission warnings: risky but legal input, reported at kubectl apply time and
// by apirulectl validate, never in status.
const (
	ReasonUnauthenticatedCatchAll Reason = "UnauthenticatedCatchAll"
	ReasonInsecureJWKSURI         Reason = "InsecureJWKSURI"
	ReasonWildcardHost            Reason = "WildcardHost"
)

// Reasons of ResolvedRefs.
const (
	ReasonResolved          Reason = "Resolved"
	ReasonGatewayNotFound   Reason = "GatewayNotFound"
	ReasonHostNotResolvable Reason = "HostNotResolvable"
	ReasonHostNotServed     Reason = "HostNotServedByGateway"
	ReasonServiceNotFound   Reason = "ServiceNotFound"
	ReasonPortNotFound      Reason = "PortNotFound"
	ReasonNoSelector        Reason = "ServiceWithoutSelector"
	ReasonSidecarMissing    Reason = "SidecarMissing"
	// ReasonNoPods warns that a backend Service selects no Pods yet.
	ReasonNoPods             Reason = "NoPods"
	ReasonMeshConfigNotFound Reason = "MeshConfigNotFound"
	// ReasonMeshConfigInvalid: the mesh config exists but does not parse.
	ReasonMeshConfigInvalid   Reason = "MeshConfigInvalid"
	ReasonProviderNotFound    Reason = "ExtensionProviderNotFound"
	ReasonProviderNotExtAuthz Reason = "ExtensionProviderNotExtAuthz"
	ReasonSecretNotFound      Reason = "SecretNotFound"
	// ReasonInvalidCertificate: a CA bundle or server certificate does not parse as PEM X.509.
	ReasonInvalidCertificate Reason = "InvalidCertificate"
	// ReasonCertificateHostMismatch warns that the server certificate does not name a host.
	ReasonCertificateHostMismatch Reason = "CertificateHostMismatch"
	// ReasonCertificateExpiring warns that the server certificate expires soon or has expired.
	ReasonCertificateExpiring Reason = "CertificateExpiring"
	// ReasonGatewayCredentialNotFound warns that a server of the Gateway for the hosts names a
	// certificate Secret that does not exist.
	ReasonGatewayCredentialNotFound Reason = "GatewayCredentialNotFound"
	// ReasonCertificateNotYetValid warns that the server certificate or a CA certificate is
	// valid only from a time still to come (a clock or issuing mistake): TLS peers refuse it
	// until then.
	ReasonCertificateNotYetValid Reason = "CertificateNotYetValid"
)

// Reasons of Programmed.
const (
	ReasonProgrammed  Reason = "Programmed"
	ReasonApplyFailed Reason = "ApplyFailed"
	ReasonPruneFailed Reason = "PruneFailed"
	ReasonNotApplied  Reason = "NotApplied"
	ReasonWithdrawn   Reason = "Withdrawn"
)

// Reasons of Ready.
const (
	ReasonReady    Reason = "Ready"
	ReasonNotReady Reason = "NotReady"
	// ReasonReadFailed: the cluster could not be read, so the outcome is not known (Ready is
	// Unknown); the reconcile is retried.
	ReasonReadFailed Reason = "ReadFailed"
)

// Set sets a condition on the list with the given generation. It changes
// lastTransitionTime only when the status flips, so repeating the same condition is a no-op.
func Set(list *[]metav1.Condition, t Type, status metav1.ConditionStatus, reason Reason, message string, generation int64) {
	meta.SetStatusCondition(list, metav1.Condition{
		Type:               string(t),
		Status:             status,
		Reason:             string(reason),
		Message:            message,
		ObservedGeneration: generation,
	})
}

// ProgrammedAsIs says whether the objects applied for the APIRule are those of its current
// generation: what serves is exactly its spec.
func ProgrammedAsIs(rule *apiv2.APIRule) bool {
	c := Find(rule.Status.Conditions, Programmed)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == rule.Generation
}

// Find returns the condition of the given type, or nil.
func Find(list []metav1.Condition, t Type) *metav1.Condition {
	return meta.FindStatusCondition(list, string(t))
}

// State derives the Kyma-compatible status.state and description from the conditions:
// Ready when Ready is true, or Warning when it is but the spec was accepted with warnings;
// Error when the spec is rejected, a reference is missing or objects could not be applied;
// Processing otherwise.
func State(list []metav1.Condition) (apiv2.State, string) {
	if c := Find(list, Ready); c != nil && c.Status == metav1.ConditionTrue {
		if accepted := Find(list, Accepted); accepted != nil && accepted.Reason == string(ReasonAcceptedWithWarnings) {
			return apiv2.StateWarning, accepted.Message
		}
		return apiv2.StateReady, c.Message
	}
	for _, t := range []Type{Accepted, ResolvedRefs, Programmed} {
		c := Find(list, t)
		if c == nil || c.Status == metav1.ConditionUnknown {
			return apiv2.StateProcessing, "Waiting for the operator to process the APIRule."
		}
		if c.Status == metav1.ConditionFalse {
			return apiv2.StateError, c.Message
		}
	}
	return apiv2.StateProcessing, "Waiting for the operator to process the APIRule."
}
