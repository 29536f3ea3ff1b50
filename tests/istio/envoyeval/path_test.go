package envoyeval

import (
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The connection manager settings Istio's mesh pathNormalization produces
// (pilot/pkg/networking/core/listener_builder.go).
var (
	normNone = &hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(false),
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED}
	normBase = &hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(true),
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED}
	normMergeSlashes = &hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(true), MergeSlashes: true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_KEEP_UNCHANGED}
	normDecodeAndMerge = &hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(true), MergeSlashes: true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_UNESCAPE_AND_FORWARD}
)

type pathCase struct {
	hcm        *hcmv3.HttpConnectionManager
	in, want   string
	wantAction pathAction
}

func runPathCases(t *testing.T, cases []pathCase) {
	t.Helper()
	for _, c := range cases {
		got, action, _ := normalizeRequestPath(c.hcm, c.in)
		if action != c.wantAction || (action != pathReject && got != c.want) {
			t.Errorf("%q: got %q (action %d), want %q (action %d)", c.in, got, action, c.want, c.wantAction)
		}
	}
}

// Chromium's canonicaliser decodes escapes of unreserved characters (ALPHA, DIGIT, '-', '_',
// '~') and keeps every other escape: /%61pi is routed as /api.
func TestNormalizePathDecodesUnreservedEscapes(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/%61pi/%7Euser/%2D%5f%30", "/api/~user/-_0", pathContinue},
		{normBase, "/%41%5A%7a", "/AZz", pathContinue},
		{normBase, "/a%3Ab%40c%21", "/a%3Ab%40c%21", pathContinue},
		{normNone, "/%61pi", "/%61pi", pathContinue},
	})
}

// An escaped dot is a dot, also for dot-segment removal (url_canon_path.cc IsDot):
// /api/%2e%2e/admin is /admin, and %2e inside a segment is decoded to '.'.
func TestNormalizePathReadsEscapedDotsAsDots(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/api/%2e%2e/admin", "/admin", pathContinue},
		{normBase, "/api/%2E%2e/admin", "/admin", pathContinue},
		{normBase, "/a/%2e/b", "/a/b", pathContinue},
		{normBase, "/a/./b", "/a/b", pathContinue},
		{normBase, "/v1%2e0/x", "/v1.0/x", pathContinue},
		{normBase, "/a/b/%2e%2e", "/a/", pathContinue},
		{normNone, "/api/%2e%2e/admin", "/api/%2e%2e/admin", pathContinue},
	})
}

// Escapes that are kept are copied as written: the hex case does not change, so /caf%c3%a9 and
// /caf%C3%A9 reach the routes as two different strings.
func TestNormalizePathKeepsHexCaseOfKeptEscapes(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/caf%c3%a9/x", "/caf%c3%a9/x", pathContinue},
		{normBase, "/caf%C3%A9/x", "/caf%C3%A9/x", pathContinue},
		{normBase, "/a%2fb%5Cc", "/a%2fb%5Cc", pathContinue},
	})
}

// Bytes a URL path may not hold raw are escaped in upper-case hex: space, '"', '<', '>', '^',
// '`', '{', '|', '}', control characters, DEL and every non-ASCII byte.
func TestNormalizePathEscapesUnsafeBytes(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/a b", "/a%20b", pathContinue},
		{normBase, "/caf\xc3\xa9/x", "/caf%C3%A9/x", pathContinue},
		{normBase, "/{x}|\"<>^`", "/%7Bx%7D%7C%22%3C%3E%5E%60", pathContinue},
		{normBase, "/a\x01\x7f", "/a%01%7F", pathContinue},
		{normBase, "/!$&'()*+,;=:@[]", "/!$&'()*+,;=:@[]", pathContinue},
		{normNone, "/a b", "/a b", pathContinue},
	})
}

// ".." never climbs above the root (url_canon_path.cc BackUpToPreviousSlash).
func TestNormalizePathDotDotStaysAtRoot(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/../../admin", "/admin", pathContinue},
		{normBase, "/a/../../../b", "/b", pathContinue},
		{normBase, "/..", "/", pathContinue},
	})
}

// A backslash is a slash to the canonicaliser, as a separator and around dot segments; an
// escaped backslash is kept.
func TestNormalizePathBackslashIsSlash(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, `/a\b`, "/a/b", pathContinue},
		{normBase, `/a\..\b`, "/b", pathContinue},
		{normBase, `/app/\/\admin`, "/app////admin", pathContinue},
		{normBase, "/a%5Cb", "/a%5Cb", pathContinue},
		{normNone, `/a\b`, `/a\b`, pathContinue},
	})
}

// Escaped slashes are handled first, then normalize_path, then merge_slashes
// (conn_manager_utility.cc maybeNormalizePath): an unescaped %2F takes part in dot-segment
// removal and in merging, and merging after normalisation keeps "/a//../b" at "/a/b".
func TestEscapedSlashesThenNormalizeThenMergeSlashes(t *testing.T) {
	reject := &hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(true),
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_REJECT_REQUEST}
	redirect := &hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(true), MergeSlashes: true,
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT}
	mergeOnly := &hcmv3.HttpConnectionManager{MergeSlashes: true}
	runPathCases(t, []pathCase{
		{normDecodeAndMerge, "/api%2F%2Fx", "/api/x", pathContinue},
		{normDecodeAndMerge, "/a%2f..%2fb", "/b", pathContinue},
		{normDecodeAndMerge, "/a%5c..%5Cb", "/b", pathContinue},
		{normDecodeAndMerge, "/a%%2fb", "/a%/b", pathContinue},
		{normBase, "/a%2f..%2fb", "/a%2f..%2fb", pathContinue},
		{normMergeSlashes, "/a//../b", "/a/b", pathContinue},
		{normMergeSlashes, "//api//x/", "/api/x/", pathContinue},
		{normMergeSlashes, "/api%2F%2Fx", "/api%2F%2Fx", pathContinue},
		{normBase, "/a//../b", "/a/b", pathContinue},
		{normBase, "//api//x", "//api//x", pathContinue},
		{mergeOnly, "//a//b", "/a/b", pathContinue},
		{mergeOnly, "//", "//", pathContinue},
		{reject, "/a%2Fb", "", pathReject},
		{reject, "/a%5cb", "", pathReject},
		{reject, "/a%2Bb", "/a%2Bb", pathContinue},
		{redirect, "/a%2F%2fb", "/a/b", pathRedirect},
	})
}

// A fragment is cut before anything else, whatever the normalisation: Istio's bootstrap sets
// Envoy's runtime guard http_reject_path_with_fragment to false, under which Envoy strips it.
func TestPathFragmentIsStripped(t *testing.T) {
	runPathCases(t, []pathCase{
		{normNone, "/a#b", "/a", pathContinue},
		{normBase, "/api/x#/../admin", "/api/x", pathContinue},
		{normBase, "/api/x?q=1#f", "/api/x?q=1", pathContinue},
	})
}

// Only the path before '?' is normalised; the query is kept byte for byte.
func TestNormalizePathLeavesQuery(t *testing.T) {
	runPathCases(t, []pathCase{
		{normDecodeAndMerge, "/a/../b?x=/../%61%2f//", "/b?x=/../%61%2f//", pathContinue},
	})
}

// Parameters on dot segments are cut before canonicalisation (runtime guard
// strip_dotdot_segments_with_parameters): "/public/..;x=1/admin" is "/admin". Escaped dots
// are not cut, and canonicalise to a literal "..;" segment.
func TestNormalizePathStripsParametersFromDotSegments(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/public/..;x=1/admin", "/admin", pathContinue},
		{normBase, "/public/.;x/admin", "/public/admin", pathContinue},
		{normBase, "/public/%2e%2e;/admin", "/public/..;/admin", pathContinue},
		{normBase, "/a/...;x/b", "/a/...;x/b", pathContinue},
		{normNone, "/public/..;/admin", "/public/..;/admin", pathContinue},
	})
}

// A NUL byte, raw or escaped, makes the path invalid: 400.
func TestNormalizePathRejectsNUL(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/admin%00", "", pathReject},
		{normBase, "/a/.%00../b", "", pathReject},
		{normBase, "/admin\x00", "", pathReject},
	})
}

// A '%' that starts no escape is kept, and escaped as %25 when the decoding after it would
// make it start one, so that the result does not decode to something else again.
func TestNormalizePathEscapesNestedPercent(t *testing.T) {
	runPathCases(t, []pathCase{
		{normBase, "/%%300", "/%2500", pathContinue},
		{normBase, "/%3%30", "/%2530", pathContinue},
		{normBase, "/100%", "/100%", pathContinue},
		{normBase, "/%zz", "/%zz", pathContinue},
	})
}

// The connection manager answers 404 to a path that does not start with '/', 400 to one the
// normalisation refuses and 307 for UNESCAPE_AND_REDIRECT, before any filter.
func TestPrepareRequestPathStatuses(t *testing.T) {
	redirect := &hcmv3.HttpConnectionManager{NormalizePath: wrapperspb.Bool(true),
		PathWithEscapedSlashesAction: hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT}
	for _, c := range []struct {
		hcm  *hcmv3.HttpConnectionManager
		path string
		want int
	}{
		{normBase, "api/x", 404},
		{normBase, "/a%00", 400},
		{normNone, "/a#x", 0},
		{redirect, "/a%2fb", 307},
		{normBase, "/a/../b", 0},
	} {
		s := &Stream{Headers: Headers{":path": {c.path}}}
		if got, why := prepareRequest(c.hcm, Conn{}, s); got != c.want {
			t.Errorf("%q: status %d (%s), want %d", c.path, got, why, c.want)
		}
	}
}
