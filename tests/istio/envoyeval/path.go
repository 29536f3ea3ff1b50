package envoyeval

import (
	"strings"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// The connection manager's path handling before any filter or route sees the path, step by
// step as Envoy does it (source/common/http/conn_manager_utility.cc maybeNormalizePath):
//
//  1. a fragment ('#' and what follows) is cut from the path: Envoy refuses such a path by
//     default (runtime guard http_reject_path_with_fragment, source/common/runtime/
//     runtime_features.cc), but Istio's bootstrap turns the guard off (pkg/bootstrap, the
//     static runtime layer), and then Envoy strips the fragment;
//  2. unless path_with_escaped_slashes_action is KEEP_UNCHANGED, %2F/%2f become '/' and
//     %5C/%5c become '\' in the path before the query (source/common/http/path_utility.cc
//     unescapeSlashes); when any was found, REJECT_REQUEST answers 400,
//     UNESCAPE_AND_REDIRECT redirects to the final path, UNESCAPE_AND_FORWARD goes on;
//  3. with normalize_path, parameters are cut from dot segments ("/..;x/" becomes "/../",
//     runtime guard strip_dotdot_segments_with_parameters, on by default) and the path before
//     the query is canonicalised by Chromium's URL path canonicaliser (canonicalizePath
//     below); a path it reports invalid gets 400;
//  4. with merge_slashes, runs of '/' in the path before the query become one, after
//     normalisation, so a '/' that step 2 or 3 produced is merged too.
//
// Istio maps its mesh pathNormalization onto these fields (pilot/pkg/networking/core/
// listener_builder.go buildHTTPConnectionManager): NONE = normalize_path off; BASE (the
// default) = normalize_path; MERGE_SLASHES = normalize_path + merge_slashes;
// DECODE_AND_MERGE_SLASHES = both + UNESCAPE_AND_FORWARD; escaped slashes are KEEP_UNCHANGED
// otherwise.

type pathAction int

const (
	pathContinue pathAction = iota
	pathReject
	pathRedirect
)

// normalizeRequestPath returns the path as the connection manager leaves it and what it does
// with the request.
func normalizeRequestPath(h *hcmv3.HttpConnectionManager, p string) (string, pathAction, string) {
	if i := strings.IndexByte(p, '#'); i >= 0 {
		p = p[:i]
	}
	action := pathContinue
	switch h.GetPathWithEscapedSlashesAction() {
	case hcmv3.HttpConnectionManager_KEEP_UNCHANGED, hcmv3.HttpConnectionManager_IMPLEMENTATION_SPECIFIC_DEFAULT:
		// Envoy's implementation-specific default is KEEP_UNCHANGED.
	default:
		unescaped, found := unescapeSlashes(p)
		if found {
			switch h.GetPathWithEscapedSlashesAction() {
			case hcmv3.HttpConnectionManager_REJECT_REQUEST:
				return p, pathReject, "escaped slash in path"
			case hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT:
				action = pathRedirect
			}
		}
		p = unescaped
	}
	if h.GetNormalizePath().GetValue() {
		path, query := splitQuery(p)
		canonical, ok := canonicalizePath(stripParametersFromDotSegments(path))
		if !ok {
			return p, pathReject, "path normalization failed"
		}
		p = canonical + query
	}
	if h.GetMergeSlashes() {
		p = mergeSlashes(p)
	}
	return p, action, ""
}

// splitQuery splits at the first '?': Envoy normalises only what is before it.
func splitQuery(p string) (string, string) {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i], p[i:]
	}
	return p, ""
}

// unescapeSlashes replaces encoded slashes and backslashes in either hex case, in one pass
// from the left (Envoy path_utility.cc unescapeSlashes: "%%2f" becomes "%/", nothing is
// decoded twice), and says whether it found any.
func unescapeSlashes(p string) (string, bool) {
	path, query := splitQuery(p)
	if !strings.Contains(path, "%") {
		return p, false
	}
	out := strings.NewReplacer("%2F", "/", "%2f", "/", "%5C", `\`, "%5c", `\`).Replace(path)
	return out + query, len(out) != len(path)
}

// mergeSlashes joins the non-empty segments of the path before the query with one '/',
// keeping a leading and a trailing '/' (Envoy path_utility.cc mergeSlashes). A path of only
// slashes ("//") therefore stays "//".
func mergeSlashes(p string) string {
	path, query := splitQuery(p)
	if !strings.Contains(path, "//") {
		return p
	}
	var segs []string
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			segs = append(segs, s)
		}
	}
	prefix, suffix := "", ""
	if strings.HasPrefix(path, "/") {
		prefix = "/"
	}
	if strings.HasSuffix(path, "/") {
		suffix = "/"
	}
	return prefix + strings.Join(segs, "/") + suffix + query
}

// stripParametersFromDotSegments turns a segment that starts with "..;" into ".." and one that
// starts with ".;" into ".", so that canonicalisation removes them (Envoy path_utility.cc
// stripParametersFromDotSegments; only the literal dots count, "%2e%2e;" is not touched).
func stripParametersFromDotSegments(path string) string {
	if !strings.Contains(path, ".;") {
		return path
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, "..;"):
			segs[i] = ".."
		case strings.HasPrefix(s, ".;"):
			segs[i] = "."
		}
	}
	return strings.Join(segs, "/")
}

// Character classes of Chromium's path canonicaliser (url_canon_path.cc kPathCharLookup, the
// copy Envoy builds: source/common/chromium_url/url_canon_path.cc and googleurl).
const (
	charPass     = 0
	charSpecial  = 1
	charEscape   = 2 | charSpecial
	charUnescape = 4
	charInvalid  = 8 | charSpecial
)

var pathCharClass = func() [256]byte {
	var t [256]byte
	t[0] = charInvalid
	for c := 1; c < 0x20; c++ {
		t[c] = charEscape
	}
	for c := 0x7f; c < 0x100; c++ {
		t[c] = charEscape
	}
	for _, c := range " \"#%<>?\\^`{|}" {
		t[c] = charEscape
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = charUnescape
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = charUnescape
		t[c+'a'-'A'] = charUnescape
	}
	for _, c := range "-_~" {
		t[c] = charUnescape
	}
	// '.' is handled as a dot (escaped or not) before the class is looked at.
	t['.'] = charSpecial
	return t
}()

func isURLSlash(c byte) bool { return c == '/' || c == '\\' }

// isDot returns the length of a dot at i: 1 for '.', 3 for "%2e" or "%2E", else 0.
func isDot(s string, i int) int {
	switch {
	case s[i] == '.':
		return 1
	case s[i] == '%' && i+3 <= len(s) && s[i+1] == '2' && (s[i+2] == 'e' || s[i+2] == 'E'):
		return 3
	}
	return 0
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexDigitValue(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// decodeEscaped reads "%XX" at i.
func decodeEscaped(s []byte, i int) (byte, bool) {
	if i+3 > len(s) || !isHexDigit(s[i+1]) || !isHexDigit(s[i+2]) {
		return 0, false
	}
	return hexDigitValue(s[i+1])<<4 | hexDigitValue(s[i+2]), true
}

const upperHex = "0123456789ABCDEF"

// canonicalizePath is Chromium's path canonicaliser as Envoy calls it on the path before the
// query (url_canon_path.cc DoPath/DoPartialPath):
//
//   - a missing leading '/' is added;
//   - '\' becomes '/';
//   - "." and ".." segments are removed, with "%2e"/"%2E" read as a dot, a ".." at the root
//     staying at the root; a dot segment is one between slashes or at the end;
//   - an escape of an unreserved character (ALPHA, DIGIT, '-', '_', '~') is decoded; every
//     other valid escape is kept exactly as written, hex case included ("%c3%a9" stays);
//   - space, '"', '#', '<', '>', '?', '^', '`', '{', '|', '}', control characters, DEL and
//     every byte >= 0x80 are escaped as "%XX" in upper-case hex;
//   - a '%' that starts no valid escape is kept, and becomes "%25" when decoding what follows
//     it would make it start one ("%%300" is "%2500"), so the output never decodes further;
//   - doubled slashes are kept.
//
// A NUL byte, escaped or not, makes the path invalid (ok false): Envoy answers 400.
func canonicalizePath(p string) (string, bool) {
	if p == "" {
		return "/", true
	}
	out := make([]byte, 0, len(p)+1)
	if !isURLSlash(p[0]) {
		out = append(out, '/')
	}
	ok := true
	lastInvalidPercent := -1 << 30
	for i := 0; i < len(p); i++ {
		c := p[i]
		class := pathCharClass[c]
		if class&charSpecial == 0 {
			out = append(out, c)
			continue
		}
		if dot := isDot(p, i); dot > 0 {
			if len(out) > 0 && out[len(out)-1] == '/' {
				consumed, kind := classifyAfterDot(p, i+dot)
				switch kind {
				case notADirectory:
					out = append(out, '.')
					i += dot - 1
				case directoryCurrent:
					i += dot + consumed - 1
				case directoryUp:
					out = backUpToPreviousSlash(out)
					i += dot + consumed - 1
				}
			} else {
				out = append(out, '.')
				i += dot - 1
			}
			continue
		}
		switch {
		case c == '\\':
			out = append(out, '/')
		case c == '%':
			if v, valid := decodeEscaped([]byte(p), i); valid {
				i += 2
				switch flags := pathCharClass[v]; {
				case flags&charUnescape != 0:
					out = append(out, v)
					if lastInvalidPercent >= len(out)-3 {
						out = checkForNestedEscapes(p, i+1, lastInvalidPercent, out)
					}
				default:
					out = append(out, '%', p[i-1], p[i])
					if flags&charInvalid == charInvalid {
						ok = false
					}
				}
			} else {
				lastInvalidPercent = len(out)
				out = append(out, '%')
			}
		case class&charInvalid == charInvalid:
			out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
			ok = false
		default:
			out = append(out, '%', upperHex[c>>4], upperHex[c&0xf])
		}
	}
	return string(out), ok
}

type dotKind int

const (
	notADirectory dotKind = iota
	directoryCurrent
	directoryUp
)

// classifyAfterDot looks at what follows a dot that follows a slash (url_canon_path.cc
// ClassifyAfterDot) and returns how many more input bytes the dot segment takes.
func classifyAfterDot(p string, after int) (int, dotKind) {
	if after == len(p) {
		return 0, directoryCurrent
	}
	if isURLSlash(p[after]) {
		return 1, directoryCurrent
	}
	if second := isDot(p, after); second > 0 {
		next := after + second
		if next == len(p) {
			return second, directoryUp
		}
		if isURLSlash(p[next]) {
			return second + 1, directoryUp
		}
	}
	return 0, notADirectory
}

// backUpToPreviousSlash drops the last segment of out, which ends with '/', never going above
// the first slash (url_canon_path.cc BackUpToPreviousSlash: ".." at the root stays there).
func backUpToPreviousSlash(out []byte) []byte {
	i := len(out) - 1
	if i == 0 {
		return out
	}
	i--
	for out[i] != '/' && i > 0 {
		i--
	}
	return out[:i+1]
}

// checkForNestedEscapes turns the '%' at lastInvalid into "%25" when the bytes after it, now
// that one was decoded, read as a valid escape (url_canon_path.cc CheckForNestedEscapes).
func checkForNestedEscapes(p string, next, lastInvalid int, out []byte) []byte {
	length := len(out)
	lastUnescaped := out[length-1]
	appendNext := lastInvalid == length-2
	if appendNext {
		if next == len(p) || p[next] >= 0x80 {
			return out
		}
		out = append(out, p[next])
	}
	if _, valid := decodeEscaped(out, lastInvalid); valid {
		if !appendNext {
			out = append(out, out[lastInvalid+1])
		}
		out[lastInvalid+1] = '2'
		out[lastInvalid+2] = '5'
		return append(out, lastUnescaped)
	}
	if appendNext {
		out = out[:length]
	}
	return out
}

// RoutedPath returns the path the routes of listener l see for a request on conn: the path
// after the connection manager's normalisation of the filter chain conn selects. ok is false
// when the request never reaches the routes (no filter chain, or the connection manager
// answers itself). Istio's route simulation does not normalise paths; the harness gives it
// this path so that both judge route selection on the same string.
func (p *Proxy) RoutedPath(l *listenerv3.Listener, conn Conn, path string) (string, bool) {
	fc, err := SelectFilterChain(l, conn)
	if err != nil || fc == nil {
		return "", false
	}
	hcm, err := httpConnectionManager(fc)
	if err != nil || !strings.HasPrefix(path, "/") {
		return "", false
	}
	out, action, _ := normalizeRequestPath(hcm, path)
	return out, action == pathContinue
}
