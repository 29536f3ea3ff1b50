package translate

import (
	"regexp"
	"strings"

	networkingv1 "istio.io/api/networking/v1"
)

const (
	// anyPath is the APIRule path that matches every request path.
	anyPath = "/*"
	// oneSegment and anyRest are the APIRule path operators.
	oneSegment = "{*}"
	anyRest    = "{**}"

	// segmentChars are the characters Envoy's URI template matcher accepts inside a {*} or
	// {**} variable (with '/' added for {**}). The VirtualService regex uses the same class,
	// so a path routed by a rule is exactly a path that rule's AuthorizationPolicy template
	// matches; a request with other characters in that position matches neither.
	segmentChars = `[A-Za-z0-9\-._~%!$&'()+,;:@=]`
	restChars    = `[A-Za-z0-9\-._~%!$&'()+,;:@=/]`
)

// uriMatch returns the VirtualService match for an APIRule path: a prefix for /*, an exact
// match for a path without operators, otherwise an anchored regex in which every literal
// character is escaped.
func uriMatch(path string) *networkingv1.StringMatch {
	if path == anyPath {
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/"}}
	}
	if !strings.Contains(path, oneSegment) && !strings.Contains(path, anyRest) {
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: path}}
	}
	var b strings.Builder
	b.WriteString("^")
	for i, segment := range strings.Split(path, "/") {
		if i > 0 {
			b.WriteString("/")
		}
		switch segment {
		case oneSegment:
			b.WriteString(segmentChars + "+")
		case anyRest:
			b.WriteString(restChars + "*")
		default:
			b.WriteString(regexp.QuoteMeta(segment))
		}
	}
	b.WriteString("$")
	return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: b.String()}}
}

// policyPath returns the AuthorizationPolicy path for an APIRule path. Istio evaluates {*} and
// {**} in policy paths as URI templates, so only /* needs rewriting.
func policyPath(path string) string {
	if path == anyPath {
		return "/" + anyRest
	}
	return path
}
