package validate

import (
	"fmt"
	"strings"
)

// The APIRule path grammar (see the Rule.Path documentation): "/*" matches every path;
// otherwise a path is "/" followed by segments separated by "/", each a literal, "{*}" (exactly
// one non-empty segment) or, as the last segment only, "{**}" (any rest, possibly empty,
// including "/").
const (
	anyPath    = "/*"
	oneSegment = "{*}"
	anyRest    = "{**}"
)

// literalChars are the characters a literal segment may hold besides %XX escapes: the
// characters Envoy's URI template matcher accepts as literals, which Istio uses for policy
// paths. They are also the characters {*} and {**} match, so a literal segment is always one
// of the strings {*} matches.
const literalChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()+,;=:@"

type segmentKind int

const (
	literal segmentKind = iota
	// one is {*}: one non-empty segment.
	one
	// rest is {**}: the rest of the path, possibly empty, including "/".
	rest
)

type segment struct {
	kind segmentKind
	text string
}

// pathPattern is a parsed APIRule path.
type pathPattern struct {
	// everything is "/*".
	everything bool
	segments   []segment
}

// parsePath parses an APIRule path, refusing what Istio's AuthorizationPolicy validation or
// Envoy's URI template matcher would refuse. The CRD's CEL rules refuse the same paths when
// the API server validates; this parser refuses them offline too (apirulectl) and gives the
// shadowing check a structure to compare.
func parsePath(path string) (pathPattern, error) {
	if path == anyPath {
		return pathPattern{everything: true}, nil
	}
	if !strings.HasPrefix(path, "/") {
		return pathPattern{}, fmt.Errorf("must start with '/' (or be /* for every path)")
	}
	parts := strings.Split(path[1:], "/")
	out := pathPattern{segments: make([]segment, 0, len(parts))}
	for i, part := range parts {
		switch {
		case part == oneSegment:
			out.segments = append(out.segments, segment{kind: one})
		case part == anyRest:
			if i != len(parts)-1 {
				return pathPattern{}, fmt.Errorf("{**} may appear only as the last segment, for example /api/{**}")
			}
			out.segments = append(out.segments, segment{kind: rest})
		case part == "" && i != len(parts)-1:
			return pathPattern{}, fmt.Errorf("must not contain an empty segment ('//')")
		case part == "." || part == "..":
			return pathPattern{}, fmt.Errorf("must not contain '.' or '..' segments: the gateway normalizes them away, so the rule would never match")
		default:
			if err := checkLiteral(part); err != nil {
				return pathPattern{}, err
			}
			out.segments = append(out.segments, segment{kind: literal, text: part})
		}
	}
	return out, nil
}

func checkLiteral(part string) error {
	for i := 0; i < len(part); i++ {
		c := part[i]
		switch {
		case c == '%':
			if i+2 >= len(part) || !isHex(part[i+1]) || !isHex(part[i+2]) {
				return fmt.Errorf("'%%' must start a percent-encoded byte such as %%2F")
			}
			i += 2
		case c == '*' || c == '{' || c == '}':
			return fmt.Errorf("'%c' is allowed only as {*}, {**} or the whole path /*; segment %q mixes it with other characters", c, part)
		case !strings.ContainsRune(literalChars, rune(c)):
			return fmt.Errorf("character %q is not allowed in a path; Istio's path templates accept letters, digits, %%XX escapes and -._~!$&'()+,;=:@", c)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// matchesEverything says whether the path matches every request path the gateway routes by
// pattern: /* and /{**}.
func (p pathPattern) matchesEverything() bool {
	return p.everything || (len(p.segments) == 1 && p.segments[0].kind == rest)
}

// covers says whether every request path that q matches is also matched by p: when p belongs
// to an earlier rule with the same method, the later rule q is never reached.
//
// "/*" (a prefix match on "/") matches every path, including paths with characters outside
// the template character class; "/{**}" does not, so only "/*" covers "/*".
func (p pathPattern) covers(q pathPattern) bool {
	switch {
	case p.everything:
		return true
	case q.everything:
		return false
	}
	return coversSegments(p.segments, q.segments)
}

func coversSegments(p, q []segment) bool {
	if len(p) == 0 {
		return len(q) == 0
	}
	switch p[0].kind {
	case rest:
		// "/{**}" matches "/" followed by anything. What is left of q is "/" followed by
		// its remaining segments whenever q has segments left; with none left, q ends
		// where p still needs a "/".
		return len(q) > 0
	case one:
		// {*} matches every literal (literals are non-empty strings of its characters)
		// and every {*}, but not {**}, which may be empty or span segments. An empty
		// literal (a trailing "/") is not matched.
		if len(q) == 0 || q[0].kind == rest || (q[0].kind == literal && q[0].text == "") {
			return false
		}
		return coversSegments(p[1:], q[1:])
	default:
		if len(q) == 0 || q[0].kind != literal || q[0].text != p[0].text {
			return false
		}
		return coversSegments(p[1:], q[1:])
	}
}
