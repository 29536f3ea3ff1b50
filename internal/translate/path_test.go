package translate

import (
	"regexp"
	"testing"

	networkingv1 "istio.io/api/networking/v1"
)

func TestURIMatchKinds(t *testing.T) {
	cases := []struct {
		path string
		want *networkingv1.StringMatch
	}{
		{"/*", &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: "/"}}},
		{"/", &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: "/"}}},
		{"/a.b/(c)", &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: "/a.b/(c)"}}},
	}
	for _, c := range cases {
		if got := uriMatch(c.path); got.String() != c.want.String() {
			t.Errorf("uriMatch(%q) = %v, want %v", c.path, got, c.want)
		}
	}
}

// The regex of a template path must match exactly the requests the template means, with the
// literal characters taken literally.
func TestURIMatchRegexSemantics(t *testing.T) {
	cases := []struct {
		path    string
		matches []string
		misses  []string
	}{
		{"/a.b/{*}", []string{"/a.b/x", "/a.b/x-y_z~1"}, []string{"/aXb/x", "/a.b/", "/a.b/x/y", "/a.b"}},
		{"/v1/{*}/items", []string{"/v1/7/items"}, []string{"/v1//items", "/v1/7/8/items", "/v1/7/itemsX"}},
		{"/files/{**}", []string{"/files/", "/files/a", "/files/a/b/c"}, []string{"/files", "/filesX/a", "/other/files/a"}},
		{"/$(x)+/{**}", []string{"/$(x)+/q"}, []string{"/x+/q", "/$(x)/q", "/$(x)))/q"}},
	}
	for _, c := range cases {
		m := uriMatch(c.path).GetRegex()
		if m == "" {
			t.Fatalf("uriMatch(%q) is not a regex", c.path)
		}
		re := regexp.MustCompile(m)
		for _, p := range c.matches {
			if !re.MatchString(p) {
				t.Errorf("regex %q of %q does not match %q", m, c.path, p)
			}
		}
		for _, p := range c.misses {
			if re.MatchString(p) {
				t.Errorf("regex %q of %q matches %q", m, c.path, p)
			}
		}
	}
}

func TestPolicyPath(t *testing.T) {
	for in, want := range map[string]string{"/*": "/*", "/": "/", "/a/{*}/b": "/a/{*}/b", "/a/{**}": "/a/{**}"} {
		if got := policyPath(in); got != want {
			t.Errorf("policyPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// The first route refuses every spelling some mesh pathNormalization leaves in the path and a
// backend may resolve to another path; it lets through what normalised paths and rule paths
// are made of, escapes of other characters in either hex case included.
func TestAmbiguousPathRegex(t *testing.T) {
	re := regexp.MustCompile("^(?:" + ambiguousPathRegex + ")$")
	for _, p := range []string{
		"//api/x", "/api//x", "/api%2Fx", "/api%2fx", "/api%5Cx", "/api%5cx", `/api\x`,
		"/a/../b", "/a/./b", "/a/..", "/a/.", "/..;/api/x", "/a/..;x=1/b", "/a/.;/b",
		"/%61pi/x", "/a%2eb", "/a/%2E%2E/b", "/a%7Eb", "/a%7eb", "/a%2Db", "/a%5Fb", "/%30", "/%5A", "/%7a",
		"/caf\xc3\xa9/x", "/a b", "/a\x7f", "/a\x01",
		"/api;jsessionid=1/x", "/a/...;x", "/a/x..;", "/a%3Bb", "/a%3bb", "/api/orders[1]", "/api/orders]", "/api/x*",
	} {
		if !re.MatchString(p) {
			t.Errorf("%q is not refused", p)
		}
	}
	for _, p := range []string{
		"/", "/api/x", "/api/x/", "/caf%C3%A9/x", "/caf%c3%a9/x", "/v1.0/x", "/.well-known/x",
		"/a..b/c", "/a%3Ab", "/a%3ab", "/a%20b", "/a%25", "/a%2Bb", "/a%40b", "/a%5Bb", "/a%60b", "/a%7Bb",
		"/a%2Cb", "/a%2cb", "/a%7Fb", "/!$&'()+,=:@~-._",
	} {
		if re.MatchString(p) {
			t.Errorf("%q is refused", p)
		}
	}
}
