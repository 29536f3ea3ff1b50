package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Expectations is the content of <case>.expect.yaml. docs/verification.md describes the
// format for users; the field comments here say what each field does in the model.
type Expectations struct {
	// Defaults are merged into every request (request fields win).
	Defaults Request   `json:"defaults,omitempty"`
	Requests []Request `json:"requests"`
}

// Request is one client request and what it must get.
type Request struct {
	Name string `json:"name"`

	// Host is the Host header, with or without ":port".
	Host string `json:"host,omitempty"`
	// Port is the gateway port the client connects to; default: 443 if a Gateway server
	// listens there, else the first server port.
	Port int `json:"port,omitempty"`
	// SNI sent in the TLS handshake; default: Host without port. "-" sends none.
	SNI    string `json:"sni,omitempty"`
	Method string `json:"method,omitempty"`
	// Path including a query string.
	Path string `json:"path,omitempty"`
	// Headers the client sends (also forged ones the gateway must overwrite).
	Headers map[string]string `json:"headers,omitempty"`
	// ClientAddress is the address the gateway sees the connection from.
	ClientAddress string `json:"clientAddress,omitempty"`
	// ClientCert is the certificate the client presents, if any.
	ClientCert *ClientCert `json:"clientCert,omitempty"`
	// NoClientCert sends no certificate even when the defaults have one.
	NoClientCert bool `json:"noClientCert,omitempty"`
	// Token is a JWT the client sends.
	Token *TokenSpec `json:"token,omitempty"`
	// From makes this an in-mesh call straight to a workload's sidecar, not via the gateway.
	From *InMeshCaller `json:"from,omitempty"`
	// ExtAuthz is each authorizer's answer by extension provider name: allow or deny
	// (default allow).
	ExtAuthz map[string]string `json:"extAuthz,omitempty"`

	// Expect is the outcome: "<service>.<namespace>:<port>" (routed to and admitted by that
	// backend), an HTTP status (401, 403, 404, ...) or "tlsRejected".
	Expect string `json:"expect"`
	// ExtAuthzCalled, when set, lists the providers that must be asked, in order; [] means
	// no authorizer may be asked.
	ExtAuthzCalled *[]string `json:"extAuthzCalled,omitempty"`
	// UpstreamHeaders are headers the backend must receive with these values; "" means the
	// header must be absent.
	UpstreamHeaders map[string]string `json:"upstreamHeaders,omitempty"`
	// DecidedAt, when set, is where a refusal must happen: gateway or sidecar.
	DecidedAt string `json:"decidedAt,omitempty"`
	// KnownFailure marks an expectation the generated configuration does not meet yet, with
	// the reason. It still runs and is reported; it fails once it passes, so the mark is
	// removed together with the fix.
	KnownFailure string `json:"knownFailure,omitempty"`
}

// ClientCert describes a client certificate.
type ClientCert struct {
	Subject     string   `json:"subject,omitempty"`
	URISAN      string   `json:"uriSan,omitempty"`
	DNSSANs     []string `json:"dnsSans,omitempty"`
	Issuer      string   `json:"issuer,omitempty"`
	Fingerprint string   `json:"fingerprint,omitempty"`
	// Untrusted: signed by a CA the gateway does not trust.
	Untrusted bool `json:"untrusted,omitempty"`
}

// TokenSpec describes a JWT and where the client puts it.
type TokenSpec struct {
	Issuer string         `json:"issuer"`
	Claims map[string]any `json:"claims,omitempty"`
	// Invalid: the signature (or expiry) does not verify.
	Invalid bool `json:"invalid,omitempty"`
	// Where the token goes; default "Authorization: Bearer <token>". Set one of them.
	Header string `json:"header,omitempty"`
	// Prefix before the token in Header (for example "Bearer "); only with Header.
	Prefix string `json:"prefix,omitempty"`
	Param  string `json:"param,omitempty"`
	Cookie string `json:"cookie,omitempty"`
}

// InMeshCaller is a workload calling a backend directly.
type InMeshCaller struct {
	// Principal is the caller's identity, e.g. cluster.local/ns/monitoring/sa/prometheus;
	// empty for a caller without mTLS (plaintext).
	Principal string `json:"principal,omitempty"`
	// To is the backend "<service>.<namespace>:<port>".
	To string `json:"to"`
	// Address is the caller's pod address.
	Address string `json:"address,omitempty"`
}

// LoadExpectations reads and checks an expectations file strictly: unknown fields are errors.
func LoadExpectations(path string) (*Expectations, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var e Expectations
	if err := yaml.UnmarshalStrict(data, &e); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(e.Requests) == 0 {
		return nil, fmt.Errorf("%s: requests: empty; add at least one request", path)
	}
	seen := map[string]bool{}
	for i := range e.Requests {
		r := &e.Requests[i]
		r.mergeDefaults(e.Defaults)
		where := fmt.Sprintf("%s: requests[%d]", path, i)
		if r.Name == "" {
			return nil, fmt.Errorf("%s.name: empty; name the request after what it shows", where)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("%s.name: %q used twice; names must be unique", where, r.Name)
		}
		seen[r.Name] = true
		if _, err := ParseOutcome(r.Expect); err != nil {
			return nil, fmt.Errorf("%s.expect: %w", where, err)
		}
		if r.From != nil {
			if _, _, _, err := ParseBackend(r.From.To); err != nil {
				return nil, fmt.Errorf("%s.from.to: %w", where, err)
			}
		}
		if r.DecidedAt != "" && r.DecidedAt != "gateway" && r.DecidedAt != "sidecar" {
			return nil, fmt.Errorf("%s.decidedAt: %q; use gateway or sidecar", where, r.DecidedAt)
		}
		for p, a := range r.ExtAuthz {
			if a != "allow" && a != "deny" {
				return nil, fmt.Errorf("%s.extAuthz.%s: %q; use allow or deny", where, p, a)
			}
		}
		if t := r.Token; t != nil {
			n := 0
			for _, s := range []string{t.Header, t.Param, t.Cookie} {
				if s != "" {
					n++
				}
			}
			if n > 1 {
				return nil, fmt.Errorf("%s.token: set at most one of header, param and cookie", where)
			}
			if t.Prefix != "" && t.Header == "" {
				return nil, fmt.Errorf("%s.token.prefix: only valid with token.header", where)
			}
		}
	}
	return &e, nil
}

func (r *Request) mergeDefaults(d Request) {
	if r.Host == "" {
		r.Host = d.Host
	}
	if r.Port == 0 {
		r.Port = d.Port
	}
	if r.Method == "" {
		r.Method = d.Method
	}
	if r.Method == "" {
		r.Method = "GET"
	}
	if r.Path == "" {
		r.Path = d.Path
	}
	if r.Path == "" {
		r.Path = "/"
	}
	if r.ClientAddress == "" {
		r.ClientAddress = d.ClientAddress
	}
	if r.ClientCert == nil && !r.NoClientCert {
		r.ClientCert = d.ClientCert
	}
	if r.Token == nil {
		r.Token = d.Token
	}
	if len(d.Headers) > 0 {
		h := map[string]string{}
		for k, v := range d.Headers {
			h[k] = v
		}
		for k, v := range r.Headers {
			h[k] = v
		}
		r.Headers = h
	}
	if len(d.ExtAuthz) > 0 && r.ExtAuthz == nil {
		r.ExtAuthz = d.ExtAuthz
	}
}

// Outcome is a parsed expect value or an observed result.
type Outcome struct {
	// Backend is "<service>.<namespace>:<port>" when the request reached a backend.
	Backend string
	// Status is the HTTP status of a refusal, or -1 for a TLS rejection.
	Status int
}

func (o Outcome) String() string {
	switch {
	case o.Backend != "":
		return o.Backend
	case o.Status == -1:
		return "tlsRejected"
	}
	return strconv.Itoa(o.Status)
}

// ParseOutcome reads an expect value.
func ParseOutcome(s string) (Outcome, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Outcome{}, fmt.Errorf("empty; use <service>.<namespace>:<port>, an HTTP status or tlsRejected")
	case s == "tlsRejected":
		return Outcome{Status: -1}, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 200 || n > 599 {
			return Outcome{}, fmt.Errorf("%d is not an HTTP status", n)
		}
		return Outcome{Status: n}, nil
	}
	if _, _, _, err := ParseBackend(s); err != nil {
		return Outcome{}, err
	}
	return Outcome{Backend: s}, nil
}

// ParseBackend splits "<service>.<namespace>:<port>".
func ParseBackend(s string) (svc, ns string, port int, err error) {
	hostPart, p, ok := strings.Cut(s, ":")
	svc, ns, ok2 := strings.Cut(hostPart, ".")
	port, perr := strconv.Atoi(p)
	if !ok || !ok2 || perr != nil || svc == "" || ns == "" || strings.Contains(ns, ".") {
		return "", "", 0, fmt.Errorf("%q: want <service>.<namespace>:<port>, for example httpbin.shop:8000", s)
	}
	return svc, ns, port, nil
}
