package envoyeval

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Proxy is the configuration istiod sent to one Envoy.
type Proxy struct {
	Listeners []*listenerv3.Listener
	Routes    []*routev3.RouteConfiguration
}

// ExtAuthz answers an ext_authz check: cluster is the authorizer's Envoy cluster, s the
// request as the authorizer sees it. It returns true to allow.
type ExtAuthz func(cluster string, s *Stream) bool

// Outcome says what one proxy did with a request.
type Outcome struct {
	// Status is 0 when the request was forwarded to Cluster; otherwise the HTTP status the
	// proxy answered with, or StatusTLSRejected when the connection never got that far.
	Status int
	// Reason explains a non-zero Status (for example "rbac: denied by ns[x]-policy[y]-rule[0]").
	Reason string
	// Cluster is the upstream cluster of the selected route.
	Cluster string
	// VirtualHost and RouteName name the selected virtual host and route (Istio: the
	// VirtualService http[].name).
	VirtualHost string
	RouteName   string
	// ExtAuthzCalls lists the authorizer clusters that were asked, in order.
	ExtAuthzCalls []string
	// Upstream is the request as forwarded: headers after every filter and the route's
	// header mutations.
	Upstream *Stream
}

// StatusTLSRejected marks a connection that fails before HTTP: no filter chain for the
// SNI, a plaintext client on a TLS port, or a missing or untrusted client certificate.
const StatusTLSRejected = -1

// ListenerForPort returns the listener bound to port (gateway listeners bind 0.0.0.0:port).
func (p *Proxy) ListenerForPort(port int) *listenerv3.Listener {
	for _, l := range p.Listeners {
		if int(l.GetAddress().GetSocketAddress().GetPortValue()) == port && l.GetName() != "virtualOutbound" {
			return l
		}
	}
	return nil
}

// ListenerByName returns the listener with that name.
func (p *Proxy) ListenerByName(name string) *listenerv3.Listener {
	for _, l := range p.Listeners {
		if l.GetName() == name {
			return l
		}
	}
	return nil
}

func (p *Proxy) route(name string) *routev3.RouteConfiguration {
	for _, r := range p.Routes {
		if r.GetName() == name {
			return r
		}
	}
	return nil
}

// Handle runs one request through listener l: filter chain, connection manager, HTTP
// filters and router.
func (p *Proxy) Handle(l *listenerv3.Listener, conn Conn, headers Headers, tokens Tokens, authz ExtAuthz) (Outcome, error) {
	fc, err := SelectFilterChain(l, conn)
	if err != nil {
		return Outcome{}, err
	}
	if fc == nil {
		return Outcome{Status: StatusTLSRejected, Reason: "no filter chain matches"}, nil
	}
	if reason, err := checkTLS(fc, conn); err != nil || reason != "" {
		return Outcome{Status: StatusTLSRejected, Reason: reason}, err
	}
	hcm, err := httpConnectionManager(fc)
	if err != nil {
		return Outcome{}, fmt.Errorf("listener %s chain %s: %w", l.GetName(), fc.GetName(), err)
	}
	s := &Stream{Conn: conn, Headers: headers.Clone(), FilterState: map[string]string{}}
	if conn.PeerPrincipal != "" {
		// Istio's RBAC reads the mTLS peer identity from this filter-state key.
		s.FilterState["io.istio.peer_principal"] = "spiffe://" + conn.PeerPrincipal
	}
	if status, reason := prepareRequest(hcm, conn, s); status != 0 {
		return Outcome{Status: status, Reason: reason}, nil
	}
	var rc *routev3.RouteConfiguration
	switch r := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		rc = p.route(r.Rds.GetRouteConfigName())
		if rc == nil {
			return Outcome{}, fmt.Errorf("route configuration %q not generated", r.Rds.GetRouteConfigName())
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		rc = r.RouteConfig
	default:
		return Outcome{}, fmt.Errorf("route specifier %T is not modelled", r)
	}
	out := Outcome{}
	// Per-route filter overrides would change what the filters below do; none is modelled.
	if vh := SelectVirtualHost(rc, host(s)); vh != nil {
		if r, err := SelectRoute(vh, s); err == nil && r != nil {
			for name := range r.GetTypedPerFilterConfig() {
				if authFilter(name) {
					return out, fmt.Errorf("route %s overrides filter %s: not modelled", r.GetName(), name)
				}
			}
		}
	}
	for _, f := range hcm.GetHttpFilters() {
		status, reason, err := runHTTPFilter(f, s, tokens, authz, &out)
		if err != nil {
			return out, fmt.Errorf("filter %s: %w", f.GetName(), err)
		}
		if status != 0 {
			out.Status, out.Reason = status, reason
			return out, nil
		}
	}
	vh := SelectVirtualHost(rc, host(s))
	if vh == nil {
		out.Status, out.Reason = 404, "no virtual host for "+host(s)
		return out, nil
	}
	out.VirtualHost = vh.GetName()
	r, err := SelectRoute(vh, s)
	if err != nil {
		return out, err
	}
	if r == nil {
		out.Status, out.Reason = 404, "no route in virtual host "+vh.GetName()
		return out, nil
	}
	out.RouteName = r.GetName()
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		switch c := a.Route.GetClusterSpecifier().(type) {
		case *routev3.RouteAction_Cluster:
			out.Cluster = c.Cluster
		case *routev3.RouteAction_WeightedClusters:
			if len(c.WeightedClusters.GetClusters()) != 1 {
				return out, fmt.Errorf("route %s splits traffic over %d clusters: not modelled", r.GetName(), len(c.WeightedClusters.GetClusters()))
			}
			out.Cluster = c.WeightedClusters.GetClusters()[0].GetName()
		default:
			return out, fmt.Errorf("cluster specifier %T is not modelled", c)
		}
		if err := ApplyRequestHeaderMutations(rc, vh, r, s); err != nil {
			return out, err
		}
		if a.Route.GetPrefixRewrite() != "" || a.Route.GetRegexRewrite() != nil || a.Route.GetPathRewritePolicy() != nil {
			return out, fmt.Errorf("route %s rewrites the path: not modelled", r.GetName())
		}
		if h := a.Route.GetHostRewriteLiteral(); h != "" {
			s.Headers.Set(":authority", h)
		}
	case *routev3.Route_DirectResponse:
		out.Status, out.Reason = int(a.DirectResponse.GetStatus()), "direct response"
		return out, nil
	case *routev3.Route_Redirect:
		out.Status, out.Reason = 301, "redirect"
		return out, nil
	default:
		return out, fmt.Errorf("route action %T is not modelled", a)
	}
	out.Upstream = s
	return out, nil
}

func host(s *Stream) string { h, _ := s.Headers.Get(":authority"); return h }

func authFilter(name string) bool {
	return name == "envoy.filters.http.rbac" || name == JWTFilterName || name == "envoy.filters.http.ext_authz"
}

// passThroughFilters do not decide or change anything this package checks (telemetry,
// protocol sniffing, fault injection without faults configured, CORS answers preflights only).
var passThroughFilters = []string{
	"istio.metadata_exchange", "istio.alpn", "istio.stats", "envoy.filters.http.grpc_stats",
	"envoy.filters.http.fault", "envoy.filters.http.cors", "envoy.filters.http.router",
	"istio.peer_metadata", "envoy.filters.http.peer_metadata", "istio_authn", "istio.authn",
	"envoy.filters.http.grpc_web", "envoy.filters.http.compressor", "waypoint_downstream_peer_metadata",
	"envoy.filters.http.header_to_metadata", "envoy.filters.http.connect_authority",
}

func runHTTPFilter(f *hcmv3.HttpFilter, s *Stream, tokens Tokens, authz ExtAuthz, out *Outcome) (int, string, error) {
	tc := f.GetTypedConfig()
	if tc == nil {
		if slices.Contains(passThroughFilters, f.GetName()) || f.GetConfigDiscovery() != nil && slices.Contains(passThroughFilters, f.GetName()) {
			return 0, "", nil
		}
		return 0, "", fmt.Errorf("filter without typed config is not modelled")
	}
	switch tc.GetTypeUrl() {
	case typeURL(&jwtv3.JwtAuthentication{}):
		var cfg jwtv3.JwtAuthentication
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return 0, "", err
		}
		r, err := EvalJWTFilter(&cfg, s, tokens)
		if err != nil {
			return 0, "", err
		}
		if r.Status != 0 {
			return r.Status, "jwt: " + r.Reason, nil
		}
		return 0, "", nil
	case typeURL(&rbacfilterv3.RBAC{}):
		var cfg rbacfilterv3.RBAC
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return 0, "", err
		}
		d, err := EvalRBACFilter(&cfg, s)
		if err != nil {
			return 0, "", err
		}
		if d.Denied {
			why := "rbac: no ALLOW policy matched"
			if d.Policy != "" {
				why = "rbac: denied by " + d.Policy
			}
			return 403, why, nil
		}
		return 0, "", nil
	case typeURL(&extauthzv3.ExtAuthz{}):
		var cfg extauthzv3.ExtAuthz
		if err := tc.UnmarshalTo(&cfg); err != nil {
			return 0, "", err
		}
		return runExtAuthz(&cfg, s, authz, out)
	}
	if slices.Contains(passThroughFilters, f.GetName()) {
		return 0, "", nil
	}
	return 0, "", fmt.Errorf("filter type %s is not modelled", tc.GetTypeUrl())
}

func runExtAuthz(cfg *extauthzv3.ExtAuthz, s *Stream, authz ExtAuthz, out *Outcome) (int, string, error) {
	if m := cfg.GetFilterEnabledMetadata(); m != nil {
		on, err := MatchMetadata(m, s.Metadata)
		if err != nil || !on {
			return 0, "", err
		}
	}
	if fe := cfg.GetFilterEnabled(); fe != nil && fe.GetDefaultValue().GetNumerator() == 0 {
		return 0, "", nil
	}
	var cluster string
	switch svc := cfg.GetServices().(type) {
	case *extauthzv3.ExtAuthz_GrpcService:
		cluster = svc.GrpcService.GetEnvoyGrpc().GetClusterName()
	case *extauthzv3.ExtAuthz_HttpService:
		cluster = svc.HttpService.GetServerUri().GetCluster()
	}
	if cluster == "" {
		return 0, "", fmt.Errorf("ext_authz without an Envoy cluster is not modelled")
	}
	out.ExtAuthzCalls = append(out.ExtAuthzCalls, cluster)
	if authz == nil || !authz(cluster, s) {
		status := 403
		if c := cfg.GetStatusOnError().GetCode(); c != 0 && authz == nil {
			status = int(c)
		}
		return status, "ext_authz: denied by " + cluster, nil
	}
	return 0, "", nil
}

func typeURL(m proto.Message) string {
	return "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName())
}

// SelectFilterChain picks the filter chain Envoy would use, criterion by criterion in
// Envoy's order (destination port, server name, transport protocol, application protocol):
// at each step the chains that name the value win over the chains that leave it open.
func SelectFilterChain(l *listenerv3.Listener, conn Conn) (*listenerv3.FilterChain, error) {
	cands := l.GetFilterChains()
	transport := "raw_buffer"
	if conn.TLS {
		transport = "tls"
	}
	for _, fc := range cands {
		m := fc.GetFilterChainMatch()
		if len(m.GetPrefixRanges()) > 0 || len(m.GetDirectSourcePrefixRanges()) > 0 || len(m.GetSourcePrefixRanges()) > 0 || len(m.GetSourcePorts()) > 0 {
			return nil, fmt.Errorf("filter chain %s matches on addresses: not modelled", fc.GetName())
		}
	}
	narrow := func(specified func(*listenerv3.FilterChainMatch) bool, hits func(*listenerv3.FilterChainMatch) bool) {
		var named, open []*listenerv3.FilterChain
		for _, fc := range cands {
			m := fc.GetFilterChainMatch()
			switch {
			case !specified(m):
				open = append(open, fc)
			case hits(m):
				named = append(named, fc)
			}
		}
		if len(named) > 0 {
			cands = named
		} else {
			cands = open
		}
	}
	narrow(func(m *listenerv3.FilterChainMatch) bool { return m.GetDestinationPort() != nil },
		func(m *listenerv3.FilterChainMatch) bool { return int(m.GetDestinationPort().GetValue()) == conn.Port })
	// Server names: an exact name beats the longest matching wildcard.
	best := -1
	for _, fc := range cands {
		for _, n := range fc.GetFilterChainMatch().GetServerNames() {
			if sc := serverNameScore(n, conn.SNI); sc > best {
				best = sc
			}
		}
	}
	narrow(func(m *listenerv3.FilterChainMatch) bool { return len(m.GetServerNames()) > 0 },
		func(m *listenerv3.FilterChainMatch) bool {
			for _, n := range m.GetServerNames() {
				if best >= 0 && serverNameScore(n, conn.SNI) == best {
					return true
				}
			}
			return false
		})
	narrow(func(m *listenerv3.FilterChainMatch) bool { return m.GetTransportProtocol() != "" },
		func(m *listenerv3.FilterChainMatch) bool { return m.GetTransportProtocol() == transport })
	narrow(func(m *listenerv3.FilterChainMatch) bool { return len(m.GetApplicationProtocols()) > 0 },
		func(m *listenerv3.FilterChainMatch) bool {
			for _, a := range conn.ALPN {
				if slices.Contains(m.GetApplicationProtocols(), a) {
					return true
				}
			}
			return false
		})
	if len(cands) == 0 {
		return l.GetDefaultFilterChain(), nil
	}
	return cands[0], nil
}

// serverNameScore: -1 no match, otherwise the length of what matched, exact names ranking
// above every wildcard.
func serverNameScore(name, sni string) int {
	name, sni = strings.ToLower(name), strings.ToLower(sni)
	if name == sni && sni != "" {
		return 1 << 20
	}
	if strings.HasPrefix(name, "*.") && strings.HasSuffix(sni, name[1:]) && len(sni) > len(name)-1 {
		return len(name)
	}
	return -1
}

// checkTLS returns a reason when the TLS handshake would fail on this chain.
func checkTLS(fc *listenerv3.FilterChain, conn Conn) (string, error) {
	ts := fc.GetTransportSocket()
	if ts == nil || ts.GetName() != "envoy.transport_sockets.tls" {
		if conn.TLS && fc.GetFilterChainMatch().GetTransportProtocol() != "tls" {
			return "TLS client on a plaintext chain", nil
		}
		return "", nil
	}
	if !conn.TLS {
		return "plaintext client on a TLS chain", nil
	}
	var ctx tlsv3.DownstreamTlsContext
	if err := anyTo(ts.GetTypedConfig(), &ctx); err != nil {
		return "", err
	}
	presented := conn.PeerCert != nil || conn.PeerPrincipal != ""
	if ctx.GetRequireClientCertificate().GetValue() && !presented {
		return "client certificate required", nil
	}
	validates := ctx.GetCommonTlsContext().GetValidationContext() != nil ||
		ctx.GetCommonTlsContext().GetCombinedValidationContext() != nil ||
		ctx.GetCommonTlsContext().GetValidationContextSdsSecretConfig() != nil
	if validates && conn.PeerCert != nil && conn.PeerCert.Untrusted {
		return "client certificate not trusted", nil
	}
	if conn.PeerCert != nil {
		ok, err := subjectAltNamesMatch(&ctx, conn.PeerCert)
		if err != nil || !ok {
			return "client certificate has none of the accepted subject alternative names", err
		}
	}
	return "", nil
}

// subjectAltNamesMatch applies the validation context's SAN matchers: with any configured, a
// certificate is accepted only when one of its SANs (of the matcher's type) matches one.
func subjectAltNamesMatch(ctx *tlsv3.DownstreamTlsContext, cert *Cert) (bool, error) {
	common := ctx.GetCommonTlsContext()
	vc := common.GetValidationContext()
	if vc == nil {
		vc = common.GetCombinedValidationContext().GetDefaultValidationContext()
	}
	typed := vc.GetMatchTypedSubjectAltNames()
	untyped := vc.GetMatchSubjectAltNames()
	if len(typed) == 0 && len(untyped) == 0 {
		return true, nil
	}
	all := append([]string{cert.URISAN}, cert.DNSSANs...)
	for _, m := range typed {
		var candidates []string
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_URI:
			candidates = []string{cert.URISAN}
		case tlsv3.SubjectAltNameMatcher_DNS:
			candidates = cert.DNSSANs
		case tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED:
			candidates = all
		}
		for _, c := range candidates {
			if c == "" {
				continue
			}
			ok, err := MatchString(m.GetMatcher(), c)
			if err != nil || ok {
				return ok, err
			}
		}
	}
	for _, m := range untyped {
		for _, c := range all {
			if c == "" {
				continue
			}
			ok, err := MatchString(m, c)
			if err != nil || ok {
				return ok, err
			}
		}
	}
	return false, nil
}

func anyTo(a *anypb.Any, m proto.Message) error {
	if a == nil {
		return fmt.Errorf("missing typed config for %T", m)
	}
	return a.UnmarshalTo(m)
}

func httpConnectionManager(fc *listenerv3.FilterChain) (*hcmv3.HttpConnectionManager, error) {
	for _, f := range fc.GetFilters() {
		if f.GetTypedConfig().GetTypeUrl() == typeURL(&hcmv3.HttpConnectionManager{}) {
			var h hcmv3.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&h); err != nil {
				return nil, err
			}
			return &h, nil
		}
	}
	return nil, fmt.Errorf("no HTTP connection manager")
}

// prepareRequest does what the connection manager does before the first HTTP filter: port
// stripping on Host, path normalisation, X-Forwarded-For and the trusted client address,
// and X-Forwarded-Client-Cert sanitising.
func prepareRequest(h *hcmv3.HttpConnectionManager, conn Conn, s *Stream) (int, string) {
	if a, ok := s.Headers.Get(":authority"); ok {
		if hostPart, port, found := splitHostPort(a); found {
			if h.GetStripAnyHostPort() || (h.GetStripMatchingHostPort() && port == strconv.Itoa(conn.Port)) {
				s.Headers.Set(":authority", hostPart)
			}
		}
	}
	// Envoy serves only paths that start with '/' at this layer (source/common/http/
	// conn_manager_impl.cc decodeHeaders: 404 for an absolute or missing path).
	if p := s.Path(); !strings.HasPrefix(p, "/") {
		return 404, "path does not start with /"
	}
	switch p, action, why := normalizeRequestPath(h, s.Path()); action {
	case pathReject:
		return 400, why
	case pathRedirect:
		s.Headers.Set(":path", p)
		return 307, "redirect to the path with unescaped slashes: " + p
	default:
		s.Headers.Set(":path", p)
	}

	// The trusted client address (source/common/http/conn_manager_utility.cc
	// mutateRequestHeaders): with use_remote_address and N trusted hops it is the address
	// N-1 entries from the right of the X-Forwarded-For the client side sent (before this
	// proxy appends its peer); when there is none, or it does not parse, it is the
	// connection's peer. Without use_remote_address the default detection reads the entry
	// N from the right (the XFF original IP detection extension).
	xff, hasXFF := s.Headers.Get("x-forwarded-for")
	useRemote := h.GetUseRemoteAddress().GetValue()
	s.RemoteIP = conn.DirectRemoteIP
	hops := int(h.GetXffNumTrustedHops())
	switch {
	case useRemote && hops > 0:
		if ip, ok := lastAddressFromXFF(xff, hasXFF, hops-1); ok {
			s.RemoteIP = ip
		}
	case !useRemote:
		if ip, ok := lastAddressFromXFF(xff, hasXFF, hops); ok {
			s.RemoteIP = ip
		}
	}
	if useRemote && !h.GetSkipXffAppend() {
		// Envoy appends with "," and leaves what was there as it was (Utility::appendXff).
		if hasXFF && xff != "" {
			s.Headers.Set("x-forwarded-for", xff+","+conn.DirectRemoteIP.String())
		} else {
			s.Headers.Set("x-forwarded-for", conn.DirectRemoteIP.String())
		}
	}

	switch h.GetForwardClientCertDetails() {
	case hcmv3.HttpConnectionManager_SANITIZE:
		s.Headers.Del("x-forwarded-client-cert")
	case hcmv3.HttpConnectionManager_SANITIZE_SET:
		s.Headers.Del("x-forwarded-client-cert")
		if c := conn.PeerCert; c != nil {
			s.Headers.Set("x-forwarded-client-cert", xfcc(c, h.GetSetCurrentClientCertDetails()))
		}
	}
	return 0, ""
}

func xfcc(c *Cert, d *hcmv3.HttpConnectionManager_SetCurrentClientCertDetails) string {
	parts := []string{"Hash=" + c.Fingerprint256}
	if d.GetSubject().GetValue() {
		parts = append(parts, `Subject="`+c.Subject+`"`)
	}
	if d.GetUri() && c.URISAN != "" {
		parts = append(parts, "URI="+c.URISAN)
	}
	if d.GetDns() {
		for _, n := range c.DNSSANs {
			parts = append(parts, "DNS="+n)
		}
	}
	return strings.Join(parts, ";")
}

func splitHostPort(a string) (string, string, bool) {
	i := strings.LastIndexByte(a, ':')
	if i < 0 || strings.HasSuffix(a, "]") {
		return a, "", false
	}
	return a[:i], a[i+1:], true
}
