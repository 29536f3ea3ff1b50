package envoyeval

import (
	"net/netip"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func stream(method, host, path string) *Stream {
	return &Stream{Headers: Headers{":method": {method}, ":authority": {host}, ":path": {path}}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestStringMatcher(t *testing.T) {
	cases := []struct {
		m    *matcherv3.StringMatcher
		in   string
		want bool
	}{
		{exact("/a"), "/a", true},
		{exact("/a"), "/A", false},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "/a"}, IgnoreCase: true}, "/A", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "h.example.com:"}}, "h.example.com:443", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "h.example.com:"}}, "h.example.com", false},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: ".example.com"}}, "a.example.com", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "mp"}}, "example", true},
		// safe_regex must match the whole value.
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a/[^/]+"}}}, "/a/b", true},
		{&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a/[^/]+"}}}, "/a/b/c", false},
	}
	for _, c := range cases {
		got, err := MatchString(c.m, c.in)
		if err != nil || got != c.want {
			t.Errorf("MatchString(%v, %q) = %v, %v; want %v", c.m, c.in, got, err, c.want)
		}
	}
}

func TestHeaderMatcherAbsentAndInverted(t *testing.T) {
	h := Headers{":method": {"GET"}}
	sm := &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("GET")}}
	if ok, _ := MatchHeader(sm, h); !ok {
		t.Error("exact GET should match")
	}
	inv := proto.Clone(sm).(*routev3.HeaderMatcher)
	inv.InvertMatch = true
	if ok, _ := MatchHeader(inv, h); ok {
		t.Error("inverted GET should not match GET")
	}
	// A value matcher never matches an absent header, inverted or not.
	absent := &routev3.HeaderMatcher{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("a")}, InvertMatch: true}
	if ok, _ := MatchHeader(absent, h); ok {
		t.Error("inverted value matcher on an absent header must not match")
	}
	notPresent := &routev3.HeaderMatcher{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}, InvertMatch: true}
	if ok, _ := MatchHeader(notPresent, h); !ok {
		t.Error("inverted present_match on an absent header must match")
	}
	// Repeated headers are joined with ",".
	multi := Headers{"x-a": {"1", "2"}}
	if ok, _ := MatchHeader(&routev3.HeaderMatcher{Name: "x-a", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("1,2")}}, multi); !ok {
		t.Error("repeated header values should be joined with a comma")
	}
}

func TestURITemplate(t *testing.T) {
	cases := []struct {
		tmpl, path string
		want       bool
	}{
		{"/a/*", "/a/b", true},
		{"/a/*", "/a/", false},
		{"/a/*", "/a/b/c", false},
		{"/files/**", "/files/", true},
		{"/files/**", "/files/x/y", true},
		{"/files/**", "/files", false},
		{"/users/*/items/**", "/users/7/items/1/2", true},
		{"/users/*/items/**", "/users/7/8/items/1", false},
		{"/v1.0/*", "/v1x0/a", false},
		// '=' and '*' are in the glob alphabet of current Envoy; '?' and '#' never are.
		{"/a/*", "/a/x=y", true},
		{"/a/*", "/a/x*y", true},
		{"/a/*", "/a/x#y", false},
	}
	for _, c := range cases {
		re, err := URITemplateRegex(c.tmpl)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fullMatch(re, c.path)
		if err != nil || got != c.want {
			t.Errorf("template %s on %s = %v, %v; want %v", c.tmpl, c.path, got, err, c.want)
		}
	}
	if _, err := URITemplateRegex("/a/{id}"); err == nil {
		t.Error("named variables must be refused, not guessed")
	}
}

func methodIs(m string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact(m)}}}}
}

func pathTemplate(t *testing.T, tmpl string) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
		Name: "uri-template", TypedConfig: mustAny(t, &uritemplatev3.UriTemplateMatchConfig{PathTemplate: tmpl})}}}
}

func and(ps ...*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func not(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func peer(principal string) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: exact("spiffe://" + principal)}}}
}

func claim(path []string, value string) *rbacv3.Principal {
	var segs []*matcherv3.MetadataMatcher_PathSegment
	for _, p := range path {
		segs = append(segs, &matcherv3.MetadataMatcher_PathSegment{Segment: &matcherv3.MetadataMatcher_PathSegment_Key{Key: p}})
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Metadata{Metadata: &matcherv3.MetadataMatcher{
		Filter: JWTFilterName, Path: segs,
		Value: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_OrMatch{OrMatch: &matcherv3.OrMatcher{ValueMatchers: []*matcherv3.ValueMatcher{
			{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(value)}},
			{MatchPattern: &matcherv3.ValueMatcher_ListMatch{ListMatch: &matcherv3.ListMatcher{MatchPattern: &matcherv3.ListMatcher_OneOf{OneOf: &matcherv3.ValueMatcher{MatchPattern: &matcherv3.ValueMatcher_StringMatch{StringMatch: exact(value)}}}}}},
		}}}},
	}}}
}

func andIDs(ps ...*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ps}}}
}

const gwPrincipal = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"

// The rule-order defect of the predecessor, as Envoy policies: rule 2 (GET /a/b) needs a
// token, rule 3 (GET /a/*) is open but excludes /a/b.
func TestRBACAllowWithExclusion(t *testing.T) {
	cfg := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"rule-1": {
			Permissions: []*rbacv3.Permission{and(methodIs("GET"), &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: exact("/a/b")}}}})},
			Principals:  []*rbacv3.Principal{andIDs(peer(gwPrincipal), claim([]string{"payload", "iss"}, "https://idp"))},
		},
		"rule-2": {
			Permissions: []*rbacv3.Permission{and(methodIs("GET"), pathTemplate(t, "/a/*"), not(&rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: exact("/a/b")}}}}))},
			Principals:  []*rbacv3.Principal{peer(gwPrincipal)},
		},
	}}}
	run := func(path string, principal string, payload map[string]any) bool {
		s := stream("GET", "h", path)
		s.PeerPrincipal = principal
		if payload != nil {
			applyVerified(verification{provider: &jwtv3.JwtProvider{PayloadInMetadata: "payload"}, token: Token{Claims: payload}}, s)
		}
		d, err := EvalRBACFilter(cfg, s)
		if err != nil {
			t.Fatal(err)
		}
		return !d.Denied
	}
	if run("/a/b", gwPrincipal, nil) {
		t.Error("GET /a/b without a token must be denied although /a/* is open")
	}
	if !run("/a/b", gwPrincipal, map[string]any{"iss": "https://idp"}) {
		t.Error("GET /a/b with a token of the issuer must be allowed")
	}
	if run("/a/b", gwPrincipal, map[string]any{"iss": "https://idp/tenant"}) {
		t.Error("a token of another issuer must be denied")
	}
	if !run("/a/c", gwPrincipal, nil) {
		t.Error("GET /a/c is open")
	}
	if run("/a/c", "cluster.local/ns/shop/sa/other", nil) {
		t.Error("another caller than the gateway must be denied")
	}
	if run("/a/c/d", gwPrincipal, nil) {
		t.Error("/a/* covers one segment only")
	}
}

func TestRBACDenyAndShadowMetadata(t *testing.T) {
	deny := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"block": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{
				RemoteIp: &corev3.CidrRange{AddressPrefix: "198.51.100.0", PrefixLen: wrapperspb.UInt32(24)}}}}}},
		},
	}}}
	s := stream("GET", "h", "/")
	s.RemoteIP = netip.MustParseAddr("198.51.100.7")
	if d, _ := EvalRBACFilter(deny, s); d.Denied {
		t.Error("an allowed client address must pass a notRemoteIpBlocks DENY")
	}
	s.RemoteIP = netip.MustParseAddr("203.0.113.1")
	if d, _ := EvalRBACFilter(deny, s); !d.Denied || d.Policy != "block" {
		t.Errorf("another client address must be denied by policy block, got %+v", d)
	}

	shadow := &rbacfilterv3.RBAC{ShadowRulesStatPrefix: "istio_ext_authz_", ShadowRules: &rbacv3.RBAC{Action: rbacv3.RBAC_ALLOW, Policies: map[string]*rbacv3.Policy{
		"istio-ext-authz-ns[shop]-policy[x]-rule[0]": {Permissions: []*rbacv3.Permission{pathTemplate(t, "/**")}, Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}}},
	}}}
	s = stream("GET", "h", "/x")
	if d, err := EvalRBACFilter(shadow, s); err != nil || d.Denied {
		t.Fatalf("shadow rules must never deny: %+v %v", d, err)
	}
	got := s.Metadata[RBACFilterName].GetFields()["istio_ext_authz_shadow_effective_policy_id"].GetStringValue()
	if !strings.HasPrefix(got, "istio-ext-authz") {
		t.Errorf("shadow effective policy id = %q", got)
	}
}

func TestUnknownMatcherIsAnError(t *testing.T) {
	p := &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: &corev3.CidrRange{AddressPrefix: "10.0.0.0"}}}
	if _, err := MatchPermission(p, stream("GET", "h", "/")); err == nil {
		t.Error("a matcher the evaluator does not model must be an error, not a silent result")
	}
}

func jwtConfig(providers map[string]*jwtv3.JwtProvider, names ...string) *jwtv3.JwtAuthentication {
	var reqs []*jwtv3.JwtRequirement
	for _, n := range names {
		reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_ProviderName{ProviderName: n}})
	}
	reqs = append(reqs, &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_AllowMissing{}})
	return &jwtv3.JwtAuthentication{Providers: providers, Rules: []*jwtv3.RequirementRule{{
		Match:           &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		RequirementType: &jwtv3.RequirementRule_Requires{Requires: &jwtv3.JwtRequirement{RequiresType: &jwtv3.JwtRequirement_RequiresAny{RequiresAny: &jwtv3.JwtRequirementOrList{Requirements: reqs}}}},
	}}}
}

func TestJWTAuthn(t *testing.T) {
	cfg := jwtConfig(map[string]*jwtv3.JwtProvider{
		"a": {Issuer: "https://idp", PayloadInMetadata: "payload", Forward: true,
			ClaimToHeaders:             []*jwtv3.JwtClaimToHeader{{HeaderName: "x-user", ClaimName: "sub"}},
			NormalizePayloadInMetadata: &jwtv3.JwtProvider_NormalizePayload{SpaceDelimitedClaims: []string{"scope"}}},
		"b": {Issuer: "https://partner", PayloadInMetadata: "payload", FromHeaders: []*jwtv3.JwtHeader{{Name: "x-token"}}},
	}, "a", "b")
	tokens := Tokens{
		"good":    {Issuer: "https://idp", Claims: map[string]any{"sub": "u1", "scope": "read write"}},
		"partner": {Issuer: "https://partner", Claims: map[string]any{"sub": "p"}},
		"forged":  {Issuer: "https://idp", Invalid: true},
		"other":   {Issuer: "https://elsewhere"},
	}
	run := func(h Headers) (JWTResult, *Stream) {
		s := &Stream{Headers: h}
		s.Headers.Set(":path", "/x")
		r, err := EvalJWTFilter(cfg, s, tokens)
		if err != nil {
			t.Fatal(err)
		}
		return r, s
	}
	if r, _ := run(Headers{}); r.Status != 0 {
		t.Errorf("no token: allow_missing lets it through to RBAC, got %+v", r)
	}
	r, s := run(Headers{"authorization": {"Bearer good"}})
	if r.Status != 0 {
		t.Fatalf("valid token rejected: %+v", r)
	}
	if v, _ := s.Headers.Get("x-user"); v != "u1" {
		t.Errorf("claim_to_headers: x-user = %q", v)
	}
	scope := s.Metadata[JWTFilterName].GetFields()["payload"].GetStructValue().GetFields()["scope"]
	if scope.GetListValue() == nil || len(scope.GetListValue().GetValues()) != 2 {
		t.Errorf("space-delimited scope should become a list, got %v", scope)
	}
	if _, ok := s.Headers.Get("authorization"); !ok {
		t.Error("forward: true keeps the token")
	}
	if r, _ := run(Headers{"authorization": {"Bearer forged"}}); r.Status != 401 {
		t.Errorf("invalid signature must be 401, got %+v", r)
	}
	if r, _ := run(Headers{"authorization": {"Bearer other"}}); r.Status != 401 {
		t.Errorf("unknown issuer must be 401, got %+v", r)
	}
	// The partner token in the default location is not where provider b looks.
	if r, _ := run(Headers{"authorization": {"Bearer partner"}}); r.Status != 401 {
		t.Errorf("partner token in Authorization must be 401, got %+v", r)
	}
	r, s = run(Headers{"x-token": {"partner"}})
	if r.Status != 0 {
		t.Errorf("partner token in x-token must pass, got %+v", r)
	}
	if _, ok := s.Headers.Get("x-token"); ok {
		t.Error("forward: false removes the token header")
	}
}

func TestVirtualHostAndRouteSelection(t *testing.T) {
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		{Name: "wild", Domains: []string{"*.example.com"}, Routes: []*routev3.Route{{Name: "w", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}}}},
		{Name: "exact", Domains: []string{"api.example.com", "api.example.com:*"}, Routes: []*routev3.Route{
			{Name: "get", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/a"}, Headers: []*routev3.HeaderMatcher{{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exact("GET")}}}}},
			{Name: "any", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a|/b"}}}},
		}},
	}}
	if vh := SelectVirtualHost(rc, "API.example.com"); vh.GetName() != "exact" {
		t.Errorf("exact domain must win over the wildcard, got %s", vh.GetName())
	}
	if vh := SelectVirtualHost(rc, "x.example.com"); vh.GetName() != "wild" {
		t.Errorf("wildcard, got %v", vh.GetName())
	}
	if vh := SelectVirtualHost(rc, "x.example.com:443"); vh != nil {
		t.Errorf("without ignore_port_in_host_matching the port takes part, got %s", vh.GetName())
	}
	rc.IgnorePortInHostMatching = true
	if vh := SelectVirtualHost(rc, "x.example.com:443"); vh.GetName() != "wild" {
		t.Errorf("ignore_port_in_host_matching: got %v", vh.GetName())
	}
	if vh := SelectVirtualHost(rc, "example.com"); vh != nil {
		t.Errorf("*.example.com does not cover example.com, got %s", vh.GetName())
	}
	vh := SelectVirtualHost(rc, "api.example.com")
	for _, c := range []struct{ method, path, want string }{{"GET", "/a", "get"}, {"POST", "/a", "any"}, {"POST", "/b?q=1", "any"}, {"GET", "/c", ""}} {
		r, err := SelectRoute(vh, stream(c.method, "api.example.com", c.path))
		if err != nil {
			t.Fatal(err)
		}
		if r.GetName() != c.want {
			t.Errorf("%s %s routed to %q, want %q", c.method, c.path, r.GetName(), c.want)
		}
	}
}

func TestHeaderMutationOverwritesForgedHeaders(t *testing.T) {
	set := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	r := &routev3.Route{RequestHeadersToAdd: []*corev3.HeaderValueOption{
		set("x-client-subject", "%DOWNSTREAM_PEER_SUBJECT%"),
		set("x-client-fp", "%DOWNSTREAM_PEER_FINGERPRINT_256%"),
		set("x-forwarded-host", "h.example.com"),
		set("x-original-host", "%REQ(:AUTHORITY)%"),
	}, RequestHeadersToRemove: []string{"x-drop"}}
	s := stream("GET", "h.example.com", "/")
	s.Headers.Set("x-client-subject", "CN=forged")
	s.Headers.Set("x-drop", "1")
	s.PeerCert = &Cert{Subject: "CN=partner", Fingerprint256: "ab12"}
	if err := ApplyRequestHeaderMutations(&routev3.RouteConfiguration{}, &routev3.VirtualHost{}, r, s); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"x-client-subject": "CN=partner", "x-client-fp": "ab12", "x-forwarded-host": "h.example.com", "x-original-host": "h.example.com"} {
		if got, _ := s.Headers.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := s.Headers.Get("x-drop"); ok {
		t.Error("x-drop should be removed")
	}
	// Without a certificate the formatter is empty: Envoy skips the header, so a forged
	// value survives. (A MUTUAL server never lets such a request in.)
	s = stream("GET", "h.example.com", "/")
	s.Headers.Set("x-client-subject", "CN=forged")
	if err := ApplyRequestHeaderMutations(&routev3.RouteConfiguration{}, &routev3.VirtualHost{}, r, s); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Headers.Get("x-client-subject"); got != "CN=forged" {
		t.Errorf("empty formatter result must not overwrite, got %q", got)
	}
	if _, err := FormatHeaderValue("%UPSTREAM_HOST%", s); err == nil {
		t.Error("an unknown formatter must be an error")
	}
}

func hcmAny(t *testing.T, h *hcmv3.HttpConnectionManager) []*listenerv3.Filter {
	return []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager", ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(t, h)}}}
}

// A gateway listener with a MUTUAL server for one host and a SIMPLE server for the rest,
// trusted proxies in front, and a DENY on the client address.
func gatewayProxy(t *testing.T, trustedHops uint32) *Proxy {
	deny := &rbacfilterv3.RBAC{Rules: &rbacv3.RBAC{Action: rbacv3.RBAC_DENY, Policies: map[string]*rbacv3.Policy{
		"ns[istio-system]-policy[ip]-rule[0]": {
			Permissions: []*rbacv3.Permission{{Rule: &rbacv3.Permission_Any{Any: true}}},
			Principals: []*rbacv3.Principal{{Identifier: &rbacv3.Principal_NotId{NotId: &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{
				RemoteIp: &corev3.CidrRange{AddressPrefix: "198.51.100.0", PrefixLen: wrapperspb.UInt32(24)}}}}}},
		},
	}}}
	hcm := &hcmv3.HttpConnectionManager{
		UseRemoteAddress: wrapperspb.Bool(true), XffNumTrustedHops: trustedHops, NormalizePath: wrapperspb.Bool(true),
		StripPortMode:  &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true},
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{RouteConfigName: "https.443"}},
		HttpFilters: []*hcmv3.HttpFilter{
			{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, deny)}},
			{Name: "envoy.filters.http.router"},
		},
	}
	tlsSocket := func(mutual bool) *corev3.TransportSocket {
		ctx := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(mutual), CommonTlsContext: &tlsv3.CommonTlsContext{}}
		if mutual {
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ca"}}
		}
		return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(t, ctx)}}
	}
	l := &listenerv3.Listener{Name: "0.0.0.0_443", Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 443}}}},
		FilterChains: []*listenerv3.FilterChain{
			{Name: "mutual", FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"partner.example.com"}}, TransportSocket: tlsSocket(true), Filters: hcmAny(t, hcm)},
			{Name: "simple", FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"*.example.com"}}, TransportSocket: tlsSocket(false), Filters: hcmAny(t, hcm)},
		}}
	rc := &routev3.RouteConfiguration{Name: "https.443", VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*.example.com"},
		Routes: []*routev3.Route{{Name: "r", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action:              &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|8000||b.ns.svc.cluster.local"}}},
			RequestHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-client-subject", Value: "%DOWNSTREAM_PEER_SUBJECT%"}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}},
		}},
	}}}
	return &Proxy{Listeners: []*listenerv3.Listener{l}, Routes: []*routev3.RouteConfiguration{rc}}
}

func TestGatewayTLSAndClientAddress(t *testing.T) {
	cert := &Cert{Subject: "CN=partner"}
	cases := []struct {
		name       string
		hops       uint32
		sni        string
		cert       *Cert
		direct     string
		xff        string
		wantStatus int
		wantHeader string
	}{
		{"simple server, allowed address", 0, "shop.example.com", nil, "198.51.100.7", "", 0, ""},
		{"simple server, other address", 0, "shop.example.com", nil, "203.0.113.1", "", 403, ""},
		{"XFF is ignored without trusted hops", 0, "shop.example.com", nil, "203.0.113.1", "198.51.100.7", 403, ""},
		{"one trusted hop: the client is the last XFF entry", 1, "shop.example.com", nil, "10.0.0.1", "198.51.100.7", 0, ""},
		{"one trusted hop: a forged leftmost entry does not help", 1, "shop.example.com", nil, "10.0.0.1", "198.51.100.7, 203.0.113.1", 403, ""},
		{"two trusted hops", 2, "shop.example.com", nil, "10.0.0.1", "198.51.100.7, 10.0.0.2", 0, ""},
		{"too few XFF entries fall back to the connection", 2, "shop.example.com", nil, "10.0.0.1", "", 403, ""},
		{"mutual server without a certificate", 0, "partner.example.com", nil, "198.51.100.7", "", StatusTLSRejected, ""},
		{"mutual server with an untrusted certificate", 0, "partner.example.com", &Cert{Subject: "CN=x", Untrusted: true}, "198.51.100.7", "", StatusTLSRejected, ""},
		{"mutual server with a certificate", 0, "partner.example.com", cert, "198.51.100.7", "", 0, "CN=partner"},
		{"unknown SNI", 0, "other.org", nil, "198.51.100.7", "", StatusTLSRejected, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := gatewayProxy(t, c.hops)
			h := Headers{":method": {"GET"}, ":path": {"/x"}, ":authority": {c.sni + ":443"}, "x-client-subject": {"CN=forged"}}
			if c.xff != "" {
				h.Set("x-forwarded-for", c.xff)
			}
			conn := Conn{Port: 443, DirectRemoteIP: netip.MustParseAddr(c.direct), TLS: true, SNI: c.sni, PeerCert: c.cert}
			out, err := p.Handle(p.ListenerForPort(443), conn, h, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out.Status != c.wantStatus {
				t.Fatalf("status %d (%s), want %d", out.Status, out.Reason, c.wantStatus)
			}
			if c.wantHeader != "" {
				if got, _ := out.Upstream.Headers.Get("x-client-subject"); got != c.wantHeader {
					t.Errorf("x-client-subject upstream = %q, want %q", got, c.wantHeader)
				}
				if got, _ := out.Upstream.Headers.Get(":authority"); got != c.sni {
					t.Errorf("strip_any_host_port: authority = %q", got)
				}
			}
		})
	}
}

func TestPathNormalisation(t *testing.T) {
	s := &Stream{Headers: Headers{":path": {"/public/../admin?x=1"}}}
	prepareRequest(&hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(true)}, Conn{}, s)
	if p := s.Path(); p != "/admin?x=1" {
		t.Errorf("normalised path = %q", p)
	}
	s = &Stream{Headers: Headers{":path": {"//a//b"}}}
	prepareRequest(&hcmv3.HttpConnectionManager{MergeSlashes: true}, Conn{}, s)
	if p := s.Path(); p != "/a/b" {
		t.Errorf("merged path = %q", p)
	}
}

func TestSubjectAltNameMatchers(t *testing.T) {
	withSANs := func(vc *tlsv3.CertificateValidationContext) *tlsv3.DownstreamTlsContext {
		return &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{DefaultValidationContext: vc}}}}
	}
	uri := withSANs(&tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{
		{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: exact("spiffe://partner/a")}}})
	untyped := withSANs(&tlsv3.CertificateValidationContext{MatchSubjectAltNames: []*matcherv3.StringMatcher{exact("partner.example")}})
	cases := []struct {
		name string
		ctx  *tlsv3.DownstreamTlsContext
		cert Cert
		want bool
	}{
		{"no matcher accepts any certificate", withSANs(&tlsv3.CertificateValidationContext{}), Cert{URISAN: "spiffe://x"}, true},
		{"typed URI matcher, matching URI SAN", uri, Cert{URISAN: "spiffe://partner/a"}, true},
		{"typed URI matcher, other URI SAN", uri, Cert{URISAN: "spiffe://partner/b"}, false},
		{"typed URI matcher ignores a DNS SAN of the same text", uri, Cert{DNSSANs: []string{"spiffe://partner/a"}}, false},
		{"untyped matcher, DNS SAN", untyped, Cert{DNSSANs: []string{"partner.example"}}, true},
		{"untyped matcher, no SAN", untyped, Cert{}, false},
	}
	for _, c := range cases {
		got, err := subjectAltNamesMatch(c.ctx, &c.cert)
		if err != nil || got != c.want {
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}
