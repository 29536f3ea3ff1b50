package envoyeval

import (
	"net/netip"
	"sort"
	"strings"

	"google.golang.org/protobuf/types/known/structpb"
)

// Cert is the client certificate presented on a TLS connection, reduced to the fields Envoy
// exposes to RBAC and to header formatters.
type Cert struct {
	Subject string
	URISAN  string
	DNSSANs []string
	Issuer  string
	// Untrusted marks a certificate the gateway's CA bundle does not accept.
	Untrusted      bool
	Fingerprint256 string
}

// Conn is what one proxy knows about the downstream connection.
type Conn struct {
	// Port is the local port the connection arrived on.
	Port int
	// DirectRemoteIP is the peer address of the connection (Envoy's direct_remote_ip).
	DirectRemoteIP netip.Addr
	// TLS is true when the client speaks TLS; SNI and ALPN are only set then.
	TLS  bool
	SNI  string
	ALPN []string
	// PeerCert is the certificate the client presented, nil for none.
	PeerCert *Cert
	// PeerPrincipal is the SPIFFE identity of an Istio mTLS peer without the spiffe:// prefix,
	// for example cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account.
	PeerPrincipal string
}

// Headers holds request headers keyed by lower-case name, values in arrival order.
// Pseudo-headers (:authority, :method, :path) are kept here too, as Envoy does.
type Headers map[string][]string

// Get returns the values joined by "," (how Envoy's header matchers see repeated headers)
// and whether the header is present.
func (h Headers) Get(name string) (string, bool) {
	v, ok := h[strings.ToLower(name)]
	if !ok {
		return "", false
	}
	return strings.Join(v, ","), true
}

// Set replaces every value of name.
func (h Headers) Set(name, value string) { h[strings.ToLower(name)] = []string{value} }

// Add appends a value.
func (h Headers) Add(name, value string) {
	k := strings.ToLower(name)
	h[k] = append(h[k], value)
}

// Del removes name.
func (h Headers) Del(name string) { delete(h, strings.ToLower(name)) }

// Clone copies h.
func (h Headers) Clone() Headers {
	out := make(Headers, len(h))
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// Names returns the header names in sorted order.
func (h Headers) Names() []string {
	names := make([]string, 0, len(h))
	for k := range h {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Stream is one HTTP request as a proxy sees it while its filters run.
type Stream struct {
	Conn
	Headers Headers
	// RemoteIP is Envoy's trusted client address (remote_ip), derived from the connection and
	// X-Forwarded-For by the connection manager.
	RemoteIP netip.Addr
	// Metadata is the dynamic metadata that filters write, by filter namespace.
	Metadata map[string]*structpb.Struct
	// FilterState holds the string filter-state objects Istio's RBAC principals read.
	FilterState map[string]string
}

// Path returns the :path header.
func (s *Stream) Path() string { p, _ := s.Headers.Get(":path"); return p }

// PathWithoutQuery returns :path without its query string and fragment, which is what
// Envoy's url_path matchers and route path matchers look at.
func (s *Stream) PathWithoutQuery() string {
	p := s.Path()
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	return p
}

// SetMetadata writes one key of a filter namespace's dynamic metadata.
func (s *Stream) SetMetadata(namespace, key string, v *structpb.Value) {
	if s.Metadata == nil {
		s.Metadata = map[string]*structpb.Struct{}
	}
	st := s.Metadata[namespace]
	if st == nil {
		st = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		s.Metadata[namespace] = st
	}
	st.Fields[key] = v
}
