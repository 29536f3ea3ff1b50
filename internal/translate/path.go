package translate

import (
	"regexp"
	"strings"

	networkingv1 "istio.io/api/networking/v1"

	"github.com/apirule-operator/apirule-operator/internal/model"
)

// uriMatch returns the VirtualService match for an APIRule path: a prefix for /*, an exact
// match for a path without operators, otherwise an anchored regex in which every literal
// character is escaped.
func uriMatch(path string) *networkingv1.StringMatch {
	if path == model.AnyPath {
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/"}}
	}
	if !strings.Contains(path, model.OneSegment) && !strings.Contains(path, model.AnyRest) && !strings.Contains(path, "%") {
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: path}}
	}
	var b strings.Builder
	b.WriteString("^")
	for i, segment := range strings.Split(path, "/") {
		if i > 0 {
			b.WriteString("/")
		}
		switch segment {
		case model.OneSegment:
			b.WriteString(model.SegmentClass + "+")
		case model.AnyRest:
			b.WriteString(model.RestClass + "*")
		default:
			b.WriteString(literalRegex(segment))
		}
	}
	b.WriteString("$")
	return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: b.String()}}
}

// policyPath returns the AuthorizationPolicy path for an APIRule path. Istio evaluates {*} and
// {**} in policy paths as URI templates, with the same characters as the route's regexes. /*
// stays as written: Istio reads a trailing * as a prefix, here "/", which matches every path
// exactly as the route's prefix match does. The template /{**} would not: its character class
// leaves out '[' and ']' (and '*' before Envoy 1.35), which the gateway's normalization lets
// through, so a client could reach a /* rule past its IP restriction with such a path.
func policyPath(path string) string {
	return path
}

// literalRegex matches a literal segment, its percent-escapes in either hex case: Envoy keeps
// the escapes as the client wrote them, and %c3%a9 names the same byte as %C3%A9.
func literalRegex(segment string) string {
	var b strings.Builder
	for i := 0; i < len(segment); i++ {
		if segment[i] == '%' && i+2 < len(segment) {
			b.WriteByte('%')
			for _, c := range []byte{segment[i+1], segment[i+2]} {
				if lower, upper := strings.ToLower(string(c)), strings.ToUpper(string(c)); lower != upper {
					b.WriteString("[" + upper + lower + "]")
				} else {
					b.WriteByte(c)
				}
			}
			i += 2
			continue
		}
		b.WriteString(regexp.QuoteMeta(segment[i : i+1]))
	}
	return b.String()
}
