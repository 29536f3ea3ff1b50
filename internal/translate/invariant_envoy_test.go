package translate_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"

	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// The model of what Istio's ingress gateway and sidecars do with the generated objects. It
// reads only the objects (never the translator's helpers) and follows the Envoy and Istio
// sources named at each fact.

// --- the connection manager before routing ---

// gatewayPath is the path the gateway routes by and its policies match, for the path a client
// sent; ok is false when Envoy refuses the request before routing.
//
//   - A fragment is stripped: Istio's bootstrap (pkg/bootstrap/config.go) sets the runtime
//     flag envoy.reloadable_features.http_reject_path_with_fragment to false, so Envoy cuts
//     the path at the first '#' instead of answering 400.
//   - The query is not normalized (PathTransformer::rfcNormalize in
//     source/common/http/path_utility.cc canonicalizes only what precedes '?'), and route
//     and policy path matchers look at the path without it (PathUtil::removeQueryAndFragment,
//     same file; RE2::FullMatch over it in the uri_template matcher; Istio's url_path
//     policy matchers), so the query plays no part in either decision.
//   - Istio's default path normalization (BASE) is normalize_path: true, merge_slashes:
//     false and escaped slashes kept unchanged: canonicalPath below.
func gatewayPath(sent string) (string, bool) {
	if i := strings.IndexByte(sent, '#'); i >= 0 {
		sent = sent[:i]
	}
	if i := strings.IndexByte(sent, '?'); i >= 0 {
		sent = sent[:i]
	}
	return canonicalPath(sent)
}

// canonicalPath is Chromium's path canonicalization as Envoy carries it
// (source/common/chromium_url/url_canon_path.cc, DoPartialPath and its kPathCharLookup table):
//
//   - a backslash becomes a slash;
//   - '.' and its escape %2e or %2E (IsDot in url_canon_internal.h, either hex case) after a
//     slash are dot segments: "." followed by a slash or the end is dropped, ".." backs up
//     to the previous slash (never above the first one); elsewhere they are a plain '.';
//   - an escape of an unreserved character (letters, digits, '-', '_', '~') is decoded;
//     every other valid escape is copied exactly as sent, hex case included;
//   - a '%' that starts no valid escape is copied (the generator never sends nested escapes
//     such as %%30, whose special handling is left out here);
//   - the characters the table marks ESCAPE (controls, space, '"', '<', '>', '^', '`', '{',
//     '|', '}', DEL and every byte >= 0x80) are written as %XX with upper-case hex; NUL fails
//     the request;
//   - slashes are not merged.
func canonicalPath(p string) (string, bool) {
	out := make([]byte, 0, len(p)+1)
	if p == "" || (p[0] != '/' && p[0] != '\\') {
		out = append(out, '/')
	}
	isSlash := func(c byte) bool { return c == '/' || c == '\\' }
	dotLen := func(i int) int {
		switch {
		case p[i] == '.':
			return 1
		case p[i] == '%' && i+3 <= len(p) && p[i+1] == '2' && (p[i+2] == 'e' || p[i+2] == 'E'):
			return 3
		}
		return 0
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if dot := dotLen(i); dot > 0 {
			after := i + dot
			switch {
			case len(out) == 0 || out[len(out)-1] != '/':
				out = append(out, '.')
				i = after - 1
			case after == len(p):
				i = after - 1 // "." at the end
			case isSlash(p[after]):
				i = after // "./": the slash is consumed too
			default:
				if second := dotLen(after); second > 0 && (after+second == len(p) || isSlash(p[after+second])) {
					// "..": back up to the previous slash, keeping the first.
					if j := strings.LastIndexByte(string(out[:len(out)-1]), '/'); j >= 0 {
						out = out[:j+1]
					}
					i = after + second - 1
					if after+second < len(p) {
						i++ // and its slash
					}
				} else {
					out = append(out, '.')
					i = after - 1
				}
			}
			continue
		}
		switch {
		case c == '\\':
			out = append(out, '/')
		case c == '%':
			if i+2 < len(p) && isHexDigit(p[i+1]) && isHexDigit(p[i+2]) {
				if b := hexByte(p[i+1], p[i+2]); isUnreservedByte(b) {
					out = append(out, b)
				} else {
					out = append(out, p[i:i+3]...)
				}
				i += 2
			} else {
				out = append(out, '%')
			}
		case c == 0:
			return "", false
		case c < 0x20 || c >= 0x7f || strings.IndexByte(" \"<>^`{|}", c) >= 0:
			out = append(out, fmt.Sprintf("%%%02X", c)...)
		default:
			out = append(out, c)
		}
	}
	return string(out), true
}

func isHexDigit(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func hexByte(hi, lo byte) byte {
	v := func(c byte) byte {
		switch {
		case c >= 'a':
			return c - 'a' + 10
		case c >= 'A':
			return c - 'A' + 10
		}
		return c - '0'
	}
	return v(hi)<<4 | v(lo)
}

func isUnreservedByte(b byte) bool {
	return ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9') || b == '-' || b == '_' || b == '~'
}

// --- TLS server and virtual host ---

// gatewayServer is one HTTPS server on port 443 of the ingress gateway.
type gatewayServer struct {
	gateway string // namespace/name of its Gateway
	hosts   []string
	mutual  bool
	// sans are the URI SANs a client certificate must have (the server's subjectAltNames).
	sans []string
}

// ingressServers are the public Gateway's server and the servers of the operator's Gateways
// the outputs hold.
func ingressServers(outputs []pipeline.Result) []gatewayServer {
	servers := []gatewayServer{{gateway: publicGateway, hosts: []string{publicDomain}}}
	for _, out := range outputs {
		for _, gw := range out.Objects.Gateways {
			for _, s := range gw.Spec.Servers {
				if s.GetPort().GetNumber() != 443 {
					continue
				}
				servers = append(servers, gatewayServer{
					gateway: gw.Namespace + "/" + gw.Name,
					hosts:   s.Hosts,
					mutual:  s.GetTls().GetMode() == networkingv1.ServerTLSSettings_MUTUAL,
					sans:    s.GetTls().GetSubjectAltNames(),
				})
			}
		}
	}
	return servers
}

// serverFor picks the server by the TLS server name, as Envoy picks the filter chain
// (FilterChainManagerImpl::findFilterChainForServerName in
// source/common/listener/filter_chain_manager_impl.cc): an exact name first, then a wildcard
// over each parent domain, the longest first ("a.b.example.com" tries *.b.example.com, then
// *.example.com, then *.com). Istio writes each HTTPS server's hosts as its filter chain's
// server names, and none of these servers has a catch-all chain, so an unknown or missing
// name gets no server at all.
func serverFor(servers []gatewayServer, sni string) (gatewayServer, bool) {
	for _, s := range servers {
		if slices.Contains(s.hosts, sni) {
			return s, true
		}
	}
	for pos := strings.IndexByte(sni[min(1, len(sni)):], '.') + 1; pos > 0 && pos < len(sni)-1; {
		for _, s := range servers {
			if slices.Contains(s.hosts, "*"+sni[pos:]) {
				return s, true
			}
		}
		next := strings.IndexByte(sni[pos+1:], '.')
		if next < 0 {
			break
		}
		pos += next + 1
	}
	return gatewayServer{}, false
}

// virtualHostOf returns the output index and VirtualService whose virtual host the server's
// route configuration picks for the Host header; -1 for none. Istio builds one route
// configuration per HTTPS server from the VirtualServices bound to the server's Gateway, with
// those of their hosts the server's hosts cover. Envoy picks the domain
// (RouteMatcher::findVirtualHost in source/common/router/config_impl.cc): the port is dropped
// (Istio sets ignore_port_in_host_matching), the host is lower-cased, an exact domain wins,
// then the longest suffix wildcard that is shorter than the host ("*.example.com" matches
// any non-empty prefix, dots included, but not "example.com"). A trailing dot is not
// stripped (strip_trailing_host_dot is off), so "app.example.com." matches neither
// "app.example.com" nor "*.example.com".
func virtualHostOf(outputs []pipeline.Result, server gatewayServer, hostHeader string) (int, *networkingclientv1.VirtualService) {
	host := strings.ToLower(dropPort(hostHeader))
	best, bestLen := -1, -1
	for i, out := range outputs {
		for _, vs := range out.Objects.VirtualServices {
			if !slices.Contains(vs.Spec.Gateways, server.gateway) {
				continue
			}
			for _, domain := range vs.Spec.Hosts {
				if !slices.ContainsFunc(server.hosts, func(h string) bool { return serverHostCovers(h, domain) }) {
					continue
				}
				if domain == host {
					return i, vs
				}
				if suffix, ok := strings.CutPrefix(domain, "*"); ok && len(suffix) < len(host) && strings.HasSuffix(host, suffix) && len(suffix) > bestLen {
					best, bestLen = i, len(suffix)
				}
			}
		}
	}
	if best < 0 {
		return -1, nil
	}
	return best, outputs[best].Objects.VirtualServices[0]
}

// serverHostCovers is Istio's match of a VirtualService host against a server host.
func serverHostCovers(server, host string) bool {
	return server == host || (strings.HasPrefix(server, "*.") && strings.HasSuffix(host, server[1:]))
}

// dropPort removes a ":port" from a Host header, as Envoy's HeaderUtility::getPortStart
// finds it (the last ':' followed by digits only).
func dropPort(host string) string {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && i < len(host)-1 && strings.Trim(host[i+1:], "0123456789") == "" {
		return host[:i]
	}
	return host
}

// --- routes ---

// handshakeRefused: a MUTUAL server refuses a client without a certificate of its CA, or
// whose certificate lacks every SAN the server requires.
func handshakeRefused(server gatewayServer, req request) bool {
	return server.mutual && (!req.clientCert || (len(server.sans) > 0 && !slices.Contains(server.sans, req.certSAN)))
}

// routeOf returns the rule index (from the route name), destination host and the route's
// header operations of the route the VirtualService picks for the gateway path; -1 for none,
// refused for a direct 400.
func routeOf(vs *networkingclientv1.VirtualService, path, method string) (int, string, *networkingv1.Headers_HeaderOperations) {
	for _, route := range vs.Spec.Http {
		for _, m := range route.Match {
			if stringMatches(m.Uri, path) && (m.Method == nil || stringMatches(m.Method, method)) {
				if route.DirectResponse != nil {
					return refused, "", nil
				}
				var index int
				_, _ = fmt.Sscanf(route.Name, "rule-%d", &index)
				return index, route.Route[0].Destination.Host, route.Headers.Request
			}
		}
	}
	return -1, "", nil
}

// forwardedHeaders are the headers the sidecar sees of a request through the gateway: what the
// client sent, with the route's headers set (Envoy substitutes the client certificate's
// fields; a variable without a value leaves the header out) and its removals applied.
func forwardedHeaders(sent map[string]string, ops *networkingv1.Headers_HeaderOperations, req request) map[string]string {
	out := map[string]string{}
	for k, v := range sent {
		out[k] = v
	}
	for k, v := range ops.GetSet() {
		switch v {
		case "%DOWNSTREAM_PEER_SUBJECT%", "%DOWNSTREAM_PEER_URI_SAN%", "%DOWNSTREAM_PEER_ISSUER%", "%DOWNSTREAM_PEER_FINGERPRINT_256%":
			v = map[string]string{
				"%DOWNSTREAM_PEER_SUBJECT%": req.certSubject, "%DOWNSTREAM_PEER_URI_SAN%": req.certSAN,
				"%DOWNSTREAM_PEER_ISSUER%": "CN=partner-ca", "%DOWNSTREAM_PEER_FINGERPRINT_256%": "0f1e2d",
			}[v]
			if !req.clientCert {
				v = ""
			}
		}
		if v == "" {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	for _, k := range ops.GetRemove() {
		delete(out, k)
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

// --- policies ---

// envoyTemplateChars are the characters the operators of an Envoy URI template match: the
// pchar class kLiteral of source/extensions/path/uri_template_lib/uri_template_internal.cc
// (unreserved, '%', sub-delims but '*', ':', '@', and '=') and, since Envoy 1.35, '*' too
// (runtime guard envoy.reloadable_features.uri_template_match_on_asterisk, on by default;
// Istio does not turn it off). '[' and ']' are not in it.
const envoyTemplateChars = templateChars + "*"

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

// decideAt evaluates the policies of every APIRule that select the workload: CUSTOM first
// (the authorizer is asked when a CUSTOM rule matches), then ALLOW (when any ALLOW policy
// selects the workload, a request needs a matching rule). It also says whether the external
// authorizer denied the request.
func decideAt(outputs []pipeline.Result, svc svcKey, req request) (allowed, deniedByAuthorizer bool) {
	var allows, customs []*securityclientv1.AuthorizationPolicy
	var jwtRules []*securityv1.JWTRule
	for _, out := range outputs {
		for _, ap := range out.Objects.AuthorizationPolicies {
			if !sameSelector(ap.Spec.Selector.GetMatchLabels(), svc.selector) || ap.Namespace != svc.namespace ||
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
			if sameSelector(ra.Spec.Selector.GetMatchLabels(), svc.selector) && ra.Namespace == svc.namespace {
				jwtRules = append(jwtRules, ra.Spec.JwtRules...)
			}
		}
	}
	// Istio merges every RequestAuthentication of the workload into one jwt_authn filter: a
	// token yields a request principal when any rule of its issuer reads it where it was
	// sent. A rule that names no location at all gets Envoy's default: the Authorization
	// header with the Bearer prefix and the access_token query parameter.
	requestPrincipal := ""
	if req.issuer != "" && slices.ContainsFunc(jwtRules, func(r *securityv1.JWTRule) bool { return r.Issuer == req.issuer && envoyReads(r, req.tokenIn) }) {
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

func envoyReads(r *securityv1.JWTRule, in tokenLocation) bool {
	if len(r.FromHeaders)+len(r.FromParams)+len(r.FromCookies) == 0 {
		return in == tokenInHeader || in == tokenInQuery
	}
	switch in {
	case tokenInHeader:
		return slices.ContainsFunc(r.FromHeaders, func(h *securityv1.JWTHeader) bool {
			return strings.EqualFold(h.Name, "Authorization") && h.Prefix == "Bearer "
		})
	case tokenInCookie:
		return slices.Contains(r.FromCookies, tokenCookie)
	case tokenInQuery:
		return slices.Contains(r.FromParams, "access_token")
	}
	return false
}

func hasAllowPolicy(outputs []pipeline.Result, svc svcKey) bool {
	for _, out := range outputs {
		for _, ap := range out.Objects.AuthorizationPolicies {
			if ap.Spec.Action == securityv1.AuthorizationPolicy_ALLOW && ap.Namespace == svc.namespace &&
				sameSelector(ap.Spec.Selector.GetMatchLabels(), svc.selector) {
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
	if len(op.Paths) > 0 && !slices.ContainsFunc(op.Paths, func(p string) bool { return istioPathMatches(p, req.path) }) {
		return false
	}
	return !slices.ContainsFunc(op.NotPaths, func(p string) bool { return istioPathMatches(p, req.path) })
}

// istioPathMatches is Istio's policy path match against the normalized path without query
// (Istio's authz matcher emits url_path matchers, which Envoy applies without the query).
// A path with {*} or {**} becomes an Envoy uri_template (Istio's authz matcher replaces them
// by * and **), which matches literals exactly and operators over envoyTemplateChars;
// otherwise "*" is presence, "x*" a prefix, "*x" a suffix, else exact.
func istioPathMatches(pattern, path string) bool {
	switch {
	case strings.Contains(pattern, model.OneSegment) || strings.Contains(pattern, model.AnyRest):
		return templateMatches(pattern, path, false)
	case pattern == "*":
		return path != ""
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == path
}

// hostMatches is Istio's policy host match (HostMatcher in Istio's authz matcher package: a
// header matcher on :authority with ignore_case): exact, "prefix*" or "*suffix",
// case-insensitive, against the whole Host header, port included.
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

// The model's facts about Envoy, on examples: the invariant test is only as good as them.
func TestEnvoyModelPathNormalization(t *testing.T) {
	for sent, want := range map[string]string{
		"/a/./b":            "/a/b",
		"/a/%2e/b":          "/a/b",
		"/a/x/%2E%2e/b":     "/a/b",
		"/a/x/.%2e":         "/a/",
		"/../../a":          "/a",
		"/a/..b":            "/a/..b",
		"/v1%2e0":           "/v1.0",
		"/%61/%7e":          "/a/~",
		"/caf%c3%a9":        "/caf%c3%a9",
		"/caf%C3%a9":        "/caf%C3%a9",
		"/caf\xc3\xa9":      "/caf%C3%A9",
		"/a b\"<>^`{|}":     "/a%20b%22%3C%3E%5E%60%7B%7C%7D",
		`\a\b`:              "/a/b",
		"/a//b":             "/a//b",
		"/a/%2F/%5c":        "/a/%2F/%5c",
		"/a/.//b":           "/a//b",
		"/x*/[y]":           "/x*/[y]",
		"/a?x=/../b":        "/a",
		"/a#/../b":          "/a",
		"/a/%2e%2e?q#f":     "/",
		"":                  "/",
		"/%zz":              "/%zz",
		"/!$&'()+,;=:@-._~": "/!$&'()+,;=:@-._~",
	} {
		if got, ok := gatewayPath(sent); !ok || got != want {
			t.Errorf("gatewayPath(%q) = %q, %v; want %q", sent, got, ok, want)
		}
	}
	if _, ok := gatewayPath("/a\x00"); ok {
		t.Errorf("a NUL in the path must fail the request")
	}
}

func TestEnvoyModelServerAndVirtualHost(t *testing.T) {
	servers := []gatewayServer{
		{gateway: publicGateway, hosts: []string{publicDomain}},
		{gateway: "istio-system/mtls", hosts: []string{mtlsHost}, mutual: true},
		{gateway: "istio-system/deep", hosts: []string{"*.b.example.com"}},
	}
	for sni, want := range map[string]string{
		mtlsHost: "istio-system/mtls", "www.example.com": publicGateway, "a.b.example.com": "istio-system/deep",
		"x.a.b.example.com": "istio-system/deep", "x.y.example.com": publicGateway, "example.com": "", "": "", "other.org": "",
	} {
		got, ok := serverFor(servers, sni)
		if (want == "") == ok || (ok && got.gateway != want) {
			t.Errorf("serverFor(%q) = %s, %v; want %q", sni, got.gateway, ok, want)
		}
	}

	vs := func(gateway string, hosts ...string) pipeline.Result {
		return pipeline.Result{Objects: translate.Objects{VirtualServices: []*networkingclientv1.VirtualService{{
			Spec: networkingv1.VirtualService{Hosts: hosts, Gateways: []string{gateway}},
		}}}}
	}
	outputs := []pipeline.Result{vs(publicGateway, publicDomain), vs(publicGateway, "app.example.com"), vs("istio-system/mtls", mtlsHost)}
	for host, want := range map[string]int{
		"app.example.com": 1, "APP.Example.COM:443": 1, "app.example.com:8080": 1, "x.example.com": 0, "a.b.example.com": 0,
		"example.com": -1, "app.example.com.": -1, mtlsHost: 0, "app.example.org": -1,
	} {
		if got, _ := virtualHostOf(outputs, servers[0], host); got != want {
			t.Errorf("virtual host of %q on the public server = %d, want %d", host, got, want)
		}
	}
	if got, _ := virtualHostOf(outputs, servers[1], "app.example.com"); got != -1 {
		t.Errorf("the mTLS server routes app.example.com by %d: its route configuration holds only its Gateway's VirtualServices", got)
	}
}
