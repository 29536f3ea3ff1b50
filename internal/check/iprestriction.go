package check

import (
	"maps"
	"strings"

	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// checkIPRestriction requires the APIRule's Gateway to be served by the ingress gateway that
// the DENY policy selects: on any other gateway the policy would not apply and the restriction
// would silently not hold. It warns when the gateway trusts no X-Forwarded-For entries.
func checkIPRestriction(in model.Input, fs *Findings) {
	path := model.FirstRestriction(&in.APIRule.Spec)
	if path == nil || !in.Options.IngressGatewayKnown() {
		return // not restricted, or Static reports the missing ingress gateway
	}
	if in.Gateway != nil && !maps.Equal(in.Gateway.Selector, in.Options.IngressGatewaySelector) {
		fs.add(conditions.Accepted, conditions.ReasonNotIngressGateway, path, in.Gateway.Namespace+"/"+in.Gateway.Name,
			"IP restriction is enforced at the ingress gateway selected by {%s} in namespace %s, but Gateway %s/%s selects {%s}; "+
				"use a Gateway of that ingress gateway, or start the operator with --ingress-gateway-selector and --ingress-gateway-namespace for this one",
			strings.TrimSuffix(model.SelectorKey(in.Options.IngressGatewaySelector), ","), in.Options.IngressGatewayNamespace,
			in.Gateway.Namespace, in.Gateway.Name, strings.TrimSuffix(model.SelectorKey(in.Gateway.Selector), ","))
		return
	}
	if untrusting := podsTrustingNoProxy(in); untrusting != "" {
		fs.warn(conditions.ResolvedRefs, conditions.ReasonNoTrustedProxies, path, untrusting,
			"%s trusts no proxies (numTrustedProxies is 0), so IP restriction sees the address of the nearest peer, such as a load "+
				"balancer, not the client's; set meshConfig.defaultConfig.gatewayTopology.numTrustedProxies (or the gateway's "+
				"proxy.istio.io/config annotation) to the number of proxies in front of the gateway, or keep the client address with "+
				"externalTrafficPolicy: Local and no proxy in front", untrusting)
	}
}

// podsTrustingNoProxy names the ingress gateway Pods whose numTrustedProxies is 0 (a Pod's
// annotation overrides the mesh config), or the mesh config when no Pod is known; "" when
// every one trusts at least one proxy.
func podsTrustingNoProxy(in model.Input) string {
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
