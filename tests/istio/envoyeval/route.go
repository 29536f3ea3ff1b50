package envoyeval

import (
	"fmt"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// SelectVirtualHost picks the virtual host for a Host header the way Envoy does: an exact
// domain first, then the longest suffix wildcard ("*.example.com"), then the longest prefix
// wildcard ("example.*"), then "*". Matching ignores case.
//
// With ignore_port_in_host_matching (Istio sets it on gateway and sidecar route
// configurations) a ":port" in the Host header is not part of the comparison; the header
// itself keeps the port, so later filters and the backend still see it.
func SelectVirtualHost(rc *routev3.RouteConfiguration, host string) *routev3.VirtualHost {
	host = strings.ToLower(host)
	if rc.GetIgnorePortInHostMatching() {
		if h, _, found := splitHostPort(host); found {
			host = h
		}
	}
	var bestSuffix, bestPrefix, catchAll *routev3.VirtualHost
	suffixLen, prefixLen := -1, -1
	for _, vh := range rc.GetVirtualHosts() {
		for _, d := range vh.GetDomains() {
			d = strings.ToLower(d)
			switch {
			case d == "*":
				if catchAll == nil {
					catchAll = vh
				}
			case d == host:
				return vh
			case strings.HasPrefix(d, "*"):
				// The wildcard must stand for at least one character.
				if sfx := d[1:]; len(host) > len(sfx) && strings.HasSuffix(host, sfx) && len(sfx) > suffixLen {
					bestSuffix, suffixLen = vh, len(sfx)
				}
			case strings.HasSuffix(d, "*"):
				if pfx := d[:len(d)-1]; len(host) > len(pfx) && strings.HasPrefix(host, pfx) && len(pfx) > prefixLen {
					bestPrefix, prefixLen = vh, len(pfx)
				}
			}
		}
	}
	switch {
	case bestSuffix != nil:
		return bestSuffix
	case bestPrefix != nil:
		return bestPrefix
	}
	return catchAll
}

// SelectRoute returns the first route of vh whose match fits the request.
func SelectRoute(vh *routev3.VirtualHost, s *Stream) (*routev3.Route, error) {
	for _, r := range vh.GetRoutes() {
		ok, err := MatchRouteMatch(r.GetMatch(), s)
		if err != nil {
			return nil, fmt.Errorf("route %q: %w", r.GetName(), err)
		}
		if ok {
			return r, nil
		}
	}
	return nil, nil
}

// MatchRouteMatch evaluates a RouteMatch: path specifier, header matchers (this is where
// ":method" lives), query parameters and the TLS/gRPC options Istio leaves unset.
func MatchRouteMatch(m *routev3.RouteMatch, s *Stream) (bool, error) {
	if m == nil {
		return false, fmt.Errorf("route without match")
	}
	path := s.PathWithoutQuery()
	caseSensitive := m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	fold := func(x string) string {
		if caseSensitive {
			return x
		}
		return strings.ToLower(x)
	}
	var ok bool
	var err error
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		ok = strings.HasPrefix(fold(path), fold(p.Prefix))
	case *routev3.RouteMatch_Path:
		ok = fold(path) == fold(p.Path)
	case *routev3.RouteMatch_SafeRegex:
		ok, err = fullMatch(p.SafeRegex.GetRegex(), path)
	case *routev3.RouteMatch_PathSeparatedPrefix:
		pre := fold(p.PathSeparatedPrefix)
		fp := fold(path)
		ok = fp == pre || strings.HasPrefix(fp, pre+"/")
	default:
		return false, fmt.Errorf("path specifier %T is not modelled", p)
	}
	if err != nil || !ok {
		return false, err
	}
	for _, h := range m.GetHeaders() {
		hit, err := MatchHeader(h, s.Headers)
		if err != nil || !hit {
			return false, err
		}
	}
	if len(m.GetQueryParameters()) > 0 {
		q := queryOf(s.Path())
		for _, qm := range m.GetQueryParameters() {
			v, present := "", false
			if q != nil {
				if vs, found := q[qm.GetName()]; found {
					v, present = vs[0], true
				}
			}
			switch {
			case qm.GetPresentMatch():
				if !present {
					return false, nil
				}
			case qm.GetStringMatch() != nil:
				if !present {
					return false, nil
				}
				hit, err := MatchString(qm.GetStringMatch(), v)
				if err != nil || !hit {
					return false, err
				}
			default:
				return false, fmt.Errorf("query parameter matcher on %q is not modelled", qm.GetName())
			}
		}
	}
	if m.GetGrpc() != nil || m.GetTlsContext() != nil || len(m.GetDynamicMetadata()) > 0 || m.GetFilterState() != nil {
		return false, fmt.Errorf("route match options grpc/tls_context/dynamic_metadata/filter_state are not modelled")
	}
	return true, nil
}

// ApplyRequestHeaderMutations applies what the router adds and removes on the way upstream:
// route, then virtual host, then route configuration (so the wider scope wins on overwrite,
// unless most_specific_header_mutations_wins).
func ApplyRequestHeaderMutations(rc *routev3.RouteConfiguration, vh *routev3.VirtualHost, r *routev3.Route, s *Stream) error {
	type level struct {
		add    []*corev3.HeaderValueOption
		remove []string
	}
	levels := []level{
		{r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove()},
		{vh.GetRequestHeadersToAdd(), vh.GetRequestHeadersToRemove()},
		{rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove()},
	}
	if rc.GetMostSpecificHeaderMutationsWins() {
		levels[0], levels[2] = levels[2], levels[0]
	}
	// Values are computed from the request as it arrived at the router.
	before := *s
	before.Headers = s.Headers.Clone()
	for _, l := range levels {
		for _, name := range l.remove {
			s.Headers.Del(name)
		}
		for _, o := range l.add {
			name := o.GetHeader().GetKey()
			value, err := FormatHeaderValue(o.GetHeader().GetValue(), &before)
			if err != nil {
				return fmt.Errorf("header %s: %w", name, err)
			}
			// Envoy drops an added header whose value came out empty, unless keep_empty_value;
			// a header of the same name that the client sent is then left as it was.
			if value == "" && !o.GetKeepEmptyValue() {
				continue
			}
			action := o.GetAppendAction()
			if o.GetAppend() != nil {
				action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
				if o.GetAppend().GetValue() {
					action = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
				}
			}
			_, exists := s.Headers.Get(name)
			switch action {
			case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
				s.Headers.Add(name, value)
			case corev3.HeaderValueOption_ADD_IF_ABSENT:
				if !exists {
					s.Headers.Set(name, value)
				}
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
				s.Headers.Set(name, value)
			case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
				if exists {
					s.Headers.Set(name, value)
				}
			}
		}
	}
	return nil
}

var formatterRE = regexp.MustCompile(`%([A-Z0-9_]+)(\(([^)]*)\))?%`)

// FormatHeaderValue expands the Envoy substitution formatters Istio and our VirtualServices
// use in header values. An unknown formatter is an error; "%%" is a literal percent.
func FormatHeaderValue(tmpl string, s *Stream) (string, error) {
	var firstErr error
	out := formatterRE.ReplaceAllStringFunc(strings.ReplaceAll(tmpl, "%%", "\x00"), func(m string) string {
		sub := formatterRE.FindStringSubmatch(m)
		name, arg := sub[1], sub[3]
		cert := s.PeerCert
		switch name {
		case "REQ":
			// %REQ(A?B)% falls back to B when A is absent; a length suffix is not modelled.
			for _, h := range strings.Split(arg, "?") {
				if v, ok := s.Headers.Get(h); ok {
					return v
				}
			}
			return ""
		case "DOWNSTREAM_PEER_SUBJECT":
			if cert != nil {
				return cert.Subject
			}
			return ""
		case "DOWNSTREAM_PEER_URI_SAN":
			if cert != nil {
				return cert.URISAN
			}
			return ""
		case "DOWNSTREAM_PEER_ISSUER":
			if cert != nil {
				return cert.Issuer
			}
			return ""
		case "DOWNSTREAM_PEER_FINGERPRINT_256":
			if cert != nil {
				return cert.Fingerprint256
			}
			return ""
		case "DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT":
			if s.RemoteIP.IsValid() {
				return s.RemoteIP.String()
			}
			return ""
		case "DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT":
			if s.DirectRemoteIP.IsValid() {
				return s.DirectRemoteIP.String()
			}
			return ""
		case "REQUESTED_SERVER_NAME":
			return s.SNI
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("formatter %s is not modelled", m)
		}
		return ""
	})
	return strings.ReplaceAll(out, "\x00", "%"), firstErr
}
