package harness

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/apirule-operator/apirule-operator/tests/istio/envoyeval"
)

// Result is what happened to one request end to end.
type Result struct {
	Outcome Outcome
	// DecidedAt is where a refusal happened ("gateway" or "sidecar"); "" when routed.
	DecidedAt string
	// ExtAuthzCalled are the extension providers asked, in order.
	ExtAuthzCalled []string
	// Upstream is what the backend received, nil when refused.
	Upstream envoyeval.Headers
	// Trace says step by step what each proxy did, for failure messages.
	Trace []string
	// Gateway is what the gateway did, nil for in-mesh calls.
	Gateway *envoyeval.Outcome
}

// Run sends r through the modelled mesh: client -> ingress gateway -> backend sidecar, or
// straight to the sidecar for an in-mesh caller.
func (e *Env) Run(r Request) (Result, error) {
	var called []string
	res, err := e.run(r, &called)
	res.ExtAuthzCalled = called
	return res, err
}

// requestHeaders builds what the client sends: pseudo-headers, headers and the token.
func requestHeaders(r Request) (envoyeval.Headers, envoyeval.Tokens) {
	tokens := envoyeval.Tokens{}
	headers := envoyeval.Headers{}
	for k, v := range r.Headers {
		headers.Set(k, v)
	}
	headers.Set(":method", r.Method)
	headers.Set(":path", r.Path)
	if r.Host != "" {
		headers.Set(":authority", r.Host)
	}
	if t := r.Token; t != nil {
		raw := "token-for-" + strings.ReplaceAll(t.Issuer, "/", "_")
		claims := map[string]any{}
		for k, v := range t.Claims {
			claims[k] = v
		}
		if _, ok := claims["sub"]; !ok {
			claims["sub"] = "user-1"
		}
		tokens[raw] = envoyeval.Token{Issuer: t.Issuer, Claims: claims, Invalid: t.Invalid}
		switch {
		case t.Param != "":
			sep := "?"
			if strings.Contains(r.Path, "?") {
				sep = "&"
			}
			headers.Set(":path", r.Path+sep+t.Param+"="+raw)
		case t.Cookie != "":
			headers.Add("cookie", t.Cookie+"="+raw)
		case t.Header != "":
			headers.Set(t.Header, t.Prefix+raw)
		default:
			headers.Set("authorization", "Bearer "+raw)
		}
	}
	return headers, tokens
}

// gatewayConn is the client's connection to the gateway.
func (e *Env) gatewayConn(r Request) (envoyeval.Conn, error) {
	port := r.Port
	if port == 0 {
		port = e.defaultGatewayPort()
	}
	addr := r.ClientAddress
	if addr == "" {
		addr = DefaultClientAddress
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return envoyeval.Conn{}, fmt.Errorf("clientAddress: %w", err)
	}
	conn := envoyeval.Conn{Port: port, DirectRemoteIP: ip, TLS: e.GatewayServers[port]}
	if conn.TLS {
		conn.ALPN = []string{"h2", "http/1.1"}
		switch r.SNI {
		case "":
			conn.SNI, _, _ = strings.Cut(r.Host, ":")
		case "-":
		default:
			conn.SNI = r.SNI
		}
		if c := r.ClientCert; c != nil {
			conn.PeerCert = &envoyeval.Cert{Subject: c.Subject, URISAN: c.URISAN, DNSSANs: c.DNSSANs, Issuer: c.Issuer, Fingerprint256: c.Fingerprint, Untrusted: c.Untrusted}
		}
	}
	return conn, nil
}

func (e *Env) run(r Request, called *[]string) (Result, error) {
	var res Result
	headers, tokens := requestHeaders(r)
	authz := func(cluster string, _ *envoyeval.Stream) bool {
		provider, ok := e.Authorizers[cluster]
		if !ok {
			provider = cluster
		}
		*called = append(*called, provider)
		return r.ExtAuthz[provider] != "deny"
	}

	if r.From != nil {
		svc, ns, port, _ := ParseBackend(r.From.To)
		if r.Host == "" {
			headers.Set(":authority", fmt.Sprintf("%s.%s.svc.cluster.local:%d", svc, ns, port))
		}
		addr := r.From.Address
		if addr == "" {
			addr = DefaultInMeshCallerIP
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			return res, fmt.Errorf("from.address: %w", err)
		}
		conn := envoyeval.Conn{DirectRemoteIP: ip, PeerPrincipal: r.From.Principal}
		// Istio's inbound chains tell HTTP from TCP by ALPN: the mTLS client announces
		// istio-http/1.1, a plaintext HTTP/1.1 client is detected as http/1.1.
		conn.ALPN = []string{"http/1.1"}
		if r.From.Principal != "" {
			conn.TLS, conn.ALPN = true, []string{"istio-http/1.1", "istio", "http/1.1"}
		}
		return e.toSidecar(res, svc, ns, port, conn, headers, tokens, authz)
	}

	conn, err := e.gatewayConn(r)
	if err != nil {
		return res, err
	}
	port := conn.Port
	l := e.Gateway.ListenerForPort(port)
	if l == nil {
		res.Outcome, res.DecidedAt = Outcome{Status: envoyeval.StatusTLSRejected}, "gateway"
		res.Trace = append(res.Trace, fmt.Sprintf("gateway: no listener on port %d (connection refused)", port))
		return res, nil
	}
	out, err := e.Gateway.Handle(l, conn, headers, tokens, authz)
	if err != nil {
		return res, fmt.Errorf("gateway listener %s: %w", l.GetName(), err)
	}
	res.Gateway = &out
	res.Trace = append(res.Trace, fmt.Sprintf("gateway %s: status=%d reason=%q vhost=%q route=%q cluster=%q", l.GetName(), out.Status, out.Reason, out.VirtualHost, out.RouteName, out.Cluster))
	if out.Status != 0 {
		res.Outcome, res.DecidedAt = Outcome{Status: out.Status}, "gateway"
		return res, nil
	}
	svc, ns, svcPort, ok := parseOutboundCluster(out.Cluster)
	if !ok {
		return res, fmt.Errorf("gateway routed to cluster %q, which is not a Service of the input", out.Cluster)
	}
	gwIP := netip.MustParseAddr(GatewayPodIP)
	sidecarConn := envoyeval.Conn{
		DirectRemoteIP: gwIP, TLS: true, ALPN: []string{"istio-http/1.1", "istio", "http/1.1"},
		PeerPrincipal: GatewayPrincipal(e.Mesh.GetTrustDomain()),
	}
	return e.toSidecar(res, svc, ns, svcPort, sidecarConn, out.Upstream.Headers, tokens, authz)
}

func (e *Env) toSidecar(res Result, svc, ns string, port int, conn envoyeval.Conn, headers envoyeval.Headers, tokens envoyeval.Tokens, authz envoyeval.ExtAuthz) (Result, error) {
	b, ok := e.Backends[svc+"."+ns]
	if !ok {
		return res, fmt.Errorf("no Service %s.%s in the input", svc, ns)
	}
	target, ok := b.Ports[port]
	if !ok {
		return res, fmt.Errorf("Service %s.%s has no port %d", svc, ns, port)
	}
	conn.Port = target
	l := b.Proxy.ListenerByName("virtualInbound")
	if l == nil {
		return res, fmt.Errorf("sidecar of %s.%s has no virtualInbound listener", svc, ns)
	}
	out, err := b.Proxy.Handle(l, conn, headers, tokens, authz)
	if err != nil {
		return res, fmt.Errorf("sidecar %s.%s: %w", svc, ns, err)
	}
	res.Trace = append(res.Trace, fmt.Sprintf("sidecar %s.%s port %d: status=%d reason=%q cluster=%q", svc, ns, target, out.Status, out.Reason, out.Cluster))
	if out.Status != 0 {
		res.Outcome, res.DecidedAt = Outcome{Status: out.Status}, "sidecar"
		return res, nil
	}
	res.Outcome = Outcome{Backend: fmt.Sprintf("%s.%s:%d", svc, ns, port)}
	res.Upstream = out.Upstream.Headers
	return res, nil
}

func (e *Env) defaultGatewayPort() int {
	if _, ok := e.GatewayServers[443]; ok {
		return 443
	}
	best := 0
	for p := range e.GatewayServers {
		if best == 0 || p < best {
			best = p
		}
	}
	return best
}

// parseOutboundCluster reads Istio's "outbound|<port>|<subset>|<svc>.<ns>.svc.<domain>".
func parseOutboundCluster(c string) (svc, ns string, port int, ok bool) {
	parts := strings.Split(c, "|")
	if len(parts) != 4 || parts[0] != "outbound" {
		return "", "", 0, false
	}
	port, err := strconv.Atoi(parts[1])
	if err != nil {
		return "", "", 0, false
	}
	labels := strings.Split(parts[3], ".")
	if len(labels) < 3 || labels[2] != "svc" {
		return "", "", 0, false
	}
	return labels[0], labels[1], port, true
}

// Check compares a result with a request's expectations and returns every mismatch.
func Check(r Request, res Result) []string {
	var bad []string
	want, _ := ParseOutcome(r.Expect)
	if want != res.Outcome {
		bad = append(bad, fmt.Sprintf("outcome: got %s, want %s", res.Outcome, want))
	}
	if r.DecidedAt != "" && res.DecidedAt != r.DecidedAt {
		bad = append(bad, fmt.Sprintf("decided at: got %q, want %q", res.DecidedAt, r.DecidedAt))
	}
	if r.ExtAuthzCalled != nil && strings.Join(*r.ExtAuthzCalled, ",") != strings.Join(res.ExtAuthzCalled, ",") {
		bad = append(bad, fmt.Sprintf("ext_authz called: got %v, want %v", res.ExtAuthzCalled, *r.ExtAuthzCalled))
	}
	names := make([]string, 0, len(r.UpstreamHeaders))
	for name := range r.UpstreamHeaders {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		v := r.UpstreamHeaders[name]
		got, present := res.Upstream.Get(name)
		switch {
		case res.Upstream == nil:
			bad = append(bad, fmt.Sprintf("upstream header %s: request never reached the backend", name))
		case v == "" && present:
			bad = append(bad, fmt.Sprintf("upstream header %s: got %q, want it absent", name, got))
		case v != "" && got != v:
			bad = append(bad, fmt.Sprintf("upstream header %s: got %q (present=%v), want %q", name, got, present, v))
		}
	}
	return bad
}
