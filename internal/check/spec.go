package check

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// checkHosts refuses hosts that Istio's VirtualService validation refuses and the CRD schema
// lets through: a top-level label made of digits only (Istio reads it as an IP address and
// refuses it as a domain), and names longer than 255 characters. It repeats the schema's
// shape check so that apirulectl, which runs without an API server, refuses the same hosts.
func checkHosts(hosts []apiv2.Host, hostsPath *field.Path, fs *Findings) {
	for i, h := range hosts {
		host := string(h)
		path := hostsPath.Index(i)
		name, wildcard := strings.CutPrefix(host, "*.")
		labels := strings.Split(name, ".")
		var bad string
		for _, l := range labels {
			if !isDNSLabel(l) {
				bad = l
				break
			}
		}
		switch {
		case len(host) > 255:
			fs.add(conditions.Accepted, conditions.ReasonInvalidHost, path, host, "host is %d characters long; Istio accepts at most 255", len(host))
		case bad != "" || (wildcard && len(labels) < 2):
			fs.add(conditions.Accepted, conditions.ReasonInvalidHost, path, host,
				"host must be a lower-case DNS name such as api.example.com, a wildcard such as *.example.com, or a short name such as api; label %q is not a DNS label", bad)
		case len(labels) > 1 && allDigits(labels[len(labels)-1]):
			fs.add(conditions.Accepted, conditions.ReasonInvalidHost, path, host,
				"Istio refuses a host whose last label is all digits (%q): it is not a domain name; use a DNS name, IP addresses cannot be APIRule hosts",
				labels[len(labels)-1])
		}
	}
}

func isDNSLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') && c != '-' {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkPaths parses every rule path; a path that does not parse is refused, and its pattern is
// left out (nil) of the shadowing check.
func checkPaths(rules []apiv2.Rule, rulesPath *field.Path, fs *Findings) []*model.PathPattern {
	out := make([]*model.PathPattern, len(rules))
	for i, r := range rules {
		p, err := model.ParsePath(r.Path)
		if err != nil {
			fs.add(conditions.Accepted, conditions.ReasonInvalidPath, rulesPath.Index(i).Child("path"), r.Path, "path %s", err)
			continue
		}
		out[i] = &p
	}
	return out
}

// checkShadowing finds rules that an earlier rule hides. Rules are matched in order, first
// match wins, for routing and for authorization alike; rule j is shadowed for method m when an
// earlier rule with m matches every path j matches. A rule shadowed for all its methods is
// never reached: an error. A rule shadowed for some methods still serves the others, so that
// is a warning; except when the earlier rule is noAuth and the later one is not, because then
// requests the author meant to protect are let through without authentication: an error.
func checkShadowing(rules []apiv2.Rule, patterns []*model.PathPattern, rulesPath *field.Path, fs *Findings) {
	for j, later := range rules {
		if patterns[j] == nil {
			continue
		}
		type hidden struct {
			method apiv2.HTTPMethod
			by     int
		}
		var shadowed []hidden
		opened := false
		for _, m := range later.Methods {
			for i := 0; i < j; i++ {
				if patterns[i] == nil || !slices.Contains(rules[i].Methods, m) || !patterns[i].Covers(*patterns[j]) {
					continue
				}
				shadowed = append(shadowed, hidden{method: m, by: i})
				if rules[i].Strategy() == "noAuth" && later.Strategy() != "noAuth" {
					opened = true
				}
				break
			}
		}
		if len(shadowed) == 0 {
			continue
		}
		// Group the methods by the rule that hides them, in rule order, for one message.
		byRule := map[int][]string{}
		var earlier []int
		for _, s := range shadowed {
			if _, ok := byRule[s.by]; !ok {
				earlier = append(earlier, s.by)
			}
			byRule[s.by] = append(byRule[s.by], string(s.method))
		}
		slices.Sort(earlier)
		var because, names, methods []string
		for _, i := range earlier {
			because = append(because, fmt.Sprintf("for %s because spec.rules[%d] (%s %s, %s) matches first",
				strings.Join(byRule[i], ","), i, strings.Join(methodStrings(rules[i].Methods), ","), rules[i].Path, rules[i].Strategy()))
			names = append(names, fmt.Sprintf("rule %d", i))
			methods = append(methods, byRule[i]...)
		}
		path := rulesPath.Index(j).Child("path")
		fix := fmt.Sprintf("move it before %s or narrow %s", strings.Join(names, " and "), strings.Join(names, " and "))
		switch {
		case len(shadowed) == len(later.Methods):
			fs.add(conditions.Accepted, conditions.ReasonRuleShadowed, path, later.Path, "spec.rules[%d] is never reached %s; %s",
				j, strings.Join(because, "; "), fix)
		case opened:
			fs.add(conditions.Accepted, conditions.ReasonRuleShadowed, path, later.Path,
				"spec.rules[%d] (%s) is never reached %s, so those requests pass without authentication; remove %s here, %s",
				j, later.Strategy(), strings.Join(because, "; "), strings.Join(methods, ","), fix)
		default:
			fs.warn(conditions.Accepted, conditions.ReasonRulePartlyShadowed, path, later.Path,
				"spec.rules[%d] is never reached %s; remove %s here, %s", j, strings.Join(because, "; "), strings.Join(methods, ","), fix)
		}
	}
}

func methodStrings(methods []apiv2.HTTPMethod) []string {
	out := make([]string, len(methods))
	for i, m := range methods {
		out[i] = string(m)
	}
	return out
}

// Risky returns warnings about input that is legal but often a mistake: noAuth on a path that
// matches everything, a JWKS fetched over plain http, and wildcard hosts.
func Risky(rule *apiv2.APIRule) Findings {
	var fs Findings
	specPath := field.NewPath("spec")
	for i, h := range rule.Spec.Hosts {
		if strings.HasPrefix(string(h), "*.") {
			fs.warn(conditions.Accepted, conditions.ReasonWildcardHost, specPath.Child("hosts").Index(i), string(h),
				"wildcard host %s exposes these rules on every name under %s; list the hosts unless that is intended",
				h, strings.TrimPrefix(string(h), "*."))
		}
	}
	for i, r := range rule.Spec.Rules {
		rulePath := specPath.Child("rules").Index(i)
		if r.NoAuth != nil && *r.NoAuth {
			if p, err := model.ParsePath(r.Path); err == nil && p.MatchesEverything() {
				fs.warn(conditions.Accepted, conditions.ReasonUnauthenticatedCatchAll, rulePath.Child("path"), r.Path,
					"noAuth on %s lets every %s request through without authentication, also to paths added later; list the public paths instead",
					r.Path, strings.Join(methodStrings(r.Methods), ","))
			}
		}
		if c, ok := model.JWTConfig(r, rulePath); ok {
			for j, a := range c.Config.Authentications {
				if a.JWKSURI != nil && strings.HasPrefix(strings.ToLower(*a.JWKSURI), "http://") {
					fs.warn(conditions.Accepted, conditions.ReasonInsecureJWKSURI, c.Path.Child("authentications").Index(j).Child("jwksUri"), *a.JWKSURI,
						"signing keys fetched over plain http can be replaced on the way, letting anyone forge tokens; use https")
				}
			}
		}
	}
	return fs
}

// issuerConfig is what Istio keeps of one issuer: everything of a JWTRule the translator
// builds from an authentication. Istio merges the RequestAuthentications of a workload, so
// one issuer can have only one configuration.
type issuerConfig struct {
	JWKSURI, JWKS        string
	FromHeaders          []apiv2.JWTHeader
	FromParams           []string
	FromCookies          []string
	ForwardOriginalToken bool
	OutputClaimToHeaders []apiv2.ClaimToHeader
}

func issuerConfigOf(a apiv2.JWTAuthentication, claims []apiv2.ClaimToHeader) issuerConfig {
	c := issuerConfig{
		FromHeaders: model.TokenHeaders(a), FromParams: a.FromParams, FromCookies: a.FromCookies,
		ForwardOriginalToken: a.ForwardOriginalToken == nil || *a.ForwardOriginalToken, OutputClaimToHeaders: claims,
	}
	if a.JWKSURI != nil {
		c.JWKSURI = *a.JWKSURI
	}
	if a.JWKS != nil {
		c.JWKS = *a.JWKS
	}
	// An empty list and no list configure the same.
	for _, l := range []*[]string{&c.FromParams, &c.FromCookies} {
		if len(*l) == 0 {
			*l = nil
		}
	}
	if len(c.FromHeaders) == 0 {
		c.FromHeaders = nil
	}
	if len(c.OutputClaimToHeaders) == 0 {
		c.OutputClaimToHeaders = nil
	}
	return c
}

// checkIssuers rejects an issuer that is configured differently in two places of the APIRule.
func checkIssuers(spec *apiv2.APIRuleSpec, specPath *field.Path, fs *Findings) {
	type seen struct {
		config issuerConfig
		path   *field.Path
	}
	first := map[string]seen{}
	for i, rule := range spec.Rules {
		c, ok := model.JWTConfig(rule, specPath.Child("rules").Index(i))
		if !ok {
			continue
		}
		for j, a := range c.Config.Authentications {
			path := c.Path.Child("authentications").Index(j)
			config := issuerConfigOf(a, c.Config.OutputClaimToHeaders)
			prev, ok := first[a.Issuer]
			if !ok {
				first[a.Issuer] = seen{config: config, path: path}
				continue
			}
			if !reflect.DeepEqual(prev.config, config) {
				fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, path, a.Issuer,
					"issuer %q is configured differently here and in %s; Istio keeps one configuration per issuer, so use the same "+
						"jwksUri or jwks, token locations, forwardOriginalToken and outputClaimToHeaders everywhere", a.Issuer, prev.path)
			}
		}
	}
}

// checkReservedHeaders refuses header names that only the gateway or the operator may set
// (the client identity headers, the route binding, Host, X-Forwarded-*), in a rule's request
// headers and in the headers a token's claims are copied to. jwt_authn writes claim headers
// after the route: a claim copied into x-client-cert-subject would pass another APIRule's
// subject check on the same workload.
func checkReservedHeaders(spec *apiv2.APIRuleSpec, specPath *field.Path, fs *Findings) {
	for i, rule := range spec.Rules {
		rulePath := specPath.Child("rules").Index(i)
		if rule.Request != nil {
			for _, name := range slices.Sorted(maps.Keys(rule.Request.Headers)) {
				if model.ReservedHeader(name) {
					fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, rulePath.Child("request", "headers").Key(name), name,
						"header %s is set only by the gateway or the operator (client identity, route binding, Host, X-Forwarded-*); use another header name", name)
				}
			}
		}
		if c, ok := model.JWTConfig(rule, rulePath); ok {
			for j, h := range c.Config.OutputClaimToHeaders {
				if model.ReservedHeader(h.Header) {
					fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, c.Path.Child("outputClaimToHeaders").Index(j).Child("header"), h.Header,
						"header %s is set only by the gateway or the operator (client identity, route binding, Host, X-Forwarded-*), so a token claim may not write it; use another header name", h.Header)
				}
			}
		}
	}
}

// checkInternalTraffic refuses internalTraffic lists that name the ingress gateway's
// namespace or service account: the generated rule never admits the gateway's identity
// (through the gateway only the route-bound rules decide), so such an entry would not do what
// it says.
func checkInternalTraffic(spec *apiv2.APIRuleSpec, opts model.Options, specPath *field.Path, fs *Findings) {
	it := spec.InternalTraffic
	namespace, serviceAccount, ok := model.GatewayIdentity(opts)
	if it == nil || !ok {
		return
	}
	path := specPath.Child("internalTraffic")
	for i, ns := range it.FromNamespaces {
		if ns == namespace {
			fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, path.Child("fromNamespaces").Index(i), ns,
				"namespace %s holds the ingress gateway, whose requests are decided by the rules alone; internalTraffic never admits it: remove the namespace, or list the service accounts of that namespace that may call directly", ns)
		}
	}
	for i, sa := range it.FromServiceAccounts {
		if sa == namespace+"/"+serviceAccount {
			fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, path.Child("fromServiceAccounts").Index(i), sa,
				"service account %s is the ingress gateway's, whose requests are decided by the rules alone; internalTraffic never admits it: remove it", sa)
		}
	}
}

// checkInternalTrafficAcrossNamespaces refuses internalTraffic on an APIRule with a backend in
// another namespace: it writes an ALLOW rule into that namespace for callers of the mesh,
// on every path, which a ReferenceGrant does not consent to (a grant lets routes from the
// gateway in, not the mesh). Only the operator's --allow-cross-namespace-backends, which
// trusts every namespace, permits it.
func checkInternalTrafficAcrossNamespaces(rule *apiv2.APIRule, opts model.Options, specPath *field.Path, fs *Findings) {
	if rule.Spec.InternalTraffic == nil || opts.CrossNamespaceBackends {
		return
	}
	for _, ref := range model.BackendRefs(rule) {
		if ref.Namespace != rule.Namespace {
			fs.add(conditions.Accepted, conditions.ReasonCrossNamespaceBackend, specPath.Child("internalTraffic"), ref.Namespace,
				"internalTraffic would let callers of the mesh reach Service %s directly, on every path, and a ReferenceGrant consents to routes "+
					"from the gateway only; remove internalTraffic, or let the owner of %s set it in an APIRule there", ref, ref.Namespace)
			return
		}
	}
}

// checkWildcardUnderIPRestriction refuses IP restriction on a wildcard host. The restriction
// is the ingress gateway's DENY policy, scoped by host, and Istio cannot write a wildcard host
// with a port in a policy: a client that sends "www.shop.example.com:443" would escape it, and
// the workload's policies, bound to the route, do not look at the host.
func checkWildcardUnderIPRestriction(rule *apiv2.APIRule, specPath *field.Path, fs *Findings) {
	if !model.UsesIPRestriction(rule) {
		return
	}
	for i, h := range rule.Spec.Hosts {
		if strings.HasPrefix(string(h), "*") {
			fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, specPath.Child("hosts").Index(i), string(h),
				"a wildcard host cannot be IP-restricted: the gateway's policy cannot match it with a port, so a client sending "+
					"Host %s:443 would escape the restriction; list the hosts instead", strings.Replace(string(h), "*", "www", 1))
		}
	}
}

// checkEscapesUnderIPRestriction refuses, when rules carry IP restrictions of their own
// (model.RestrictedPerRule), the rule paths that cannot be served as written then:
//   - a percent-escape in the path of a restricted rule. The route matches escapes in either
//     hex case, as clients may send them; the gateway's DENY policy, which must scope the
//     restriction by path, matches paths exactly, so a differently cased request would
//     escape the restriction;
//   - '=' in any rule's path: the APIRule's first route answers 400 to every request path
//     with '=' (the DENY policy's path templates and the routes read it differently), so
//     such a rule could never be reached.
func checkEscapesUnderIPRestriction(spec *apiv2.APIRuleSpec, specPath *field.Path, fs *Findings) {
	if !model.RestrictedPerRule(spec) {
		return
	}
	for i, r := range spec.Rules {
		path := specPath.Child("rules").Index(i).Child("path")
		if restriction, _ := model.Restriction(spec, i); restriction != nil && strings.Contains(r.Path, "%") {
			fs.add(conditions.Accepted, conditions.ReasonInvalidPath, path, r.Path,
				"a path with percent-escapes cannot be IP-restricted per rule: the gateway's policy matches the escapes' hex case exactly, "+
					"so a client could spell them otherwise; write the path without escapes, or restrict the whole APIRule (spec.ipRestriction only)")
		}
		if strings.Contains(r.Path, "=") {
			fs.add(conditions.Accepted, conditions.ReasonInvalidPath, path, r.Path,
				"a path with '=' cannot be served when rules are IP-restricted per rule: the gateway refuses request paths with '=' then "+
					"(its policy's path templates and the routes read '=' differently); write the path without '=', or restrict the whole "+
					"APIRule (spec.ipRestriction only)")
		}
	}
}

// checkBackendsNamed requires every rule to have a backend Service.
func checkBackendsNamed(rule *apiv2.APIRule, specPath *field.Path, fs *Findings) {
	for i := range rule.Spec.Rules {
		if _, _, ok := model.BackendRef(rule, i); !ok {
			fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, specPath.Child("service"), "",
				"no backend service: set spec.service or spec.rules[%d].service", i)
		}
	}
}

// checkBackendConsent requires a backend in another namespace to have that namespace's
// consent: a ReferenceGrant there, or the operator's --allow-cross-namespace-backends. The
// policies go to the backend's namespace, so without consent any team that may create
// APIRules could expose any other team's workload.
func checkBackendConsent(in model.Input, specPath *field.Path, fs *Findings) {
	rule := in.APIRule
	reported := map[types.NamespacedName]bool{}
	for i := range rule.Spec.Rules {
		ref, _, ok := model.BackendRef(rule, i)
		if !ok || reported[ref] || model.Consented(in.Options, in.ReferenceGrants, rule.Namespace, ref) {
			continue
		}
		reported[ref] = true
		path := specPath.Child("rules").Index(i).Child("service", "namespace")
		if rule.Spec.Rules[i].Service == nil || rule.Spec.Rules[i].Service.Namespace == nil {
			path = specPath.Child("service", "namespace")
		}
		fix := "this cluster has no ReferenceGrant API (Gateway API's CRDs) and the operator runs without " +
			"--allow-cross-namespace-backends; create the APIRule in %[2]s"
		if in.Options.ReferenceGrants {
			fix = "create a ReferenceGrant in %[2]s from group " + apiv2.GroupVersion.Group + ", kind " + model.APIRuleKind +
				", namespace %[3]s to group \"\", kind Service, name %[4]s (no name for every Service), or create the APIRule in %[2]s"
		}
		fs.add(conditions.Accepted, conditions.ReasonCrossNamespaceBackend, path, ref.Namespace,
			"Service %[1]s is in namespace %[2]s, not the APIRule's (%[3]s), and %[2]s has not consented: "+fix,
			ref, ref.Namespace, rule.Namespace, ref.Name)
	}
}

// UnconsentedServing returns the Services the APIRule's route serves now, in namespaces other
// than its own, without that namespace's consent. The route may be of an earlier generation
// than the spec (a refused edit keeps it serving), so consent is judged on what serves: a grant
// taken back must take it down whatever the spec says now.
func UnconsentedServing(in model.Input) []types.NamespacedName {
	var out []types.NamespacedName
	for _, ref := range in.ServedBackends {
		if !model.Consented(in.Options, in.ReferenceGrants, in.APIRule.Namespace, ref) {
			out = append(out, ref)
		}
	}
	return out
}

// UnprotectedServing returns the Services the APIRule's route serves now that select a Pod
// without the sidecar: the gateway sends it requests that no policy checks, whichever
// generation serves.
func UnprotectedServing(in model.Input) []types.NamespacedName {
	var out []types.NamespacedName
	for _, ref := range in.ServedBackends {
		svc, ok := in.Services[ref]
		if !ok {
			svc, ok = in.ServedServices[ref]
		}
		if ok && svc.PodsKnown && slices.ContainsFunc(svc.Pods, func(p model.Pod) bool { return !p.Sidecar }) {
			out = append(out, ref)
		}
	}
	return out
}

// checkIngressGatewayKnown refuses a mode whose objects go to the ingress gateway when the
// operator has no ingress gateway namespace or selector: a policy or Gateway without a
// selector would apply to every workload of its namespace (every one of the mesh in the root
// namespace), not to the ingress gateway.
func checkIngressGatewayKnown(opts model.Options, path *field.Path, fs *Findings) bool {
	if opts.IngressGatewayKnown() {
		return true
	}
	fs.add(conditions.Accepted, conditions.ReasonInvalidSpec, path, "",
		"the operator has no ingress gateway namespace and selector, which this mode needs; start it with "+
			"--ingress-gateway-namespace and --ingress-gateway-selector")
	return false
}
