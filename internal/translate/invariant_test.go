package translate_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// The security invariants of the translation, checked on generated rule sets:
//
//   - route = decision: for every sampled request, the rule whose route the VirtualService
//     picks is the rule the APIRule's first-match semantics picks, and the authorization
//     policies of the backend workload decide exactly as that rule's strategy says;
//   - nothing leaks across APIRules: two APIRules on one workload, each decides its own host;
//   - in-mesh callers other than the ingress gateway get exactly what internalTraffic grants;
//   - every routed request meets an ALLOW policy (never Istio's allow-all default), and no
//     generated policy rule is empty or always true;
//   - the same input renders byte-identical objects;
//   - IP restriction = route: the DENY policies at the ingress gateway refuse a client exactly
//     when the restriction in force for the rule the route picks (the rule's own, else the
//     APIRule's) refuses its address, and never touch another APIRule's requests.
//
// The model of Istio here is independent of the translator: paths are matched segment by
// segment (the translator emits regexes), and policies are evaluated as Istio documents them.
// Run more with: go test ./internal/translate -run TestInvariants -invariant-sets 100000

var (
	invariantSets     = flag.Int("invariant-sets", 10000, "number of generated rule sets for TestInvariants")
	invariantRequests = flag.Int("invariant-requests", 60, "sampled requests per rule set")
	invariantSeed     = flag.Uint64("invariant-seed", 20261123, "seed of the rule-set generator")
)

const (
	gatewayPrincipal = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
	issuerA          = "https://a.example.com"
	issuerB          = "https://b.example.com"
	// issuerNested extends issuerA's string: a request principal of it starts with issuerA + "/".
	issuerNested  = "https://a.example.com/tenant"
	issuerUnknown = "https://unknown.example.com"
	providerName  = "authz"
	meshNamespace = "shop"
)

// scenario is one or two APIRules over a shared set of backends.
type scenario struct {
	rules    []*apiv2.APIRule
	services map[types.NamespacedName]model.Service
}

// request is what the model needs to know about one request.
type request struct {
	host, method, path string
	// principal is the caller's mTLS identity; the gateway's for requests from outside.
	principal string
	// issuer is the issuer of a valid token, or "" for none.
	issuer string
	scopes []string
	aud    []string
	// extAuthzAllows is the answer of the external authorizer.
	extAuthzAllows bool
	// client is the client address the gateway derives from X-Forwarded-For.
	client netip.Addr
	// headers are the request headers the workload sees that policies may name: for a request
	// through the gateway, what its route set; for an in-mesh caller, whatever it sends.
	headers map[string]string
}

func (r request) fromGateway() bool { return r.principal == gatewayPrincipal }

func TestInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(*invariantSeed, 1))
	requests := 0
	for n := 0; n < *invariantSets; n++ {
		sc := generateScenario(rng)
		outputs := make([]pipeline.Result, len(sc.rules))
		for i, rule := range sc.rules {
			in := model.Input{
				APIRule:  rule,
				Gateway:  &model.Gateway{Namespace: "istio-system", Name: "public", Hosts: []string{"*.example.com"}, Selector: ingressSelector},
				Services: sc.services,
				Mesh:     &model.MeshConfig{ExtensionProviders: map[string]model.ProviderKind{providerName: model.ProviderExtAuthzHTTP}, NumTrustedProxies: 1},
				Options:  model.Options{IngressGatewayPrincipal: gatewayPrincipal, IngressGatewayNamespace: "istio-system", IngressGatewaySelector: ingressSelector},
			}
			outputs[i] = translateIgnoringShadowing(in)
			if errs := outputs[i].Findings.Errors(); len(errs) > 0 {
				t.Fatalf("set %d: generated APIRule rejected: %s\n%s", n, errs.Summary(), describe(rule))
			}
			first, _ := manifest.YAML(outputs[i].Objects.All())
			second, _ := manifest.YAML(translateIgnoringShadowing(in).Objects.All())
			if !bytes.Equal(first, second) {
				t.Fatalf("set %d: two translations differ", n)
			}
			checkPolicyShape(t, n, outputs[i].Objects)
		}
		for k := 0; k < *invariantRequests; k++ {
			req := sampleRequest(rng, sc)
			if msg := checkRequest(sc, outputs, req); msg != "" {
				t.Fatalf("set %d, request %+v: %s\n%s", n, req, msg, describeAll(sc))
			}
			requests++
		}
	}
	t.Logf("checked %d rule sets and %d requests", *invariantSets, requests)
}

// checkRequest compares the generated objects' behaviour with the APIRule semantics.
func checkRequest(sc scenario, outputs []pipeline.Result, req request) string {
	if !req.fromGateway() {
		for key, svc := range sc.services {
			if !slices.ContainsFunc(sc.rules, func(r *apiv2.APIRule) bool { return routesTo(r, svc) }) {
				continue // no APIRule exposes this workload; its policies are not ours
			}
			want := internalAllowed(sc, svc, req)
			// The caller may send any route token it has read from a policy: none of them
			// stands in for the gateway's identity.
			for _, token := range append(allTokens(outputs), "") {
				req.headers = map[string]string{model.RouteHeader: token}
				got, byAuthorizer := decideAt(outputs, svc, req)
				// An in-mesh caller that sends an extAuth rule's route token is also asked to
				// the authorizer (CUSTOM policies cannot name callers); it is never allowed
				// more than internalTraffic grants.
				if got != want && !(want && byAuthorizer) {
					return fmt.Sprintf("in-mesh caller at workload %s with route token %q: policies say allowed=%v, internalTraffic says %v", key, token, got, want)
				}
			}
		}
		return ""
	}

	owner := -1
	for i, rule := range sc.rules {
		if slices.Contains(rule.Spec.Hosts, apiv2.Host(stripPort(req.host))) {
			owner = i
		}
	}
	if owner < 0 {
		for i, out := range outputs {
			if route, _, _ := routeOf(out.Objects.VirtualServices[0], req); route >= 0 {
				return fmt.Sprintf("APIRule %d routes a host it does not own", i)
			}
		}
		return ""
	}

	rule := sc.rules[owner]
	wantRule := firstMatch(rule, req)
	gotRule, destination, token := routeOf(outputs[owner].Objects.VirtualServices[0], req)
	if wantRule != gotRule {
		return fmt.Sprintf("APIRule %d: first-match picks rule %d, the VirtualService routes by rule %d", owner, wantRule, gotRule)
	}
	if gotRule < 0 {
		return ""
	}
	// The route overwrites whatever the client sent in the route header.
	req.headers = map[string]string{model.RouteHeader: token}
	wantBlocked := restrictionRefuses(rule, gotRule, req.client)
	if gotBlocked := deniedAtGateway(outputs, req); gotBlocked != wantBlocked {
		return fmt.Sprintf("APIRule %d rule %d: client %s denied at the gateway=%v, the IP restriction says refused=%v",
			owner, gotRule, req.client, gotBlocked, wantBlocked)
	}
	if wantBlocked {
		return ""
	}
	backend, _, _ := model.BackendRef(rule, gotRule)
	svc := sc.services[backend]
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); destination != want {
		return fmt.Sprintf("rule %d routes to %s, want %s", gotRule, destination, want)
	}
	if !hasAllowPolicy(outputs, svc) {
		return fmt.Sprintf("rule %d routes to workload %s with no ALLOW policy: Istio would allow everything", gotRule, backend)
	}
	want := strategyAllows(rule.Spec.Rules[gotRule], req)
	if got := allowedAt(outputs, svc, req); got != want {
		return fmt.Sprintf("APIRule %d rule %d (%s): policies say allowed=%v, the strategy says %v", owner, gotRule, rule.Spec.Rules[gotRule].Strategy(), got, want)
	}
	return ""
}

// --- the APIRule semantics ---

// refused is the rule index of a request the gateway answers itself (400): a path a backend
// could read as another (doubled or encoded slashes, dot segments, escapes of unreserved
// characters, raw bytes some mesh pathNormalization leaves in the path).
const refused = -2

func ambiguousSpelling(path string) bool {
	lower := strings.ToLower(path)
	if strings.Contains(path, "//") || strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(path, `\`) {
		return true
	}
	for _, seg := range strings.Split(path, "/") {
		if seg == "." || seg == ".." || strings.Contains(seg, ";") || strings.Contains(strings.ToLower(seg), "%3b") {
			return true
		}
	}
	for i := 0; i < len(path); i++ {
		if path[i] < '!' || path[i] > '~' {
			return true
		}
		if path[i] == '%' && i+2 < len(path) {
			if b, err := strconv.ParseUint(path[i+1:i+3], 16, 8); err == nil && unreserved(byte(b)) {
				return true
			}
		}
	}
	return false
}

func unreserved(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("-._~", b) >= 0
}

func firstMatch(rule *apiv2.APIRule, req request) int {
	if ambiguousSpelling(req.path) {
		return refused
	}
	for i, r := range rule.Spec.Rules {
		if slices.Contains(r.Methods, apiv2.HTTPMethod(req.method)) && (r.Path == "/*" || templateMatches(r.Path, req.path)) {
			return i
		}
	}
	return -1
}

func strategyAllows(r apiv2.Rule, req request) bool {
	switch {
	case r.JWT != nil:
		return tokenSatisfies(r.JWT, req)
	case r.ExtAuth != nil:
		return req.extAuthzAllows && (r.ExtAuth.Restrictions == nil || tokenSatisfies(r.ExtAuth.Restrictions, req))
	default:
		return true
	}
}

func tokenSatisfies(cfg *apiv2.JWTConfig, req request) bool {
	if !slices.ContainsFunc(cfg.Authentications, func(a apiv2.JWTAuthentication) bool { return a.Issuer == req.issuer }) {
		return false
	}
	if len(cfg.Authorizations) == 0 {
		return true
	}
	for _, authz := range cfg.Authorizations {
		ok := true
		for _, s := range authz.RequiredScopes {
			ok = ok && slices.Contains(req.scopes, s)
		}
		for _, a := range authz.Audiences {
			ok = ok && slices.Contains(req.aud, a)
		}
		if ok {
			return true
		}
	}
	return false
}

func internalAllowed(sc scenario, svc model.Service, req request) bool {
	if req.principal == "" {
		return false // internalTraffic admits authenticated mesh peers only
	}
	for _, rule := range sc.rules {
		if !routesTo(rule, svc) || rule.Spec.InternalTraffic == nil {
			continue
		}
		it := rule.Spec.InternalTraffic
		if it.Allow != nil && *it.Allow {
			return true
		}
		if slices.Contains(it.FromNamespaces, namespaceOf(req.principal)) {
			return true
		}
	}
	return false
}

func routesTo(rule *apiv2.APIRule, svc model.Service) bool {
	for i := range rule.Spec.Rules {
		if ref, _, _ := model.BackendRef(rule, i); ref.Name == svc.Name && ref.Namespace == svc.Namespace {
			return true
		}
	}
	return false
}

// templateMatches matches an Istio path template segment by segment: {*} is one non-empty
// segment, a trailing {**} is any rest (after its slash); other segments are literal.
func templateMatches(template, path string) bool {
	t := strings.Split(template, "/")
	p := strings.Split(path, "/")
	for i, seg := range t {
		if seg == "{**}" {
			return i < len(p)
		}
		if i >= len(p) {
			return false
		}
		if seg == "{*}" {
			if p[i] == "" {
				return false
			}
			continue
		}
		if seg != p[i] {
			return false
		}
	}
	return len(t) == len(p)
}

// --- the model of what Istio does with the generated objects ---

// routeOf returns the rule index (from the route name), destination host and route token of
// the route the VirtualService picks; -1 for none, refused for a direct 400.
func routeOf(vs *networkingclientv1.VirtualService, req request) (int, string, string) {
	if !slices.Contains(vs.Spec.Hosts, stripPort(req.host)) {
		return -1, "", ""
	}
	for _, route := range vs.Spec.Http {
		for _, m := range route.Match {
			if stringMatches(m.Uri, req.path) && (m.Method == nil || stringMatches(m.Method, req.method)) {
				if route.DirectResponse != nil {
					return refused, "", ""
				}
				var index int
				_, _ = fmt.Sscanf(route.Name, "rule-%d", &index)
				return index, route.Route[0].Destination.Host, route.Headers.Request.Set[model.RouteHeader]
			}
		}
	}
	return -1, "", ""
}

// allTokens are the route tokens every route of the outputs sets.
func allTokens(outputs []pipeline.Result) []string {
	var out []string
	for _, o := range outputs {
		for _, vs := range o.Objects.VirtualServices {
			for _, route := range vs.Spec.Http {
				if route.Headers != nil && route.Headers.Request != nil {
					out = append(out, route.Headers.Request.Set[model.RouteHeader])
				}
			}
		}
	}
	return out
}

var regexCache = map[string]*regexp.Regexp{}

func stringMatches(m *networkingv1.StringMatch, s string) bool {
	switch {
	case m == nil:
		return true
	case m.GetExact() != "":
		return s == m.GetExact()
	case m.GetPrefix() != "":
		return strings.HasPrefix(s, m.GetPrefix())
	case m.GetRegex() != "":
		// Envoy's safe_regex is RE2, as Go's regexp, matched against the whole value.
		re, ok := regexCache[m.GetRegex()]
		if !ok {
			re = regexp.MustCompile("^(?:" + m.GetRegex() + ")$")
			regexCache[m.GetRegex()] = re
		}
		return re.MatchString(s)
	}
	return false
}

// restrictionRefuses is the APIRule semantics of IP restriction for a request routed by rule i.
func restrictionRefuses(rule *apiv2.APIRule, i int, client netip.Addr) bool {
	r := rule.Spec.Rules[i].IPRestriction
	if r == nil {
		r = rule.Spec.IPRestriction
	}
	if r == nil {
		return false
	}
	in := func(blocks []apiv2.IPBlock) bool {
		return slices.ContainsFunc(blocks, func(b apiv2.IPBlock) bool { return blockContains(string(b), client) })
	}
	return (len(r.Allow) > 0 && !in(r.Allow)) || in(r.Deny)
}

func blockContains(block string, client netip.Addr) bool {
	if prefix, err := netip.ParsePrefix(block); err == nil {
		return prefix.Contains(client)
	}
	addr, err := netip.ParseAddr(block)
	return err == nil && addr == client
}

// deniedAtGateway evaluates every DENY policy on the ingress gateway, as Istio does: a request
// matching any rule of any of them is refused.
func deniedAtGateway(outputs []pipeline.Result, req request) bool {
	for _, out := range outputs {
		for _, ap := range out.Objects.AuthorizationPolicies {
			if ap.Spec.Action != securityv1.AuthorizationPolicy_DENY || ap.Namespace != "istio-system" ||
				!sameSelector(ap.Spec.Selector.GetMatchLabels(), ingressSelector) {
				continue
			}
			if slices.ContainsFunc(ap.Spec.Rules, func(r *securityv1.Rule) bool { return ruleMatches(r, req, "") }) {
				return true
			}
		}
	}
	return false
}

// allowedAt evaluates the policies of every APIRule that select the workload: CUSTOM first
// (the authorizer is asked when a CUSTOM rule matches), then ALLOW (when any ALLOW policy
// selects the workload, a request needs a matching rule).
func allowedAt(outputs []pipeline.Result, svc model.Service, req request) bool {
	allowed, _ := decideAt(outputs, svc, req)
	return allowed
}

// decideAt is allowedAt that also says whether the external authorizer denied the request.
func decideAt(outputs []pipeline.Result, svc model.Service, req request) (allowed, deniedByAuthorizer bool) {
	var allows, customs []*securityclientv1.AuthorizationPolicy
	var issuers []string
	for _, out := range outputs {
		for _, ap := range out.Objects.AuthorizationPolicies {
			if !sameSelector(ap.Spec.Selector.GetMatchLabels(), svc.Selector) || ap.Namespace != svc.Namespace ||
				ap.Spec.Action == securityv1.AuthorizationPolicy_DENY {
				continue
			}
			if ap.Spec.Action == securityv1.AuthorizationPolicy_CUSTOM {
				customs = append(customs, ap)
			} else {
				allows = append(allows, ap)
			}
		}
		for _, ra := range out.Objects.RequestAuthentications {
			if sameSelector(ra.Spec.Selector.GetMatchLabels(), svc.Selector) && ra.Namespace == svc.Namespace {
				for _, r := range ra.Spec.JwtRules {
					issuers = append(issuers, r.Issuer)
				}
			}
		}
	}
	// A token is validated, and yields a request principal, only for issuers the workload's
	// RequestAuthentications list.
	requestPrincipal := ""
	if req.issuer != "" && slices.Contains(issuers, req.issuer) {
		requestPrincipal = req.issuer + "/user"
	}
	for _, ap := range customs {
		if slices.ContainsFunc(ap.Spec.Rules, func(r *securityv1.Rule) bool { return ruleMatches(r, req, requestPrincipal) }) && !req.extAuthzAllows {
			return false, true
		}
	}
	if len(allows) == 0 {
		return true, false
	}
	for _, ap := range allows {
		if slices.ContainsFunc(ap.Spec.Rules, func(r *securityv1.Rule) bool { return ruleMatches(r, req, requestPrincipal) }) {
			return true, false
		}
	}
	return false, false
}

func hasAllowPolicy(outputs []pipeline.Result, svc model.Service) bool {
	for _, out := range outputs {
		for _, ap := range out.Objects.AuthorizationPolicies {
			if ap.Spec.Action == securityv1.AuthorizationPolicy_ALLOW && ap.Namespace == svc.Namespace &&
				sameSelector(ap.Spec.Selector.GetMatchLabels(), svc.Selector) {
				return true
			}
		}
	}
	return false
}

func ruleMatches(r *securityv1.Rule, req request, requestPrincipal string) bool {
	if len(r.From) > 0 && !slices.ContainsFunc(r.From, func(f *securityv1.Rule_From) bool { return sourceMatches(f.Source, req, requestPrincipal) }) {
		return false
	}
	if len(r.To) > 0 && !slices.ContainsFunc(r.To, func(t *securityv1.Rule_To) bool { return operationMatches(t.Operation, req) }) {
		return false
	}
	for _, c := range r.When {
		if !conditionMatches(c, req, requestPrincipal) {
			return false
		}
	}
	return true
}

func sourceMatches(s *securityv1.Source, req request, requestPrincipal string) bool {
	inBlocks := func(blocks []string) bool {
		return slices.ContainsFunc(blocks, func(b string) bool { return blockContains(b, req.client) })
	}
	if len(s.RemoteIpBlocks) > 0 && !inBlocks(s.RemoteIpBlocks) {
		return false
	}
	if len(s.NotRemoteIpBlocks) > 0 && inBlocks(s.NotRemoteIpBlocks) {
		return false
	}
	// "*" is any authenticated principal; a caller without one matches no principal.
	if len(s.Principals) > 0 && (req.principal == "" || !slices.ContainsFunc(s.Principals, func(p string) bool { return p == "*" || p == req.principal })) {
		return false
	}
	if slices.Contains(s.NotPrincipals, req.principal) {
		return false
	}
	if len(s.Namespaces) > 0 && !slices.Contains(s.Namespaces, namespaceOf(req.principal)) {
		return false
	}
	if len(s.RequestPrincipals) > 0 && !slices.ContainsFunc(s.RequestPrincipals, func(p string) bool {
		return requestPrincipal != "" && strings.HasPrefix(requestPrincipal, strings.TrimSuffix(p, "*"))
	}) {
		return false
	}
	return true
}

func operationMatches(op *securityv1.Operation, req request) bool {
	if len(op.Hosts) > 0 && !slices.ContainsFunc(op.Hosts, func(h string) bool { return hostMatches(h, req.host) }) {
		return false
	}
	if len(op.Methods) > 0 && !slices.Contains(op.Methods, req.method) {
		return false
	}
	if len(op.Paths) > 0 && !slices.ContainsFunc(op.Paths, func(p string) bool { return templateMatches(p, req.path) }) {
		return false
	}
	return !slices.ContainsFunc(op.NotPaths, func(p string) bool { return templateMatches(p, req.path) })
}

// hostMatches is Istio's policy host match: exact, "prefix*" or "*suffix", case-insensitive,
// against the whole Host header, port included.
func hostMatches(pattern, host string) bool {
	pattern, host = strings.ToLower(pattern), strings.ToLower(host)
	switch {
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(host, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(host, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == host
}

func conditionMatches(c *securityv1.Condition, req request, requestPrincipal string) bool {
	if name, ok := strings.CutPrefix(c.Key, "request.headers["); ok {
		value, sent := req.headers[strings.TrimSuffix(name, "]")]
		return sent && slices.Contains(c.Values, value)
	}
	if requestPrincipal == "" {
		return false
	}
	var values []string
	switch c.Key {
	case "request.auth.claims[iss]":
		values = []string{req.issuer}
	case "request.auth.claims[scp]":
		values = req.scopes
	case "request.auth.claims[aud]":
		values = req.aud
	}
	return slices.ContainsFunc(c.Values, func(v string) bool { return slices.Contains(values, v) })
}

// checkPolicyShape rejects policy rules that are empty or would match everything: every
// ALLOW rule names its callers, every CUSTOM rule names paths, and only the internal-traffic
// rule (which names callers other than the gateway) has no operation.
func checkPolicyShape(t *testing.T, n int, objects translate.Objects) {
	t.Helper()
	for _, ap := range objects.AuthorizationPolicies {
		if len(ap.Spec.Rules) == 0 {
			t.Fatalf("set %d: policy %s has no rules", n, ap.Name)
		}
		for _, r := range ap.Spec.Rules {
			for _, to := range r.To {
				if to.Operation != nil && ap.Spec.Action == securityv1.AuthorizationPolicy_DENY && len(to.Operation.Hosts) > 0 {
					continue // an APIRule-wide restriction covers every path and method of its hosts
				}
				if to.Operation == nil || len(to.Operation.Paths) == 0 || len(to.Operation.Methods) == 0 || len(to.Operation.Hosts) == 0 {
					t.Fatalf("set %d: policy %s has an operation without paths, methods or hosts", n, ap.Name)
				}
			}
			if ap.Spec.Action == securityv1.AuthorizationPolicy_CUSTOM {
				if len(r.To) > 0 || len(r.From) > 0 || len(r.When) != 1 || !boundToRoutes(r) {
					t.Fatalf("set %d: CUSTOM policy %s has a rule not bound to routes, or with conditions Istio rejects", n, ap.Name)
				}
				continue
			}
			if ap.Spec.Action == securityv1.AuthorizationPolicy_DENY {
				if len(r.To) == 0 || len(r.From) != 1 || len(r.From[0].Source.RemoteIpBlocks)+len(r.From[0].Source.NotRemoteIpBlocks) == 0 {
					t.Fatalf("set %d: DENY policy %s has a rule without hosts or without addresses", n, ap.Name)
				}
				continue
			}
			if len(r.From) == 0 {
				t.Fatalf("set %d: ALLOW policy %s has a rule that admits any caller", n, ap.Name)
			}
			for _, f := range r.From {
				s := f.Source
				if len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces) == 0 {
					t.Fatalf("set %d: ALLOW policy %s has a source without a caller identity", n, ap.Name)
				}
			}
			if !isInternalRule(r) && !boundToRoutes(r) {
				t.Fatalf("set %d: ALLOW policy %s has a gateway rule not bound to a route", n, ap.Name)
			}
			if isInternalRule(r) && !slices.ContainsFunc(r.From, func(f *securityv1.Rule_From) bool {
				return len(f.Source.Principals) > 0 && slices.Contains(f.Source.NotPrincipals, gatewayPrincipal)
			}) {
				t.Fatalf("set %d: ALLOW policy %s has an internal-traffic rule that admits callers without a principal or the gateway", n, ap.Name)
			}
		}
	}
}

// boundToRoutes says whether a rule requires route tokens.
func boundToRoutes(r *securityv1.Rule) bool {
	return slices.ContainsFunc(r.When, func(c *securityv1.Condition) bool {
		return c.Key == "request.headers["+model.RouteHeader+"]" && len(c.Values) > 0
	})
}

func isInternalRule(r *securityv1.Rule) bool {
	for _, f := range r.From {
		if slices.Contains(f.Source.Principals, gatewayPrincipal) {
			return false
		}
	}
	return true
}

// --- generators ---

func generateScenario(rng *rand.Rand) scenario {
	sc := scenario{services: map[types.NamespacedName]model.Service{}}
	for _, name := range []string{"a", "b"} {
		sc.services[types.NamespacedName{Namespace: meshNamespace, Name: name}] = model.Service{
			Namespace: meshNamespace, Name: name, Selector: map[string]string{"app": name}, Ports: []int32{8000},
		}
	}
	sc.rules = append(sc.rules, generateAPIRule(rng, "first", "app.example.com"))
	if rng.IntN(10) < 3 {
		sc.rules = append(sc.rules, generateAPIRule(rng, "second", "other.example.com"))
	}
	return sc
}

func generateAPIRule(rng *rand.Rand, name, host string) *apiv2.APIRule {
	gateway := apiv2.GatewayReference("istio-system/public")
	rule := &apiv2.APIRule{}
	rule.Namespace, rule.Name = meshNamespace, name
	rule.Spec = apiv2.APIRuleSpec{
		Hosts:   []apiv2.Host{apiv2.Host(host)},
		Gateway: &gateway,
		Service: &apiv2.Service{Name: "a", Port: 8000},
	}
	switch rng.IntN(10) {
	case 0:
		yes := true
		rule.Spec.InternalTraffic = &apiv2.InternalTraffic{Allow: &yes}
	case 1:
		rule.Spec.InternalTraffic = &apiv2.InternalTraffic{FromNamespaces: []string{"batch"}}
	}
	if rng.IntN(10) < 3 {
		rule.Spec.IPRestriction = generateIPRestriction(rng)
	}
	for i, n := 0, 1+rng.IntN(6); i < n; i++ {
		r := generateRule(rng)
		if rng.IntN(10) < 2 {
			r.IPRestriction = generateIPRestriction(rng)
		}
		rule.Spec.Rules = append(rule.Spec.Rules, r)
	}
	return rule
}

// generateIPRestriction picks allow and deny lists from ranges that overlap the sampled
// client addresses in every way: inside, outside, in a nested range, IPv4 and IPv6.
func generateIPRestriction(rng *rand.Rand) *apiv2.IPRestriction {
	r := &apiv2.IPRestriction{}
	for _, b := range []apiv2.IPBlock{"203.0.113.0/24", "10.0.0.0/8", "2001:db8::/32", "192.0.2.1"} {
		if rng.IntN(3) == 0 {
			r.Allow = append(r.Allow, b)
		}
	}
	for _, b := range []apiv2.IPBlock{"203.0.113.128/25", "198.51.100.0/24", "2001:db8:1::/48"} {
		if rng.IntN(4) == 0 {
			r.Deny = append(r.Deny, b)
		}
	}
	if len(r.Allow)+len(r.Deny) == 0 {
		r.Deny = []apiv2.IPBlock{"198.51.100.0/24"}
	}
	return r
}

func generateRule(rng *rand.Rand) apiv2.Rule {
	r := apiv2.Rule{Path: generatePath(rng)}
	for _, m := range []apiv2.HTTPMethod{"GET", "POST", "PUT"} {
		if rng.IntN(2) == 0 {
			r.Methods = append(r.Methods, m)
		}
	}
	if len(r.Methods) == 0 {
		r.Methods = []apiv2.HTTPMethod{"GET"}
	}
	if rng.IntN(10) < 3 {
		r.Service = &apiv2.Service{Name: "b", Port: 8000}
	}
	switch k := rng.IntN(20); {
	case k < 8:
		yes := true
		r.NoAuth = &yes
	case k < 15:
		r.JWT = generateJWT(rng)
	default:
		r.ExtAuth = &apiv2.ExtAuth{Authorizers: []string{providerName}}
		if rng.IntN(2) == 0 {
			r.ExtAuth.Restrictions = generateJWT(rng)
		}
	}
	return r
}

func generatePath(rng *rand.Rand) string {
	switch rng.IntN(10) {
	case 0:
		return "/*"
	case 1:
		return "/"
	}
	var segments []string
	for i, n := 0, 1+rng.IntN(3); i < n; i++ {
		switch k := rng.IntN(10); {
		case k < 3:
			segments = append(segments, "{*}")
		case k < 4 && i == n-1:
			segments = append(segments, "{**}")
		default:
			segments = append(segments, []string{"a", "b", "c", "v1.0"}[rng.IntN(4)])
		}
	}
	return "/" + strings.Join(segments, "/")
}

func generateJWT(rng *rand.Rand) *apiv2.JWTConfig {
	uriA, uriB, uriNested := "https://a.example.com/jwks", "https://b.example.com/jwks", "https://a.example.com/tenant/jwks"
	cfg := &apiv2.JWTConfig{}
	switch rng.IntN(4) {
	case 0:
		cfg.Authentications = []apiv2.JWTAuthentication{{Issuer: issuerA, JWKSURI: &uriA}}
	case 1:
		cfg.Authentications = []apiv2.JWTAuthentication{{Issuer: issuerB, JWKSURI: &uriB}}
	case 2:
		cfg.Authentications = []apiv2.JWTAuthentication{{Issuer: issuerNested, JWKSURI: &uriNested}}
	default:
		cfg.Authentications = []apiv2.JWTAuthentication{{Issuer: issuerB, JWKSURI: &uriB}, {Issuer: issuerA, JWKSURI: &uriA}}
	}
	for i, n := 0, rng.IntN(3); i < n; i++ {
		var authz apiv2.JWTAuthorization
		for _, s := range []string{"read", "write"} {
			if rng.IntN(2) == 0 {
				authz.RequiredScopes = append(authz.RequiredScopes, s)
			}
		}
		if rng.IntN(2) == 0 {
			authz.Audiences = []string{"shop"}
		}
		cfg.Authorizations = append(cfg.Authorizations, authz)
	}
	return cfg
}

func sampleRequest(rng *rand.Rand, sc scenario) request {
	req := request{
		method:         []string{"GET", "POST", "PUT", "DELETE"}[rng.IntN(4)],
		path:           samplePath(rng),
		principal:      gatewayPrincipal,
		extAuthzAllows: rng.IntN(2) == 0,
		client: netip.MustParseAddr([]string{"203.0.113.10", "203.0.113.200", "10.1.2.3", "198.51.100.7", "192.0.2.1",
			"192.0.2.2", "2001:db8::1", "2001:db8:1::1", "2001:db9::1"}[rng.IntN(9)]),
	}
	switch k := rng.IntN(10); {
	case k < 6:
		req.host = "app.example.com"
	case k < 8:
		req.host = "other.example.com"
	case k < 9:
		req.host = []string{"app.example.com:443", "APP.example.com"}[rng.IntN(2)]
	default:
		req.host = "elsewhere.example.com"
	}
	switch k := rng.IntN(12); {
	case k < 1:
		req.principal = "cluster.local/ns/batch/sa/job"
	case k < 2:
		req.principal = "cluster.local/ns/other/sa/client"
	case k < 3:
		req.principal = "" // a caller without a sidecar, under PERMISSIVE mTLS
	}
	switch k := rng.IntN(12); {
	case k < 3:
	case k < 6:
		req.issuer = issuerA
	case k < 9:
		req.issuer = issuerB
	case k < 11:
		req.issuer = issuerNested
	default:
		req.issuer = issuerUnknown
	}
	if req.issuer != "" {
		for _, s := range []string{"read", "write"} {
			if rng.IntN(2) == 0 {
				req.scopes = append(req.scopes, s)
			}
		}
		if rng.IntN(2) == 0 {
			req.aud = []string{"shop"}
		}
	}
	return req
}

func samplePath(rng *rand.Rand) string {
	n := rng.IntN(5)
	segments := make([]string, n)
	for i := range segments {
		segments[i] = []string{"a", "b", "c", "x", "v1.0", "v1x0"}[rng.IntN(6)]
	}
	path := "/" + strings.Join(segments, "/")
	if n > 0 && rng.IntN(8) == 0 {
		path += "/"
	}
	// Spellings a backend may read as another path.
	switch rng.IntN(16) {
	case 0:
		path = "/" + path
	case 1:
		if i := strings.LastIndex(path, "/"); i > 0 {
			path = path[:i] + []string{"%2f", "%2F", "%5c"}[rng.IntN(3)] + path[i+1:]
		}
	case 2:
		// A dot segment, with or without parameters, before the last segment.
		if i := strings.LastIndex(path, "/"); i >= 0 {
			path = path[:i] + []string{"/..", "/.", "/..;x", "/x/.."}[rng.IntN(4)] + path[i:]
		}
	case 3:
		// An escape of an unreserved character: "a" as %61 or %41-cased, "." as %2e.
		if i := strings.IndexAny(path, "a."); i >= 0 {
			esc := map[byte][]string{'a': {"%61"}, '.': {"%2e", "%2E"}}[path[i]]
			path = path[:i] + esc[rng.IntN(len(esc))] + path[i+1:]
		}
	}
	return path
}

// --- helpers ---

func stripPort(host string) string {
	h, _, _ := strings.Cut(strings.ToLower(host), ":")
	return h
}

func namespaceOf(principal string) string {
	_, rest, _ := strings.Cut(principal, "/ns/")
	ns, _, _ := strings.Cut(rest, "/")
	return ns
}

func sameSelector(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func describe(rule *apiv2.APIRule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "APIRule %s hosts %v internalTraffic %+v\n", rule.Name, rule.Spec.Hosts, rule.Spec.InternalTraffic)
	for i, r := range rule.Spec.Rules {
		svc := "a"
		if r.Service != nil {
			svc = r.Service.Name
		}
		fmt.Fprintf(&b, "  rule %d: %s %v -> %s %s", i, r.Path, r.Methods, svc, r.Strategy())
		if cfg := r.JWT; cfg != nil {
			fmt.Fprintf(&b, " issuers=%d authz=%+v", len(cfg.Authentications), cfg.Authorizations)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func describeAll(sc scenario) string {
	var b strings.Builder
	for _, r := range sc.rules {
		b.WriteString(describe(r))
	}
	return b.String()
}

// translateIgnoringShadowing is checkAndTranslate for rule sets in which a rule may be
// shadowed: the invariants hold for those too (the route and the policies agree on who wins),
// and the generator does not avoid them. Any other error rejects the set.
func translateIgnoringShadowing(in model.Input) pipeline.Result {
	checked := check.Full(in)
	var kept check.Findings
	for _, f := range checked.Findings {
		if f.Reason != conditions.ReasonRuleShadowed {
			kept = append(kept, f)
		}
	}
	out := pipeline.Result{Findings: kept}
	if kept.HasErrors() {
		return out
	}
	objects, err := translate.Translate(in)
	if err != nil {
		out.Findings = append(out.Findings, check.Finding{Severity: check.Error, Message: err.Error()})
		return out
	}
	out.Objects = objects
	return out
}
