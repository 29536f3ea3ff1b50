package translate

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/model"
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
// the paths of earlier rules with the same method: the requests the route sends to that rule.
//
// A wildcard host cannot be written with a port in a policy, and the workload's policies,
// bound to the route, do not look at hosts: the checks refuse IP restriction on a wildcard
// host, so every host here is exact and listed with its port form too.

// ipRestrictionPolicy returns the APIRule's DENY policy at the ingress gateway, or nil when no
// rule is IP-restricted.
func ipRestrictionPolicy(in model.Input, plans []rulePlan, policyHosts []string) *securityclientv1.AuthorizationPolicy {
	spec := &in.APIRule.Spec
	var rules []*securityv1.Rule
	if spec.IPRestriction != nil && !model.RestrictedPerRule(spec) {
		// One restriction for every request of the APIRule's hosts.
		rules = denyRules(spec.IPRestriction, []*securityv1.Rule_To{{Operation: &securityv1.Operation{Hosts: policyHosts}}})
	} else {
		for _, p := range plans {
			if r, _ := model.Restriction(spec, p.index); r != nil {
				rules = append(rules, denyRules(r, operations(in, p.index, policyHosts))...)
			}
		}
	}
	if len(rules) == 0 {
		return nil
	}
	ap := &securityclientv1.AuthorizationPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: securityclientv1.SchemeGroupVersion.String(), Kind: "AuthorizationPolicy"},
		ObjectMeta: objectMeta(in, model.IPRestrictionPolicyName(in.Owner()), in.Options.IngressGatewayNamespace),
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

// ipBlocks lists each block followed by its other spelling of the same IPv4 addresses: the
// IPv4-mapped IPv6 range of an IPv4 block (::ffff:a.b.c.d/len+96), and the IPv4 range of an
// IPv4-mapped block. Envoy keeps an X-Forwarded-For entry ::ffff:198.51.100.7 an IPv6
// address and matches a range only with addresses of its own IP version (Envoy
// source/common/network/cidr_range.cc isInRange), so a deny list of 198.51.100.0/24 alone
// would not refuse a client whose trusted proxy writes the mapped form, and an allow list
// would refuse it. Listing both forms makes either spelling of an address match.
func ipBlocks(blocks []apiv2.IPBlock) []string {
	out := make([]string, 0, 2*len(blocks))
	seen := map[string]bool{}
	add := func(b string) {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	for _, b := range blocks {
		add(string(b))
		if other, ok := otherIPv4Spelling(string(b)); ok {
			add(other)
		}
	}
	return out
}

// otherIPv4Spelling returns the IPv4-mapped IPv6 form of an IPv4 address or range, or the
// IPv4 form of an IPv4-mapped one (only when its prefix lies within ::ffff:0:0/96), in the
// notation of the input: a bare address stays bare.
func otherIPv4Spelling(block string) (string, bool) {
	addr, bits, hasBits := strings.Cut(block, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "", false
	}
	n := a.BitLen()
	if hasBits {
		if n, err = strconv.Atoi(bits); err != nil {
			return "", false
		}
	}
	switch {
	case a.Is4():
		mapped := netip.AddrFrom16(a.As16()).String()
		if !hasBits {
			return mapped, true
		}
		return fmt.Sprintf("%s/%d", mapped, n+96), true
	case a.Is4In6() && n >= 96:
		if !hasBits {
			return a.Unmap().String(), true
		}
		return fmt.Sprintf("%s/%d", a.Unmap(), n-96), true
	}
	return "", false
}
