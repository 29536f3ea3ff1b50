package translate_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
	"github.com/apirule-operator/apirule-operator/internal/schema"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// The security invariants of the translation, checked on generated rule sets:
//
//   - route = decision: for every sampled request, the rule whose route the VirtualService
//     picks is the rule the APIRule's first-match semantics picks for the path the gateway
//     forwards (normalized as Envoy normalizes it), and the authorization policies of the
//     backend workload decide exactly as that rule's strategy says;
//   - host = APIRule: a request is routed only by the APIRule that owns its Host (an exact
//     host over a wildcard one), whatever TLS server name it sent; an honest client (server
//     name = Host) is routed by it;
//   - mTLS: no request reaches an mTLS APIRule's route without a valid client certificate on
//     its MUTUAL server, and only the allowed subjects and SANs get through;
//   - nothing leaks across APIRules: several APIRules on one workload (also through different
//     Services) each decide their own requests; token locations and ext-authz providers that
//     would leak are refused;
//   - in-mesh callers other than the ingress gateway get exactly what internalTraffic grants;
//   - every routed request meets an ALLOW policy (never Istio's allow-all default), and no
//     generated policy rule is empty or always true;
//   - the same input renders byte-identical objects;
//   - IP restriction = route: the DENY policies at the ingress gateway refuse a client exactly
//     when the restriction in force for the rule the route picks (the rule's own, else the
//     APIRule's) refuses its address, and never touch another APIRule's requests (except one
//     known over-refusal, counted: an escape spelled in another case under a later rule's
//     restriction);
//   - refusals: an APIRule the generator built to conflict (a younger APIRule covering an
//     mTLS host, claiming a served host or configuring a shared workload differently, an IP
//     restriction on a wildcard host or on escapes, internalTraffic naming the gateway, allow
//     with lists) is
//     refused with exactly the expected reasons and serves nothing; every other one is
//     accepted.
//
// The model of Istio (invariant_envoy_test.go) is independent of the translator: paths are
// matched segment by segment (the translator emits regexes), and policies are evaluated as
// Istio documents them. The expected refusals are derived from the APIRules here, not from
// the checks.
// Run more with: go test ./internal/translate -run TestInvariants -invariant-sets 100000
// or explore with: go test ./internal/translate -run '^$' -fuzz FuzzInvariants -fuzztime 10m

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
	otherProvider = "authz-other"
	meshNamespace = "shop"
	publicGateway = "istio-system/public"
	publicDomain  = "*.example.com"
	mtlsHost      = "partner.example.com"
	tokenCookie   = "session"
)

type tokenLocation int

const (
	tokenInHeader tokenLocation = iota // Authorization: Bearer
	tokenInCookie                      // the session cookie
	tokenInQuery                       // ?access_token=
)

// svcKey is what the model needs of a workload: the namespace and selector of a Service.
type svcKey struct {
	namespace string
	selector  map[string]string
}

func workloadOf(svc model.Service) svcKey {
	return svcKey{namespace: svc.Namespace, selector: svc.Selector}
}

// scenario is a few APIRules over a shared set of backends.
type scenario struct {
	// generated are all APIRules, oldest first.
	generated []*apiv2.APIRule
	// rules are the accepted ones and outputs their objects, oldest first.
	rules    []*apiv2.APIRule
	outputs  []pipeline.Result
	services map[types.NamespacedName]model.Service
}

// request is what the model needs to know about one request.
type request struct {
	// host is the Host header as sent, sni the TLS server name.
	host, sni string
	// clientCert says the client presents a certificate the mTLS APIRule's CA signed, with
	// this subject and URI SAN.
	clientCert           bool
	certSubject, certSAN string
	method               string
	// sentPath is the path as the client sent it; path is what the gateway routes by.
	sentPath, path string
	// principal is the caller's mTLS identity; the gateway's for requests from outside.
	principal string
	// issuer is the issuer of a valid token, or "" for none; tokenIn where it is sent.
	issuer  string
	tokenIn tokenLocation
	scopes  []string
	aud     []string
	// extAuthzAllows is the answer of the external authorizer.
	extAuthzAllows bool
	// client is the client address the gateway derives from X-Forwarded-For.
	client netip.Addr
	// headers are the request headers the workload sees that policies may name: for a request
	// through the gateway, what its route set; for an in-mesh caller, whatever it sends.
	headers map[string]string
}

func (r request) fromGateway() bool { return r.principal == gatewayPrincipal }

// String is the request as a failure message shows it.
func (r request) String() string {
	from := "from " + r.principal
	if r.fromGateway() {
		from = fmt.Sprintf("through the gateway from %s, TLS name %q, client certificate %v (%s, %s)", r.client, r.sni, r.clientCert, r.certSubject, r.certSAN)
	}
	token := "no token"
	if r.issuer != "" {
		token = fmt.Sprintf("token of %s in %s, scopes %v, audiences %v", r.issuer, []string{"header", "cookie", "query"}[r.tokenIn], r.scopes, r.aud)
	}
	return fmt.Sprintf("%s %s (Host %q) %s, %s, authorizer allows %v", r.method, r.sentPath, r.host, from, token, r.extAuthzAllows)
}

func TestInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(*invariantSeed, 1))
	seen := tally{}
	for n := 0; n < *invariantSets; n++ {
		if msg := checkSet(rng, *invariantRequests, seen); msg != "" {
			t.Fatalf("set %d (seed %d): %s", n, *invariantSeed, msg)
		}
	}
	t.Logf("checked %d rule sets and %d requests; outcomes: %v", *invariantSets, seen["request"], seen)
	// A default run must see every kind of outcome the generator is built for: a generator
	// change that stops producing one would otherwise leave its invariant unchecked.
	if *invariantSets >= 10000 {
		for _, outcome := range outcomes {
			if seen[outcome] == 0 {
				t.Errorf("no sampled request or APIRule had the outcome %q", outcome)
			}
		}
	}
}

// FuzzInvariants explores further than TestInvariants: each input seeds the generator for a
// few rule sets. Its seed corpus (the default seed and a few more) runs in every go test.
func FuzzInvariants(f *testing.F) {
	for _, seed := range []uint64{*invariantSeed, 1, 2, 3, 4, 5, 6, 7} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 1))
		for n := 0; n < 20; n++ {
			if msg := checkSet(rng, *invariantRequests, tally{}); msg != "" {
				t.Fatalf("seed %d, set %d: %s", seed, n, msg)
			}
		}
	})
}

// tally counts what the checked sets and requests did, by outcome.
type tally map[string]int

// outcomes are the outcomes TestInvariants requires to see.
var outcomes = []string{
	"refused " + string(conditions.ReasonWorkloadConflict), "refused " + string(conditions.ReasonMTLSHostCovered),
	"refused " + string(conditions.ReasonInvalidSpec), "refused " + string(conditions.ReasonInvalidPath), "refused by the schema",
	"refused " + string(conditions.ReasonHostConflict),
	"accepted wildcard with an exact host", "accepted mTLS with another APIRule",
	"routed by a wildcard", "routed by an exact host beside a wildcard", "routed by mTLS", "mTLS handshake refused",
	"no server for the TLS name", "Host not on the TLS server", "routed despite another TLS name",
	"path normalized", "fragment or query dropped", "escape in other hex case routed", "refused as ambiguous",
	"denied by IP restriction", "allowed", "denied at the workload", "token from a cookie accepted",
	"in-mesh caller admitted by service account", "in-mesh caller admitted by namespace",
	"denied for the client certificate's identity",
}

// checkSet generates one rule set, runs the pipeline on each APIRule with the input the
// gatherer would read, and checks the refusals, the objects and sampled requests.
func checkSet(rng *rand.Rand, requests int, seen tally) string {
	sc := generateScenario(rng)
	for i, rule := range sc.generated {
		if it := rule.Spec.InternalTraffic; it != nil && it.Allow != nil && *it.Allow && len(it.FromNamespaces)+len(it.FromServiceAccounts) > 0 {
			// The API server refuses it; it never reaches the operator.
			if msg := schemaRefuses(rule, "allow: true already admits every in-mesh caller"); msg != "" {
				return msg + "\n" + describeAll(sc)
			}
			seen["refused by the schema"]++
			continue
		}
		in := sc.input(rule)
		out := translateIgnoringShadowing(in)
		want := expectedRefusals(sc, i)
		if got := errorReasons(out.Findings); !slices.Equal(got, want) {
			return fmt.Sprintf("APIRule %s: refused for %v, want %v: %s\n%s", rule.Name, got, want, out.Findings.Errors().Summary(), describeAll(sc))
		}
		if len(want) > 0 {
			for _, reason := range want {
				seen["refused "+reason]++
			}
			continue
		}
		first, _ := manifest.YAML(out.Objects.All())
		second, _ := manifest.YAML(translateIgnoringShadowing(in).Objects.All())
		if !bytes.Equal(first, second) {
			return fmt.Sprintf("APIRule %s: two translations differ", rule.Name)
		}
		if msg := checkPolicyShape(out.Objects); msg != "" {
			return fmt.Sprintf("APIRule %s: %s", rule.Name, msg)
		}
		sc.rules = append(sc.rules, rule)
		sc.outputs = append(sc.outputs, out)
	}
	hasHost := func(h string) bool {
		return slices.ContainsFunc(sc.rules, func(r *apiv2.APIRule) bool { return slices.Contains(r.Spec.Hosts, apiv2.Host(h)) })
	}
	if hasHost(publicDomain) && (hasHost("app.example.com") || hasHost("other.example.com")) {
		seen["accepted wildcard with an exact host"]++
	}
	if hasHost(mtlsHost) && len(sc.rules) > 1 {
		seen["accepted mTLS with another APIRule"]++
	}
	for k := 0; k < requests; k++ {
		req := sampleRequest(rng, sc)
		seen["request"]++
		if msg := checkRequest(sc, req, seen); msg != "" {
			return fmt.Sprintf("request %s: %s\n%s", req, msg, describeAll(sc))
		}
	}
	return ""
}

// schemaRefuses checks that the CRD's validation refuses the APIRule with the message.
func schemaRefuses(rule *apiv2.APIRule, message string) string {
	raw, err := json.Marshal(rule)
	if err != nil {
		return err.Error()
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return err.Error()
	}
	obj["apiVersion"], obj["kind"] = apiv2.GroupVersion.String(), "APIRule"
	delete(obj, "status")
	if _, errs := schema.Validate(obj); len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), message) {
		return fmt.Sprintf("APIRule %s: the schema does not refuse it with %q: %v", rule.Name, message, errs)
	}
	return ""
}

func errorReasons(fs check.Findings) []string {
	var out []string
	for _, f := range fs.Errors() {
		if !slices.Contains(out, string(f.Reason)) {
			out = append(out, string(f.Reason))
		}
	}
	slices.Sort(out)
	return out
}

// checkRequest compares the generated objects' behaviour with the APIRule semantics.
func checkRequest(sc *scenario, req request, seen tally) string {
	if !req.fromGateway() {
		return checkInMesh(sc, req, seen)
	}

	owner := hostOwner(sc, req.host)
	got, mutual := -1, false
	var vs *networkingclientv1.VirtualService
	// The TLS server name picks the server; a MUTUAL one refuses the handshake without a
	// certificate. Then the Host picks the virtual host among that server's routes.
	switch server, ok := serverFor(ingressServers(sc.outputs), req.sni); {
	case !ok:
		seen["no server for the TLS name"]++
	case handshakeRefused(server, req):
		seen["mTLS handshake refused"]++
	default:
		got, vs = virtualHostOf(sc.outputs, server, req.host)
		mutual = server.mutual
		if got < 0 && owner >= 0 {
			seen["Host not on the TLS server"]++
		}
	}
	if got >= 0 && got != owner {
		return fmt.Sprintf("Host %q is routed by APIRule %s, but %s owns it", req.host, sc.rules[got].Name, ownerName(sc, owner))
	}
	if got >= 0 && sc.rules[got].Spec.MTLS != nil && !(mutual && req.clientCert) {
		return fmt.Sprintf("mTLS APIRule %s routes a request that did not present a client certificate to a MUTUAL server", sc.rules[got].Name)
	}
	if owner >= 0 && got < 0 && req.sni == canonicalHost(req.host) && certificateAccepted(sc.rules[owner], req) {
		return fmt.Sprintf("APIRule %s does not route the Host %q it owns for a client naming it in TLS", sc.rules[owner].Name, req.host)
	}
	if got < 0 {
		seen["not routed"]++
		return ""
	}
	rule := sc.rules[got]
	switch {
	case rule.Spec.MTLS != nil:
		seen["routed by mTLS"]++
	case rule.Spec.Hosts[0] == publicDomain:
		seen["routed by a wildcard"]++
	case hostOwnedByWildcard(sc):
		seen["routed by an exact host beside a wildcard"]++
	}
	if req.sni != canonicalHost(req.host) {
		seen["routed despite another TLS name"]++
	}
	path, ok := gatewayPath(req.sentPath)
	if !ok {
		return ""
	}
	req.path = path
	if cut, _, _ := strings.Cut(req.sentPath, "?"); cut != req.sentPath || strings.Contains(req.sentPath, "#") {
		seen["fragment or query dropped"]++
	} else if path != req.sentPath {
		seen["path normalized"]++
	}
	wantRule := firstMatch(rule, req)
	gotRule, destination, ops := routeOf(vs, req.path, req.method)
	if wantRule != gotRule {
		return fmt.Sprintf("APIRule %s: first-match picks rule %d for path %q, the VirtualService routes by rule %d", rule.Name, wantRule, req.path, gotRule)
	}
	if gotRule == refused {
		seen["refused as ambiguous"]++
	}
	if gotRule == -1 {
		seen["no rule"]++
	}
	if gotRule < 0 {
		return ""
	}
	if escapeSpelledOtherwise(rule.Spec.Rules[gotRule].Path, req.path) {
		seen["escape in other hex case routed"]++
	}
	// The client sends forged identity headers and another rule's route token; the route
	// overwrites or removes them.
	tokens := allTokens(sc.outputs)
	req.headers = forwardedHeaders(map[string]string{
		model.RouteHeader: tokens[len(req.sentPath)%len(tokens)], model.HeaderClientSubject: "CN=partner-a,O=Acme",
		model.HeaderClientURISAN: "spiffe://partner/a",
	}, ops, req)
	wantBlocked := restrictionRefuses(rule, gotRule, req.client)
	gotBlocked := deniedAtGateway(sc.outputs, req)
	if gotBlocked && !wantBlocked && escapeSpelledOtherwise(rule.Spec.Rules[gotRule].Path, req.path) {
		// Known, fail closed: the DENY rule of a later rule with its own restriction excludes
		// this rule's path by exact hex case (policy paths cannot fold case), so another
		// spelling of its escapes falls under the later rule's restriction. Refused, never
		// let through; counted so that it stays visible.
		seen["over-blocked: escape in other hex case under a later rule's restriction"]++
		return ""
	}
	if gotBlocked != wantBlocked {
		return fmt.Sprintf("APIRule %s rule %d, path %q: client %s denied at the gateway=%v, the IP restriction says refused=%v",
			rule.Name, gotRule, req.path, req.client, gotBlocked, wantBlocked)
	}
	if wantBlocked {
		seen["denied by IP restriction"]++
		return ""
	}
	svc := sc.services[types.NamespacedName{Namespace: meshNamespace, Name: backendOf(rule, gotRule)}]
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); destination != want {
		return fmt.Sprintf("rule %d routes to %s, want %s", gotRule, destination, want)
	}
	if !hasAllowPolicy(sc.outputs, workloadOf(svc)) {
		return fmt.Sprintf("rule %d routes to workload %s with no ALLOW policy: Istio would allow everything", gotRule, svc.Name)
	}
	want := strategyAllows(rule.Spec.Rules[gotRule], req) && identityAllowed(rule, req)
	allowed, _ := decideAt(sc.outputs, workloadOf(svc), req)
	if allowed != want {
		return fmt.Sprintf("APIRule %s rule %d (%s): policies say allowed=%v, the strategy says %v", rule.Name, gotRule, rule.Spec.Rules[gotRule].Strategy(), allowed, want)
	}
	if !want {
		seen["denied at the workload"]++
		if strategyAllows(rule.Spec.Rules[gotRule], req) {
			seen["denied for the client certificate's identity"]++
		}
		return ""
	}
	seen["allowed"]++
	if req.issuer != "" && req.tokenIn == tokenInCookie && rule.Spec.Rules[gotRule].NoAuth == nil {
		seen["token from a cookie accepted"]++
	}
	return ""
}

// escapeSpelledOtherwise says whether the path matches the rule path only with its escapes
// compared regardless of hex case.
func escapeSpelledOtherwise(rulePath, path string) bool {
	return strings.Contains(rulePath, "%") && templateMatches(rulePath, path, true) && !templateMatches(rulePath, path, false)
}

// hostOwnedByWildcard says whether an accepted APIRule has the wildcard host.
func hostOwnedByWildcard(sc *scenario) bool {
	return slices.ContainsFunc(sc.rules, func(r *apiv2.APIRule) bool { return r.Spec.Hosts[0] == publicDomain })
}

// checkInMesh checks a caller inside the mesh at every workload an APIRule exposes.
func checkInMesh(sc *scenario, req request, seen tally) string {
	for _, key := range sortedKeys(sc.services) {
		w := workloadOf(sc.services[key])
		if !slices.ContainsFunc(sc.rules, func(r *apiv2.APIRule) bool { return servesWorkload(sc, r, w) }) {
			continue // no APIRule exposes this workload; its policies are not ours
		}
		want, why := internalAllowed(sc, w, req)
		if want {
			seen["in-mesh caller admitted by "+why]++
		}
		// The caller may send any route token it has read from a policy: none of them
		// stands in for the gateway's identity.
		for _, token := range append(allTokens(sc.outputs), "") {
			req.headers = map[string]string{model.RouteHeader: token}
			got, byAuthorizer := decideAt(sc.outputs, w, req)
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

// --- the APIRule semantics ---

// canonicalHost is the name a Host header gives: lower-case, without a port. A trailing dot
// stays: no APIRule host is written with one.
func canonicalHost(host string) string { return strings.ToLower(dropPort(host)) }

// hostOwner is the accepted APIRule that serves the Host: the one listing it, else the one
// with the most specific wildcard over it ("*.d" covers every name ending in ".d", at any
// depth); -1 for none.
func hostOwner(sc *scenario, hostHeader string) int {
	host := canonicalHost(hostHeader)
	for i, r := range sc.rules {
		if slices.Contains(r.Spec.Hosts, apiv2.Host(host)) {
			return i
		}
	}
	best, bestLen := -1, 0
	for i, r := range sc.rules {
		for _, h := range r.Spec.Hosts {
			if domain, ok := strings.CutPrefix(string(h), "*."); ok && strings.HasSuffix(host, "."+domain) && len(host) > len(domain)+1 && len(domain) > bestLen {
				best, bestLen = i, len(domain)
			}
		}
	}
	return best
}

func ownerName(sc *scenario, i int) string {
	if i < 0 {
		return "no APIRule"
	}
	return "APIRule " + sc.rules[i].Name
}

// refused is the rule index of a request the gateway answers itself (400): a path a backend
// could read as another (doubled or encoded slashes, path parameters), after normalization; and, for an
// APIRule with rules restricted on their own, a path with '*' or '=', which Envoy's URI
// templates in the restriction's policy match differently across versions.
const refused = -2

func firstMatch(rule *apiv2.APIRule, req request) int {
	// After normalization only these spellings of the first route remain: doubled and encoded
	// slashes, and path parameters, which backends cut from a segment.
	lower := strings.ToLower(req.path)
	if strings.Contains(req.path, "//") || strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") ||
		strings.Contains(req.path, ";") || strings.Contains(lower, "%3b") || strings.ContainsAny(req.path, "*[]") {
		return refused
	}
	if slices.ContainsFunc(rule.Spec.Rules, func(r apiv2.Rule) bool { return r.IPRestriction != nil }) && strings.ContainsAny(req.path, "*=") {
		return refused
	}
	for i, r := range rule.Spec.Rules {
		if slices.Contains(r.Methods, apiv2.HTTPMethod(req.method)) && (r.Path == "/*" || templateMatches(r.Path, req.path, true)) {
			return i
		}
	}
	return -1
}

// templateChars are the characters {*} and {**} match in the APIRule semantics (the APIRule
// path documentation): letters, digits, '%' of escapes and -._~!$&'()+,;=:@ ('*', '[' and
// ']' are not among them).
const templateChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789%-._~!$&'()+,;=:@"

// templateMatches matches a path template segment by segment: {*} is one non-empty segment
// of template characters, a trailing {**} is any rest of them and slashes (after its slash);
// other segments are literal. With apiRule, as in the APIRule semantics, an escape matches in
// either hex case (%c3%a9 names the byte %C3%A9 names) and the characters are templateChars;
// without, as Envoy's URI template does, literals match exactly and the operators also match
// '*' (envoyTemplateChars).
func templateMatches(template, path string, apiRule bool) bool {
	chars := envoyTemplateChars
	if apiRule {
		chars = templateChars
	}
	t := strings.Split(template, "/")
	p := strings.Split(path, "/")
	only := func(s, chars string) bool {
		return strings.Trim(s, chars) == ""
	}
	for i, seg := range t {
		if seg == model.AnyRest {
			return i < len(p) && only(strings.Join(p[i:], "/"), chars+"/")
		}
		if i >= len(p) {
			return false
		}
		switch {
		case seg == model.OneSegment:
			if p[i] == "" || !only(p[i], chars) {
				return false
			}
		case apiRule:
			if upperEscapes(seg) != upperEscapes(p[i]) {
				return false
			}
		case seg != p[i]:
			return false
		}
	}
	return len(t) == len(p)
}

// upperEscapes writes the hex digits of every escape in upper case.
func upperEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = upper(b[i+1]), upper(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

// certificateAccepted: an mTLS APIRule takes a client certificate of its CA with one of the
// allowed SANs, if it lists any; other APIRules need none.
func certificateAccepted(rule *apiv2.APIRule, req request) bool {
	m := rule.Spec.MTLS
	return m == nil || (req.clientCert && (len(m.AllowedSANs) == 0 || slices.Contains(m.AllowedSANs, req.certSAN)))
}

// identityAllowed: an mTLS APIRule admits only the allowed subjects and SANs.
func identityAllowed(rule *apiv2.APIRule, req request) bool {
	m := rule.Spec.MTLS
	return m == nil || ((len(m.AllowedSubjects) == 0 || slices.Contains(m.AllowedSubjects, req.certSubject)) && certificateAccepted(rule, req))
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

// tokenSatisfies: a token of a listed issuer, sent where that authentication reads it (the
// Authorization header with the Bearer prefix when it names no location), meeting one of the
// authorizations.
func tokenSatisfies(cfg *apiv2.JWTConfig, req request) bool {
	if !slices.ContainsFunc(cfg.Authentications, func(a apiv2.JWTAuthentication) bool {
		return a.Issuer == req.issuer && slices.Contains(locationsOf(a), req.tokenIn)
	}) {
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

// locationsOf are where an authentication reads its token, of the locations requests use.
func locationsOf(a apiv2.JWTAuthentication) []tokenLocation {
	if len(a.FromHeaders)+len(a.FromCookies)+len(a.FromParams) == 0 {
		return []tokenLocation{tokenInHeader}
	}
	var out []tokenLocation
	if slices.Contains(a.FromHeaders, apiv2.JWTHeader{Name: "Authorization", Prefix: "Bearer "}) {
		out = append(out, tokenInHeader)
	}
	if slices.Contains(a.FromCookies, tokenCookie) {
		out = append(out, tokenInCookie)
	}
	if slices.Contains(a.FromParams, "access_token") {
		out = append(out, tokenInQuery)
	}
	return out
}

// internalAllowed: an authenticated mesh peer is admitted when an APIRule on the workload
// allows every caller, lists its namespace, or lists its service account; why says which.
func internalAllowed(sc *scenario, w svcKey, req request) (bool, string) {
	if req.principal == "" {
		return false, "" // internalTraffic admits authenticated mesh peers only
	}
	for _, rule := range sc.rules {
		if !servesWorkload(sc, rule, w) || rule.Spec.InternalTraffic == nil {
			continue
		}
		it := rule.Spec.InternalTraffic
		if it.Allow != nil && *it.Allow {
			return true, "allow"
		}
		if slices.Contains(it.FromNamespaces, namespaceOf(req.principal)) {
			return true, "namespace"
		}
		if slices.ContainsFunc(it.FromServiceAccounts, func(sa string) bool {
			ns, name, _ := strings.Cut(sa, "/")
			return req.principal == "cluster.local/ns/"+ns+"/sa/"+name
		}) {
			return true, "service account"
		}
	}
	return false, ""
}

// backendOf is the name of the Service rule i sends to (all in the APIRule's namespace).
func backendOf(rule *apiv2.APIRule, i int) string {
	if s := rule.Spec.Rules[i].Service; s != nil {
		return s.Name
	}
	return rule.Spec.Service.Name
}

// servesWorkload says whether a rule of the APIRule sends to a Service selecting the workload.
func servesWorkload(sc *scenario, rule *apiv2.APIRule, w svcKey) bool {
	for i := range rule.Spec.Rules {
		svc := sc.services[types.NamespacedName{Namespace: meshNamespace, Name: backendOf(rule, i)}]
		if svc.Namespace == w.namespace && sameSelector(svc.Selector, w.selector) {
			return true
		}
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

// --- expected refusals ---

// expectedRefusals are the reasons APIRule i of the generated set must be refused for,
// sorted: what the generator built into it on purpose, judged from the APIRules alone.
func expectedRefusals(sc *scenario, i int) []string {
	rule := sc.generated[i]
	var out []string
	add := func(r conditions.Reason) {
		if !slices.Contains(out, string(r)) {
			out = append(out, string(r))
		}
	}
	restricted := func(j int) bool { return rule.Spec.Rules[j].IPRestriction != nil || rule.Spec.IPRestriction != nil }
	anyRestricted, ownRestriction := false, false
	for j := range rule.Spec.Rules {
		anyRestricted = anyRestricted || restricted(j)
		ownRestriction = ownRestriction || rule.Spec.Rules[j].IPRestriction != nil
	}
	// A wildcard host cannot be IP-restricted: the gateway policy cannot name it with a port.
	if anyRestricted && slices.ContainsFunc(rule.Spec.Hosts, func(h apiv2.Host) bool { return strings.HasPrefix(string(h), "*") }) {
		add(conditions.ReasonInvalidSpec)
	}
	// Escapes cannot be IP-restricted per rule: the gateway policy matches their hex case;
	// and with per-rule restrictions the gateway refuses every request path with '='.
	for j, r := range rule.Spec.Rules {
		if ownRestriction && (restricted(j) && strings.Contains(r.Path, "%") || strings.Contains(r.Path, "=")) {
			add(conditions.ReasonInvalidPath)
		}
	}
	// internalTraffic never admits the gateway, so naming it would not do what it says.
	if it := rule.Spec.InternalTraffic; it != nil && (slices.Contains(it.FromNamespaces, "istio-system") ||
		slices.Contains(it.FromServiceAccounts, "istio-system/istio-ingressgateway-service-account")) {
		add(conditions.ReasonInvalidSpec)
	}
	// One host, one APIRule: the one already serving it keeps it.
	for _, accepted := range sc.rules {
		if slices.ContainsFunc(rule.Spec.Hosts, func(h apiv2.Host) bool { return slices.Contains(accepted.Spec.Hosts, h) }) {
			add(conditions.ReasonHostConflict)
		}
	}
	for _, older := range sc.generated[:i] {
		if sharesWorkloadDifferently(sc, rule, older) {
			add(conditions.ReasonWorkloadConflict)
		}
		if coversMTLSHost(rule, older) || coversMTLSHost(older, rule) {
			add(conditions.ReasonMTLSHostCovered)
		}
	}
	slices.Sort(out)
	return out
}

// sharesWorkloadDifferently: the APIRules send to a common workload, and either read one
// issuer from different places (Istio merges a workload's token checks, so the younger
// APIRule would change the older one's) or both use ext-authz there and not the same
// providers (istiod runs one provider per workload). As the check does, the rules on all
// shared workloads are compared together, not workload by workload: it may refuse two
// APIRules whose configurations never meet on one workload (fail closed).
func sharesWorkloadDifferently(sc *scenario, mine, theirs *apiv2.APIRule) bool {
	workload := func(rule *apiv2.APIRule, i int) string {
		svc := sc.services[types.NamespacedName{Namespace: meshNamespace, Name: backendOf(rule, i)}]
		return fmt.Sprint(svc.Selector)
	}
	var shared []string
	for i := range mine.Spec.Rules {
		for j := range theirs.Spec.Rules {
			if workload(mine, i) == workload(theirs, j) {
				shared = append(shared, workload(mine, i))
			}
		}
	}
	onShared := func(rule *apiv2.APIRule) (providers []string, authentications []apiv2.JWTAuthentication) {
		for i, r := range rule.Spec.Rules {
			if !slices.Contains(shared, workload(rule, i)) {
				continue
			}
			if r.ExtAuth != nil {
				providers = append(providers, r.ExtAuth.Authorizers...)
			}
			authentications = append(authentications, tokenAuthentications(r)...)
		}
		slices.Sort(providers)
		return slices.Compact(providers), authentications
	}
	p, as := onShared(mine)
	q, bs := onShared(theirs)
	if len(p) > 0 && len(q) > 0 && !slices.Equal(p, q) {
		return true
	}
	for _, a := range as {
		for _, b := range bs {
			if a.Issuer == b.Issuer && !slices.Equal(locationsOf(a), locationsOf(b)) {
				return true
			}
		}
	}
	return false
}

func tokenAuthentications(r apiv2.Rule) []apiv2.JWTAuthentication {
	switch {
	case r.JWT != nil:
		return r.JWT.Authentications
	case r.ExtAuth != nil && r.ExtAuth.Restrictions != nil:
		return r.ExtAuth.Restrictions.Authentications
	}
	return nil
}

// coversMTLSHost: a wildcard host of one APIRule covers an mTLS host of the other. A client
// naming the wildcard's server in TLS and sending the mTLS host as Host would reach the
// wildcard's route without a certificate.
func coversMTLSHost(wildcard, mtls *apiv2.APIRule) bool {
	if mtls.Spec.MTLS == nil || wildcard.Spec.MTLS != nil {
		return false
	}
	for _, w := range wildcard.Spec.Hosts {
		domain, ok := strings.CutPrefix(string(w), "*.")
		for _, h := range mtls.Spec.Hosts {
			if ok && strings.HasSuffix(string(h), "."+domain) {
				return true
			}
		}
	}
	return false
}

// --- inputs as the gatherer reads them ---

var publicGatewayModel = &model.Gateway{
	Namespace: "istio-system", Name: "public", Hosts: []string{publicDomain}, Selector: ingressSelector,
	Servers: []model.GatewayServer{{Port: 443, Hosts: []string{publicDomain}}},
}

var invariantOptions = model.Options{IngressGatewayPrincipal: gatewayPrincipal, IngressGatewayNamespace: "istio-system", IngressGatewaySelector: ingressSelector}

// mtlsSecrets are a valid server certificate for the mTLS host and its CA, made once.
var mtlsSecrets = sync.OnceValue(func() *model.MTLSSecrets {
	ca, err := fixtures.NewCA("partner-ca", now.AddDate(5, 0, 0))
	if err != nil {
		panic(err)
	}
	server, err := ca.NewServerCertificate(now.AddDate(1, 0, 0), mtlsHost)
	if err != nil {
		panic(err)
	}
	return &model.MTLSSecrets{
		Credential: model.SecretFromCore(server.TLSSecret("istio-system", "partner-tls")),
		CA:         model.SecretFromCore(ca.CASecret(meshNamespace, "partner-ca")),
	}
})

// input is what the gatherer reads for the APIRule: its Gateway (the operator's own for an
// mTLS APIRule) or mTLS Secrets, the routes covering mTLS hosts on other servers of the
// ingress gateway, and the other APIRules on its workloads.
func (sc *scenario) input(rule *apiv2.APIRule) model.Input {
	in := model.Input{
		APIRule:  rule,
		Services: sc.services,
		Mesh: &model.MeshConfig{ExtensionProviders: map[string]model.ProviderKind{
			providerName: model.ProviderExtAuthzHTTP, otherProvider: model.ProviderExtAuthzGRPC,
		}, NumTrustedProxies: 1},
		Options: invariantOptions,
		Now:     now,
	}
	if rule.Spec.MTLS == nil {
		in.Gateway = publicGatewayModel
	} else {
		in.MTLS = mtlsSecrets()
	}
	in.Fronting = frontingOf(sc.generated, rule)
	in.Peers = peersOf(sc.generated, sc.services, rule)
	// The gatherer finds the other APIRules' VirtualServices of the same hosts: those of the
	// APIRules accepted so far (the older ones; a refused APIRule has none). A new APIRule
	// serves no host yet.
	for _, other := range sc.rules {
		for _, h := range other.Spec.Hosts {
			if slices.Contains(rule.Spec.Hosts, h) {
				if in.HostClaims == nil {
					in.HostClaims = map[string][]model.HostClaim{}
				}
				owner := model.Owner(other)
				in.HostClaims[string(h)] = append(in.HostClaims[string(h)], model.HostClaim{
					APIRule: &owner, VirtualService: model.RouteKey(owner), Since: other.CreationTimestamp,
				})
			}
		}
	}
	return in
}

// frontingOf is what the gatherer finds: for an mTLS APIRule, the other APIRules' routes on
// the public Gateway whose hosts cover an mTLS host; for a wildcard APIRule, the mTLS hosts
// of the operator's Gateways its wildcards cover. Every generated APIRule counts, as the
// cache holds them all whether they are accepted or not.
func frontingOf(all []*apiv2.APIRule, rule *apiv2.APIRule) []model.Fronting {
	var out []model.Fronting
	for _, other := range all {
		if other == rule {
			continue
		}
		for _, h := range rule.Spec.Hosts {
			for _, o := range other.Spec.Hosts {
				switch {
				case rule.Spec.MTLS != nil && other.Spec.MTLS == nil && o != h && slices.Contains(model.CoveringHosts(string(h)), string(o)):
					out = append(out, model.Fronting{Host: string(h), Pattern: string(o), Route: model.RouteKey(model.Owner(other)), APIRule: other})
				case rule.Spec.MTLS == nil && other.Spec.MTLS != nil && strings.HasPrefix(string(h), "*") && model.GatewayServes(string(h), string(o)):
					out = append(out, model.Fronting{Host: string(o), Pattern: string(h), Route: model.RouteKey(model.Owner(other)), APIRule: other})
				}
			}
		}
	}
	sort.Slice(out, func(a, b int) bool {
		return out[a].Host+" "+out[a].Route.String() < out[b].Host+" "+out[b].Route.String()
	})
	return out
}

// peersOf is what gather.Peers finds: the other APIRules with a backend Service whose
// selector may select Pods of one of this APIRule's backends.
func peersOf(all []*apiv2.APIRule, services map[types.NamespacedName]model.Service, rule *apiv2.APIRule) []model.Peer {
	var out []model.Peer
	for _, other := range all {
		if other == rule {
			continue
		}
		var peer model.Peer
		for _, ref := range model.BackendRefs(rule) {
			mine := services[ref]
			for _, key := range model.BackendRefs(other) {
				if !model.SelectorsOverlap(mine, services[key]) {
					continue
				}
				if w := model.WorkloadKey(mine); !slices.Contains(peer.Workloads, w) {
					peer.Workloads = append(peer.Workloads, w)
				}
				if !slices.Contains(peer.Services, key) {
					peer.Services = append(peer.Services, key)
				}
			}
		}
		if len(peer.Services) > 0 {
			peer.APIRule = other
			out = append(out, peer)
		}
	}
	sort.Slice(out, func(a, b int) bool {
		return model.Owner(out[a].APIRule).String() < model.Owner(out[b].APIRule).String()
	})
	return out
}

// --- policy shape ---

// checkPolicyShape rejects policy rules that are empty or would match everything: every
// ALLOW rule names its callers, every CUSTOM rule names paths, and only the internal-traffic
// rule (which names callers other than the gateway) has no operation.
func checkPolicyShape(objects translate.Objects) string {
	for _, ap := range objects.AuthorizationPolicies {
		if len(ap.Spec.Rules) == 0 {
			return fmt.Sprintf("policy %s has no rules", ap.Name)
		}
		for _, r := range ap.Spec.Rules {
			for _, to := range r.To {
				if to.Operation != nil && ap.Spec.Action == securityv1.AuthorizationPolicy_DENY && len(to.Operation.Hosts) > 0 {
					continue // an APIRule-wide restriction covers every path and method of its hosts
				}
				if to.Operation == nil || len(to.Operation.Paths) == 0 || len(to.Operation.Methods) == 0 || len(to.Operation.Hosts) == 0 {
					return fmt.Sprintf("policy %s has an operation without paths, methods or hosts", ap.Name)
				}
			}
			if ap.Spec.Action == securityv1.AuthorizationPolicy_CUSTOM {
				if len(r.To) > 0 || len(r.From) > 0 || len(r.When) != 1 || !boundToRoutes(r) {
					return fmt.Sprintf("CUSTOM policy %s has a rule not bound to routes, or with conditions Istio rejects", ap.Name)
				}
				continue
			}
			if ap.Spec.Action == securityv1.AuthorizationPolicy_DENY {
				if len(r.To) == 0 || len(r.From) != 1 || len(r.From[0].Source.RemoteIpBlocks)+len(r.From[0].Source.NotRemoteIpBlocks) == 0 {
					return fmt.Sprintf("DENY policy %s has a rule without hosts or without addresses", ap.Name)
				}
				continue
			}
			if len(r.From) == 0 {
				return fmt.Sprintf("ALLOW policy %s has a rule that admits any caller", ap.Name)
			}
			for _, f := range r.From {
				s := f.Source
				if len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces) == 0 {
					return fmt.Sprintf("ALLOW policy %s has a source without a caller identity", ap.Name)
				}
			}
			if !isInternalRule(r) && !boundToRoutes(r) {
				return fmt.Sprintf("ALLOW policy %s has a gateway rule not bound to a route", ap.Name)
			}
			if isInternalRule(r) && !slices.ContainsFunc(r.From, func(f *securityv1.Rule_From) bool {
				return len(f.Source.Principals) > 0 && slices.Contains(f.Source.NotPrincipals, gatewayPrincipal)
			}) {
				return fmt.Sprintf("ALLOW policy %s has an internal-traffic rule that admits callers without a principal or the gateway", ap.Name)
			}
		}
	}
	return ""
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

// generateScenario makes up to four APIRules in a random order of age: an exact host, often
// with another exact host, a wildcard over both and an mTLS host, over three Services of
// which two select the same workload.
func generateScenario(rng *rand.Rand) *scenario {
	sc := &scenario{services: map[types.NamespacedName]model.Service{}}
	for name, app := range map[string]string{"a": "a", "a-alias": "a", "b": "b"} {
		sc.services[types.NamespacedName{Namespace: meshNamespace, Name: name}] = model.Service{
			Namespace: meshNamespace, Name: name, Selector: map[string]string{"app": app}, Ports: []int32{8000},
		}
	}
	sc.generated = append(sc.generated, generateAPIRule(rng, "first", "app.example.com"))
	if rng.IntN(10) < 3 {
		sc.generated = append(sc.generated, generateAPIRule(rng, "second", "other.example.com"))
	}
	if rng.IntN(10) < 3 {
		sc.generated = append(sc.generated, generateAPIRule(rng, "wild", publicDomain))
	}
	if rng.IntN(10) < 3 {
		sc.generated = append(sc.generated, generateAPIRule(rng, "partner", mtlsHost))
	}
	if rng.IntN(10) < 1 {
		// The mTLS host once more, on the public Gateway without client certificates: the
		// younger of the two must be refused, or the host would be served without one.
		public := generateAPIRule(rng, "public-partner", mtlsHost)
		gateway := apiv2.GatewayReference(publicGateway)
		public.Spec.MTLS, public.Spec.Gateway = nil, &gateway
		sc.generated = append(sc.generated, public)
	}
	rng.Shuffle(len(sc.generated), func(i, j int) { sc.generated[i], sc.generated[j] = sc.generated[j], sc.generated[i] })
	for i, r := range sc.generated {
		r.CreationTimestamp = metav1.NewTime(now.Add(time.Duration(i) * time.Minute))
	}
	return sc
}

func generateAPIRule(rng *rand.Rand, name, host string) *apiv2.APIRule {
	gateway := apiv2.GatewayReference(publicGateway)
	rule := &apiv2.APIRule{}
	rule.Namespace, rule.Name = meshNamespace, name
	rule.Spec = apiv2.APIRuleSpec{
		Hosts:   []apiv2.Host{apiv2.Host(host)},
		Gateway: &gateway,
		Service: &apiv2.Service{Name: []string{"a", "a", "a", "a", "a-alias", "b"}[rng.IntN(6)], Port: 8000},
	}
	if host == mtlsHost {
		rule.Spec.Gateway = nil
		rule.Spec.MTLS = &apiv2.MTLS{CredentialName: "partner-tls", CASecretRef: apiv2.SecretKeyReference{Name: "partner-ca"}}
		switch rng.IntN(5) {
		case 0:
			rule.Spec.MTLS.AllowedSubjects = []string{"CN=partner-a,O=Acme"}
		case 1:
			rule.Spec.MTLS.AllowedSANs = []string{"spiffe://partner/a"}
		case 2:
			no := false
			rule.Spec.MTLS.ForwardClientCert = &no
		}
	}
	rule.Spec.InternalTraffic = generateInternalTraffic(rng)
	// A wildcard APIRule is IP-restricted rarely: the checks refuse it.
	restrictions := 3
	if strings.HasPrefix(host, "*") {
		restrictions = 1
	}
	if rng.IntN(10) < restrictions {
		rule.Spec.IPRestriction = generateIPRestriction(rng)
	}
	// Each APIRule uses one provider and one token location for issuerA throughout (the
	// checks refuse an APIRule that configures an issuer twice differently); across APIRules
	// on one workload they may differ, which the checks must refuse.
	provider := providerName
	if rng.IntN(4) == 0 {
		provider = otherProvider
	}
	location := rng.IntN(6)
	for i, n := 0, 1+rng.IntN(6); i < n; i++ {
		r := generateRule(rng, provider, location)
		if rng.IntN(10) < restrictions-1 {
			r.IPRestriction = generateIPRestriction(rng)
		}
		rule.Spec.Rules = append(rule.Spec.Rules, r)
	}
	return rule
}

// generateInternalTraffic: none mostly; allow; lists of namespaces and service accounts, some
// naming the gateway's (refused); rarely allow together with lists (refused by the schema).
func generateInternalTraffic(rng *rand.Rand) *apiv2.InternalTraffic {
	pick := func(from []string) []string {
		var out []string
		for _, s := range from {
			if rng.IntN(2) == 0 {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			out = from[:1]
		}
		return out
	}
	yes := true
	switch k := rng.IntN(40); {
	case k < 4:
		return &apiv2.InternalTraffic{Allow: &yes}
	case k < 8:
		return &apiv2.InternalTraffic{FromNamespaces: pick([]string{"batch", "jobs", "other"})}
	case k < 11:
		return &apiv2.InternalTraffic{FromServiceAccounts: pick([]string{"batch/job", "other/client", "jobs/x"})}
	case k < 13:
		return &apiv2.InternalTraffic{FromNamespaces: pick([]string{"jobs", "other"}), FromServiceAccounts: pick([]string{"batch/job"})}
	case k < 14:
		return &apiv2.InternalTraffic{FromNamespaces: pick([]string{"istio-system", "batch"})}
	case k < 15:
		return &apiv2.InternalTraffic{FromServiceAccounts: pick([]string{"istio-system/istio-ingressgateway-service-account", "batch/job"})}
	case k < 16:
		return &apiv2.InternalTraffic{Allow: &yes, FromNamespaces: pick([]string{"batch"})}
	}
	return nil
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

func generateRule(rng *rand.Rand, provider string, location int) apiv2.Rule {
	r := apiv2.Rule{Path: generatePath(rng)}
	for _, m := range []apiv2.HTTPMethod{"GET", "POST", "PUT"} {
		if rng.IntN(2) == 0 {
			r.Methods = append(r.Methods, m)
		}
	}
	if len(r.Methods) == 0 {
		r.Methods = []apiv2.HTTPMethod{"GET"}
	}
	switch k := rng.IntN(10); {
	case k < 2:
		r.Service = &apiv2.Service{Name: "b", Port: 8000}
	case k < 3:
		r.Service = &apiv2.Service{Name: "a-alias", Port: 8000}
	}
	switch k := rng.IntN(20); {
	case k < 8:
		yes := true
		r.NoAuth = &yes
	case k < 15:
		r.JWT = generateJWT(rng, location)
	default:
		r.ExtAuth = &apiv2.ExtAuth{Authorizers: []string{provider}}
		if rng.IntN(2) == 0 {
			r.ExtAuth.Restrictions = generateJWT(rng, location)
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
		switch k := rng.IntN(12); {
		case k < 3:
			segments = append(segments, "{*}")
		case k < 4 && i == n-1:
			segments = append(segments, "{**}")
		case k < 5:
			// A non-ASCII segment, which Envoy keeps escaped: requests spell it in both cases.
			segments = append(segments, "caf%C3%A9")
		default:
			segments = append(segments, []string{"a", "b", "c", "v1.0"}[rng.IntN(4)])
		}
	}
	return "/" + strings.Join(segments, "/")
}

// generateJWT: location 0 reads issuerA from the session cookie, 1 from an explicit
// Authorization Bearer header (the same as the default), otherwise the default.
func generateJWT(rng *rand.Rand, location int) *apiv2.JWTConfig {
	uriA, uriB, uriNested := "https://a.example.com/jwks", "https://b.example.com/jwks", "https://a.example.com/tenant/jwks"
	a := apiv2.JWTAuthentication{Issuer: issuerA, JWKSURI: &uriA}
	switch location {
	case 0:
		a.FromCookies = []string{tokenCookie}
	case 1:
		a.FromHeaders = []apiv2.JWTHeader{{Name: "Authorization", Prefix: "Bearer "}}
	}
	cfg := &apiv2.JWTConfig{}
	switch rng.IntN(4) {
	case 0:
		cfg.Authentications = []apiv2.JWTAuthentication{a}
	case 1:
		cfg.Authentications = []apiv2.JWTAuthentication{{Issuer: issuerB, JWKSURI: &uriB}}
	case 2:
		cfg.Authentications = []apiv2.JWTAuthentication{{Issuer: issuerNested, JWKSURI: &uriNested}}
	default:
		cfg.Authentications = []apiv2.JWTAuthentication{{Issuer: issuerB, JWKSURI: &uriB}, a}
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

func sampleRequest(rng *rand.Rand, sc *scenario) request {
	req := request{
		method: []string{"GET", "POST", "PUT", "DELETE"}[rng.IntN(4)],

		principal:      gatewayPrincipal,
		extAuthzAllows: rng.IntN(2) == 0,
		clientCert:     rng.IntN(2) == 0,
		certSubject:    []string{"CN=partner-a,O=Acme", "CN=partner-b,O=Acme"}[rng.IntN(2)],
		certSAN:        []string{"spiffe://partner/a", "spiffe://partner/b"}[rng.IntN(2)],
		tokenIn:        []tokenLocation{tokenInHeader, tokenInHeader, tokenInCookie, tokenInQuery}[rng.IntN(4)],
		client: netip.MustParseAddr([]string{"203.0.113.10", "203.0.113.200", "10.1.2.3", "198.51.100.7", "192.0.2.1",
			"192.0.2.2", "2001:db8::1", "2001:db8:1::1", "2001:db9::1"}[rng.IntN(9)]),
	}
	req.host = sampleHost(rng, sc)
	var methods []apiv2.HTTPMethod
	req.sentPath, methods = samplePath(rng, sc, hostOwner(sc, req.host))
	if len(methods) > 0 && rng.IntN(4) > 0 {
		req.method = string(methods[rng.IntN(len(methods))])
	}
	// Mostly the server name a client derives from the host; else another one.
	req.sni = strings.TrimSuffix(canonicalHost(req.host), ".")
	if rng.IntN(5) == 0 {
		req.sni = []string{"www.example.com", mtlsHost, "app.example.com", "", "example.com", "a.b.example.com"}[rng.IntN(6)]
	}
	switch k := rng.IntN(12); {
	case k < 1:
		req.principal = []string{"cluster.local/ns/batch/sa/job", "cluster.local/ns/batch/sa/other"}[rng.IntN(2)]
	case k < 2:
		req.principal = []string{"cluster.local/ns/other/sa/client", "cluster.local/ns/jobs/sa/x", "cluster.local/ns/istio-system/sa/other"}[rng.IntN(3)]
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

// sampleHost: mostly a name an accepted APIRule serves, else one of the APIRules' hosts,
// names only the wildcard covers (at one and two levels), the bare domain and an unknown
// name; in upper case, with ports, with a trailing dot.
func sampleHost(rng *rand.Rand, sc *scenario) string {
	host := []string{"app.example.com", "other.example.com", mtlsHost, "x.example.com", "a.b.example.com", "example.com", "elsewhere.org"}[rng.IntN(7)]
	if len(sc.rules) > 0 && rng.IntN(3) > 0 {
		host = string(sc.rules[rng.IntN(len(sc.rules))].Spec.Hosts[0])
		if host == publicDomain {
			host = []string{"x.example.com", "a.b.example.com", "www.example.com"}[rng.IntN(3)]
		}
	}
	switch rng.IntN(12) {
	case 0:
		host = strings.ToUpper(host[:1]) + host[1:]
	case 1:
		host = strings.ToUpper(host)
	case 2:
		host += ":443"
	case 3:
		host += ":80"
	case 4:
		host += ":8443"
	case 5:
		host += "."
	}
	return host
}

// requestSegments are the segments sampled paths are made of: literals of the rule paths,
// the non-ASCII segment in either hex case and raw, an escaped unreserved character, an
// escaped dot, and characters outside the template class.
var requestSegments = []string{"a", "b", "c", "x", "v1.0", "v1x0", "caf%C3%A9", "caf%c3%a9", "caf\xc3\xa9", "%61", "v1%2e0", "x*", "[x]", "k=v", "a;x", "a%3Bx", "%2e%2e;"}

// samplePath is mostly a spelling of a rule's path (its operators filled in, its escapes in
// another case), of the APIRule that owns the host when there is one, else made of random
// segments; then sometimes spelled with doubled or encoded slashes, dot segments or
// backslashes, a query or a fragment. It also returns the methods of the rule it spelled.
func samplePath(rng *rand.Rand, sc *scenario, owner int) (string, []apiv2.HTTPMethod) {
	rule := sc.generated[rng.IntN(len(sc.generated))]
	if owner >= 0 && rng.IntN(4) > 0 {
		rule = sc.rules[owner]
	}
	var segments []string
	var methods []apiv2.HTTPMethod
	if rng.IntN(3) > 0 {
		r := rule.Spec.Rules[rng.IntN(len(rule.Spec.Rules))]
		methods = r.Methods
		template := r.Path
		for _, seg := range strings.Split(template, "/")[1:] {
			switch seg {
			case "*", model.AnyRest:
				for i, n := 0, rng.IntN(3); i < n; i++ {
					segments = append(segments, requestSegments[rng.IntN(len(requestSegments))])
				}
			case model.OneSegment:
				segments = append(segments, requestSegments[rng.IntN(len(requestSegments))])
			case "caf%C3%A9":
				segments = append(segments, []string{"caf%C3%A9", "caf%c3%a9", "caf%C3%a9", "caf\xc3\xa9"}[rng.IntN(4)])
			default:
				segments = append(segments, seg)
			}
		}
	} else {
		for i, n := 0, rng.IntN(5); i < n; i++ {
			segments = append(segments, requestSegments[rng.IntN(len(requestSegments))])
		}
	}
	path := "/" + strings.Join(segments, "/")
	if len(segments) > 0 && rng.IntN(8) == 0 {
		path += "/"
	}
	// Spellings a backend may read as another path, and dot segments the gateway resolves.
	switch k := rng.IntN(30); {
	case k < 1:
		path = "/" + path
	case k < 2:
		if i := strings.LastIndex(path, "/"); i > 0 {
			path = path[:i] + []string{"%2f", "%2F", "%5c", "%5C"}[rng.IntN(4)] + path[i+1:]
		}
	case k < 6:
		if i := strings.LastIndex(path, "/"); i >= 0 {
			path = path[:i] + []string{"/.", "/%2e", "/x/..", "/x/%2E%2e", "/./x/.%2e", "/../..", "\\x\\.."}[rng.IntN(7)] + path[i:]
		}
	case k < 7:
		path = strings.ReplaceAll(path, "/", "\\")
	}
	switch k := rng.IntN(12); {
	case k < 1:
		path += "?x=1"
	case k < 2:
		path += "?next=/../admin//x"
	case k < 3:
		path += "#frag/../x"
	}
	return path, methods
}

// --- helpers ---

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

func sortedKeys(m map[types.NamespacedName]model.Service) []types.NamespacedName {
	keys := make([]types.NamespacedName, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	return keys
}

func describe(rule *apiv2.APIRule) string {
	var b strings.Builder
	fmt.Fprintf(&b, "APIRule %s hosts %v service %s mtls %+v internalTraffic %+v ipRestriction %+v\n", rule.Name, rule.Spec.Hosts,
		rule.Spec.Service.Name, rule.Spec.MTLS, rule.Spec.InternalTraffic, rule.Spec.IPRestriction)
	for i, r := range rule.Spec.Rules {
		fmt.Fprintf(&b, "  rule %d: %s %v -> %s %s", i, r.Path, r.Methods, backendOf(rule, i), r.Strategy())
		if r.ExtAuth != nil {
			fmt.Fprintf(&b, " %v", r.ExtAuth.Authorizers)
		}
		for _, a := range tokenAuthentications(r) {
			fmt.Fprintf(&b, " %s(headers %v cookies %v)", a.Issuer, a.FromHeaders, a.FromCookies)
		}
		if r.IPRestriction != nil {
			fmt.Fprintf(&b, " ipRestriction %+v", r.IPRestriction)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func describeAll(sc *scenario) string {
	var b strings.Builder
	b.WriteString("generated, oldest first:\n")
	for _, r := range sc.generated {
		b.WriteString(describe(r))
	}
	names := make([]string, len(sc.rules))
	for i, r := range sc.rules {
		names[i] = r.Name
	}
	fmt.Fprintf(&b, "accepted: %v\n", names)
	return b.String()
}

// translateIgnoringShadowing is checkAndTranslate for rule sets in which a rule may be
// shadowed: the invariants hold for those too (the route and the policies agree on who wins),
// and the generator does not avoid them. Any other error rejects the APIRule.
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
