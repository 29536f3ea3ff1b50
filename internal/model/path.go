package model

import (
	"fmt"
	"strings"
)

// The APIRule path grammar (see the Rule.Path documentation): "/*" matches every path;
// otherwise a path is "/" followed by segments separated by "/", each a literal, "{*}" (exactly
// one non-empty segment) or, as the last segment only, "{**}" (any rest, possibly empty,
// including "/").
const (
	AnyPath    = "/*"
	OneSegment = "{*}"
	AnyRest    = "{**}"
)

// literalChars are the characters a literal segment may hold besides %XX escapes: the
// characters Envoy's URI template matcher accepts as literals, which Istio uses for policy
// paths. They are also the characters {*} and {**} match, so a literal segment is always one
// of the strings {*} matches.
const literalChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()+,;=:@"

// SegmentClass and RestClass are regular-expression classes of the characters {*} and {**}
// match: the literal characters and '%' of an escape, and for {**} also '/'. The route's
// regex uses them, so a path routed by a rule is exactly a path the rule's policy template
// matches; a request with other characters in that position matches neither.
var (
	SegmentClass = "[" + regexClass(literalChars+"%") + "]"
	RestClass    = "[" + regexClass(literalChars+"%/") + "]"
)

// regexClass escapes the characters that are special inside a regex character class.
func regexClass(chars string) string {
	var b strings.Builder
	for _, r := range []string{"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz", "0123456789"} {
		if rest, ok := strings.CutPrefix(chars, r); ok {
			b.WriteString(r[:1] + "-" + r[len(r)-1:])
			chars = rest
		}
	}
	for _, c := range chars {
		if strings.ContainsRune(`\-]^[`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

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

// PathPattern is a parsed APIRule path.
type PathPattern struct {
	// everything is "/*".
	everything bool
	segments   []segment
}

// ParsePath parses an APIRule path, refusing what Istio's AuthorizationPolicy validation or
// Envoy's URI template matcher would refuse. The CRD's CEL rules refuse the same paths when
// the API server validates; this parser refuses them offline too (apirulectl) and gives the
// shadowing check a structure to compare.
func ParsePath(path string) (PathPattern, error) {
	if path == AnyPath {
		return PathPattern{everything: true}, nil
	}
	if !strings.HasPrefix(path, "/") {
		return PathPattern{}, fmt.Errorf("must start with '/' (or be /* for every path)")
	}
	parts := strings.Split(path[1:], "/")
	out := PathPattern{segments: make([]segment, 0, len(parts))}
	for i, part := range parts {
		if spelled := refusedSpelling(part); spelled != "" {
			return PathPattern{}, fmt.Errorf("must not contain %s: the gateway answers 400 to every request path with it, so the rule would never match", spelled)
		}
		switch {
		case part == OneSegment:
			out.segments = append(out.segments, segment{kind: one})
		case part == AnyRest:
			if i != len(parts)-1 {
				return PathPattern{}, fmt.Errorf("{**} may appear only as the last segment, for example /api/{**}")
			}
			out.segments = append(out.segments, segment{kind: rest})
		case part == "" && i != len(parts)-1:
			return PathPattern{}, fmt.Errorf("must not contain an empty segment ('//')")
		case part == "." || part == "..":
			return PathPattern{}, fmt.Errorf("must not contain '.' or '..' segments: the gateway normalizes them away, so the rule would never match")
		default:
			if err := checkLiteral(part); err != nil {
				return PathPattern{}, err
			}
			// Kept escapes reach the route in the client's hex case and the route matches
			// them in either, so two spellings that differ only there are one path.
			out.segments = append(out.segments, segment{kind: literal, text: upperEscapes(part)})
		}
	}
	return out, nil
}

// refusedSpelling names what of a segment the gateway's first route refuses in every request
// path (';' and the encoded slash, backslash and semicolon, in either hex case), or "".
func refusedSpelling(part string) string {
	lower := strings.ToLower(part)
	switch {
	case strings.Contains(part, ";"):
		return "';' (path parameters, which backends cut from a segment)"
	case strings.Contains(lower, "%3b"):
		return "an encoded ';' (%3B)"
	case strings.Contains(lower, "%2f"):
		return "an encoded '/' (%2F)"
	case strings.Contains(lower, "%5c"):
		return "an encoded '\\' (%5C)"
	}
	return ""
}

// upperEscapes writes the hex digits of a literal's escapes in upper case.
func upperEscapes(part string) string {
	b := []byte(part)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1], b[i+2] = upperHex(b[i+1]), upperHex(b[i+2])
			i += 2
		}
	}
	return string(b)
}

func upperHex(c byte) byte {
	if c >= 'a' && c <= 'f' {
		return c - 'a' + 'A'
	}
	return c
}

func checkLiteral(part string) error {
	for i := 0; i < len(part); i++ {
		c := part[i]
		switch {
		case c == '%':
			if i+2 >= len(part) || !isHex(part[i+1]) || !isHex(part[i+2]) {
				return fmt.Errorf("'%%' must start a percent-encoded byte such as %%2F")
			}
			// Envoy decodes escapes of unreserved characters before matching (RFC 3986
			// normalization), so a rule spelled with one would never match.
			if b := hexValue(part[i+1])<<4 | hexValue(part[i+2]); isUnreserved(b) {
				return fmt.Errorf("%%%c%c is the unreserved character %q, which the gateway decodes before matching, so the rule would never match; write %q", part[i+1], part[i+2], b, b)
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

func hexValue(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func isUnreserved(b byte) bool {
	return ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z') || ('0' <= b && b <= '9') || b == '-' || b == '.' || b == '_' || b == '~'
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

// MatchesEverything says whether the path matches every request path the gateway routes by
// pattern: /* and /{**}.
func (p PathPattern) MatchesEverything() bool {
	return p.everything || (len(p.segments) == 1 && p.segments[0].kind == rest)
}

// covers says whether every request path that q matches is also matched by p: when p belongs
// to an earlier rule with the same method, the later rule q is never reached.
//
// "/*" (a prefix match on "/") matches every path, including paths with characters outside
// the template character class; "/{**}" does not, so only "/*" covers "/*".
func (p PathPattern) Covers(q PathPattern) bool {
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
