package model

import (
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// HostProblem says why a host of an APIRule cannot be routed.
type HostProblem int

const (
	// HostOK: the host is routed.
	HostOK HostProblem = iota
	// HostNotResolvable: a short host whose Gateway has no single *.<domain> to complete it.
	HostNotResolvable
	// HostNotServed: the Gateway does not offer the host to the APIRule's namespace.
	HostNotServed
)

// ResolvedHost is one host of an APIRule as it will be routed.
type ResolvedHost struct {
	// Index is the host's position in spec.hosts.
	Index int
	// Written is the host as the APIRule lists it.
	Written string
	// Host is the host as routed: a short host completed with the Gateway's domain. Empty
	// when the host cannot be resolved.
	Host    string
	Problem HostProblem
}

// ResolveHosts completes short hosts with the domain of the APIRule's Gateway and says, for
// each host, whether that Gateway offers it to VirtualServices of the APIRule's namespace. A
// short host needs a Gateway whose servers all serve the single host *.<domain>. Without a
// Gateway every host is taken as written (the missing Gateway is a problem of its own).
func ResolveHosts(in Input) []ResolvedHost {
	gw := in.Gateway
	if mtls := MTLSGateway(in.APIRule, in.Options); mtls != nil {
		gw = mtls
	}
	out := make([]ResolvedHost, 0, len(in.APIRule.Spec.Hosts))
	var served []string
	if gw != nil {
		served = GatewayHosts(gw, in.APIRule.Namespace)
	}
	for i, h := range in.APIRule.Spec.Hosts {
		r := ResolvedHost{Index: i, Written: string(h), Host: string(h)}
		switch {
		case gw == nil:
		case !strings.Contains(r.Host, "."):
			domain, ok := GatewayDomain(served)
			if !ok {
				r.Host, r.Problem = "", HostNotResolvable
				break
			}
			r.Host += "." + domain
			fallthrough
		default:
			if !slices.ContainsFunc(served, func(pattern string) bool { return GatewayServes(pattern, r.Host) }) {
				r.Problem = HostNotServed
			}
		}
		out = append(out, r)
	}
	return out
}

// RoutedHosts returns the hosts the route serves: the resolved hosts without problems.
func RoutedHosts(in Input) []string {
	var out []string
	for _, h := range ResolveHosts(in) {
		if h.Problem == HostOK {
			out = append(out, h.Host)
		}
	}
	return out
}

// GatewayHosts returns the hosts the Gateway offers to VirtualServices in the namespace: a
// host written namespace/host is offered to that namespace only, ./host to the Gateway's own
// namespace, */host and a plain host to every namespace.
func GatewayHosts(gw *Gateway, namespace string) []string {
	var out []string
	for _, h := range gw.Hosts {
		ns, host, scoped := strings.Cut(h, "/")
		if !scoped {
			out = append(out, h)
			continue
		}
		if ns == "*" || ns == namespace || (ns == "." && gw.Namespace == namespace) {
			out = append(out, host)
		}
	}
	return out
}

// GatewayServes says whether a Gateway host pattern covers an APIRule host: "*" covers all,
// "*.d" covers every name under d (a wildcard APIRule host too), others only themselves.
func GatewayServes(pattern, host string) bool {
	switch {
	case pattern == "*" || pattern == host:
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}

// GatewayDomain returns d when every host is the same *.d.
func GatewayDomain(hosts []string) (string, bool) {
	if len(hosts) == 0 {
		return "", false
	}
	for _, h := range hosts {
		if h != hosts[0] {
			return "", false
		}
	}
	domain, ok := strings.CutPrefix(hosts[0], "*.")
	if !ok || domain == "" || strings.Contains(domain, "*") {
		return "", false
	}
	return domain, true
}

// CoveringHosts returns the host patterns a VirtualService or Gateway may list that cover the
// host: the host itself, a wildcard over each of its parent domains, and *.
func CoveringHosts(host string) []string {
	out := []string{host}
	for rest := host; ; {
		_, parent, ok := strings.Cut(rest, ".")
		if !ok || parent == "" {
			break
		}
		out = append(out, "*."+parent)
		rest = parent
	}
	return append(out, "*")
}
