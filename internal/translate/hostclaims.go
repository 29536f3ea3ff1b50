package translate

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/apirule-operator/apirule-operator/internal/conditions"
)

// HostClaim is another object that routes a host through the same Gateway.
type HostClaim struct {
	// APIRule is set when the claim is another APIRule's VirtualService.
	APIRule *types.NamespacedName
	// VirtualService is the claiming VirtualService.
	VirtualService types.NamespacedName
	// Since is when the claim was made: the APIRule's or the foreign VirtualService's
	// creation time. The older claim keeps the host.
	Since metav1.Time
}

// ResolvedHosts returns the APIRule's hosts as they will be routed (short hosts completed),
// leaving out those that cannot be resolved. The gatherer uses it to look up claims.
func ResolvedHosts(in Input) []string {
	var ignored Findings
	if gw := MTLSGateway(in.APIRule, in.Options); gw != nil {
		in.Gateway = gw
	}
	return expandHosts(in.APIRule.Spec.Hosts, in.Gateway, in.APIRule.Namespace, field.NewPath("spec", "hosts"), &ignored)
}

// checkHostClaims keeps one host from being routed by two owners. The owner that already
// routes a host keeps it: an APIRule asking for a host that another APIRule or an unmanaged
// VirtualService routes is refused, so two APIRules never widen each other's access. When both
// already route it (left over from a race or an older version), the older claim wins. An
// unmanaged VirtualService cannot be refused: when it arrives after the APIRule, the APIRule
// stays served with a warning, because Istio merges both into one route table.
func checkHostClaims(in Input, hostsPath *field.Path, findings *Findings) {
	if len(in.HostClaims) == 0 || in.Gateway == nil {
		return
	}
	domain, _ := gatewayDomain(gatewayHosts(in.Gateway, in.APIRule.Namespace))
	mine := in.APIRule.CreationTimestamp
	self := in.Owner().String()
	serving := map[string]bool{}
	for _, h := range in.ServedHosts {
		serving[h] = true
	}
	for i, h := range in.APIRule.Spec.Hosts {
		host := string(h)
		if !strings.Contains(host, ".") {
			host += "." + domain
		}
		for _, claim := range in.HostClaims[host] {
			claimKey := claim.VirtualService.String()
			if claim.APIRule != nil {
				claimKey = claim.APIRule.String()
			}
			if claimKey == self {
				continue
			}
			older := !serving[host] || claim.Since.Before(&mine) || (claim.Since.Equal(&mine) && claimKey < self)
			switch {
			case claim.APIRule != nil && older:
				findings.add(conditions.Accepted, conditions.ReasonHostConflict, hostsPath.Index(i),
					"host %q is already served by APIRule %s; remove the host from one of the two APIRules", host, claimKey)
			case claim.APIRule == nil && older:
				findings.add(conditions.Accepted, conditions.ReasonHostConflict, hostsPath.Index(i),
					"host %q is already routed through this Gateway by VirtualService %s, which the operator does not manage; "+
						"remove the host from it or choose another host", host, claimKey)
			case claim.APIRule == nil:
				findings.warn(conditions.Accepted, conditions.ReasonHostShared, hostsPath.Index(i),
					"VirtualService %s, which the operator does not manage, also routes host %q through this Gateway; Istio merges "+
						"both, so a request may not follow this APIRule; remove the host from that VirtualService", claimKey, host)
			}
		}
	}
}

// ConflictingHosts returns the hosts of a finding list's host conflicts, so the caller can
// withdraw a route that already claims them.
func ConflictingHosts(findings Findings, in Input) []string {
	hosts := ResolvedHosts(in)
	var out []string
	for _, f := range findings.Errors() {
		if f.Reason != conditions.ReasonHostConflict {
			continue
		}
		for i := range in.APIRule.Spec.Hosts {
			if f.Field.String() == fmt.Sprintf("spec.hosts[%d]", i) && i < len(hosts) {
				out = append(out, hosts[i])
			}
		}
	}
	return out
}
