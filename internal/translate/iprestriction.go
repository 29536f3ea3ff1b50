package translate

import (
	"maps"
	"strings"

	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// IP restriction is enforced at the ingress gateway, the only proxy that sees the client's
// address (taken from X-Forwarded-For with the gateway's number of trusted proxies), by one
// DENY policy per APIRule. Istio evaluates DENY before ALLOW, so no ALLOW policy, of this
// APIRule or any other, can widen it; and the request is refused before it reaches the
// backend's sidecar, so an extAuth rule never calls its authorizer for a blocked client.
//
// An allow list becomes a rule denying notRemoteIpBlocks, a deny list one denying
// remoteIpBlocks. The rules are scoped to the APIRule's hosts (h and h:*) and, for a rule's
// own restriction, to the requests the route sends to that rule: its methods and path minus
// the paths of earlier rules with the same method, the same operations its ALLOW rules use.
//
// A wildcard host cannot be written with a port in a policy, so a request for a wildcard
// host whose Host header carries a port escapes the DENY rule's host match; the backend's
// ALLOW policy has the same host list and refuses it, so such a request is never served.

// restriction returns the IP restriction in force for rule i: its own, else the APIRule's.
func restriction(spec *apiv2.APIRuleSpec, i int) (*apiv2.IPRestriction, *field.Path) {
	specPath := field.NewPath("spec")
	if r := spec.Rules[i].IPRestriction; r != nil {
		return r, specPath.Child("rules").Index(i).Child("ipRestriction")
	}
	if spec.IPRestriction != nil {
		return spec.IPRestriction, specPath.Child("ipRestriction")
	}
	return nil, nil
}

// usesIPRestriction says whether any rule is IP-restricted, and names the first restriction.
func usesIPRestriction(spec *apiv2.APIRuleSpec) (bool, *field.Path) {
	for i := range spec.Rules {
		if r, path := restriction(spec, i); r != nil {
			return true, path
		}
	}
	return false, nil
}

// UsesIPRestriction says whether any rule of the APIRule is IP-restricted.
func UsesIPRestriction(rule *apiv2.APIRule) bool {
	used, _ := usesIPRestriction(&rule.Spec)
	return used
}

// checkIPRestriction requires the APIRule's Gateway to be served by the ingress gateway that
// the DENY policy selects: on any other gateway the policy would not apply and the restriction
// would silently not hold. It warns when the gateway trusts no X-Forwarded-For entries.
func checkIPRestriction(in Input, findings *Findings) {
	used, path := usesIPRestriction(&in.APIRule.Spec)
	if !used || !checkIngressGatewayKnown(in, path, findings) {
		return
	}
	if in.Gateway != nil && !maps.Equal(in.Gateway.Selector, in.Options.IngressGatewaySelector) {
		findings.add(conditions.Accepted, conditions.ReasonNotIngressGateway, path,
			"IP restriction is enforced at the ingress gateway selected by {%s} in namespace %s, but Gateway %s/%s selects {%s}; "+
				"use a Gateway of that ingress gateway, or start the operator with --ingress-gateway-selector and --ingress-gateway-namespace for this one",
			strings.TrimSuffix(selectorKey(in.Options.IngressGatewaySelector), ","), in.Options.IngressGatewayNamespace,
			in.Gateway.Namespace, in.Gateway.Name, strings.TrimSuffix(selectorKey(in.Gateway.Selector), ","))
		return
	}
	if untrusting := podsTrustingNoProxy(in); untrusting != "" {
		findings.warn(conditions.ResolvedRefs, conditions.ReasonNoTrustedProxies, path,
			"%s trusts no proxies (numTrustedProxies is 0), so IP restriction sees the address of the nearest peer, such as a load "+
				"balancer, not the client's; set meshConfig.defaultConfig.gatewayTopology.numTrustedProxies (or the gateway's "+
				"proxy.istio.io/config annotation) to the number of proxies in front of the gateway, or keep the client address with "+
				"externalTrafficPolicy: Local and no proxy in front", untrusting)
	}
}

// podsTrustingNoProxy names the ingress gateway Pods whose numTrustedProxies is 0 (a Pod's
// annotation overrides the mesh config), or the mesh config when no Pod is known; "" when
// every one trusts at least one proxy.
func podsTrustingNoProxy(in Input) string {
	meshValue := uint32(0)
	if in.Mesh != nil {
		meshValue = in.Mesh.NumTrustedProxies
	}
	if len(in.IngressPods) == 0 {
		if meshValue == 0 {
			return "the mesh config"
		}
		return ""
	}
	var names []string
	for _, p := range in.IngressPods {
		value := meshValue
		if p.NumTrustedProxies != nil {
			value = *p.NumTrustedProxies
		}
		if value == 0 {
			names = append(names, p.Name)
		}
	}
	switch {
	case len(names) == 0:
		return ""
	case len(names) > 3:
		return "ingress gateway Pod " + strings.Join(names[:3], ", ") + " and others"
	}
	return "ingress gateway Pod " + strings.Join(names, ", ")
}

// ipRestrictionPolicy returns the APIRule's DENY policy at the ingress gateway, or nil when no
// rule is IP-restricted.
func ipRestrictionPolicy(in Input, plans []rulePlan, policyHosts []string) *securityclientv1.AuthorizationPolicy {
	spec := &in.APIRule.Spec
	var rules []*securityv1.Rule
	overridden := false
	for i := range spec.Rules {
		overridden = overridden || spec.Rules[i].IPRestriction != nil
	}
	if spec.IPRestriction != nil && !overridden {
		// One restriction for every request of the APIRule's hosts.
		rules = denyRules(spec.IPRestriction, []*securityv1.Rule_To{{Operation: &securityv1.Operation{Hosts: policyHosts}}})
	} else {
		for _, p := range plans {
			if r, _ := restriction(spec, p.index); r != nil {
				rules = append(rules, denyRules(r, operations(in, p.index, policyHosts))...)
			}
		}
	}
	if len(rules) == 0 {
		return nil
	}
	ap := &securityclientv1.AuthorizationPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: securityclientv1.SchemeGroupVersion.String(), Kind: "AuthorizationPolicy"},
		ObjectMeta: objectMeta(in, ownership.ChildName(in.Owner(), "ip"), in.Options.IngressGatewayNamespace),
	}
	ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: in.Options.IngressGatewaySelector}
	ap.Spec.Action = securityv1.AuthorizationPolicy_DENY
	ap.Spec.Rules = rules
	return ap
}

// denyRules denies the operations to clients outside the allow list or inside the deny list.
func denyRules(r *apiv2.IPRestriction, to []*securityv1.Rule_To) []*securityv1.Rule {
	var out []*securityv1.Rule
	if len(r.Allow) > 0 {
		out = append(out, &securityv1.Rule{
			From: []*securityv1.Rule_From{{Source: &securityv1.Source{NotRemoteIpBlocks: ipBlocks(r.Allow)}}},
			To:   to,
		})
	}
	if len(r.Deny) > 0 {
		out = append(out, &securityv1.Rule{
			From: []*securityv1.Rule_From{{Source: &securityv1.Source{RemoteIpBlocks: ipBlocks(r.Deny)}}},
			To:   to,
		})
	}
	return out
}

func ipBlocks(blocks []apiv2.IPBlock) []string {
	out := make([]string, len(blocks))
	for i, b := range blocks {
		out[i] = string(b)
	}
	return out
}

// checkIngressGatewayKnown refuses a mode whose objects go to the ingress gateway when the
// operator has no ingress gateway namespace or selector: a policy or Gateway without a
// selector would apply to every workload of its namespace (every one of the mesh in the root
// namespace), not to the ingress gateway.
func checkIngressGatewayKnown(in Input, path *field.Path, findings *Findings) bool {
	if len(in.Options.IngressGatewaySelector) > 0 && in.Options.IngressGatewayNamespace != "" {
		return true
	}
	findings.add(conditions.Accepted, conditions.ReasonInvalidSpec, path,
		"the operator has no ingress gateway namespace and selector, which this mode needs; start it with "+
			"--ingress-gateway-namespace and --ingress-gateway-selector")
	return false
}
