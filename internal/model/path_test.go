package model

import (
	"strings"
	"testing"
)

func TestCovers(t *testing.T) {
	cases := []struct {
		earlier, later string
		want           bool
	}{
		{"/*", "/anything/{**}", true},
		{"/*", "/*", true},
		{"/{**}", "/*", false}, // /* also matches characters outside the template class
		{"/{**}", "/", true},
		{"/{**}", "/a/{*}/b", true},
		{"/api/{**}", "/api/users", true},
		{"/api/{**}", "/api/", true},
		{"/api/{**}", "/api", false},
		{"/api/{**}", "/apis/x", false},
		{"/api/{*}", "/api/users", true},
		{"/api/{*}", "/api/{*}", true},
		{"/api/{*}", "/api/{**}", false},
		{"/api/{*}", "/api/", false}, // {*} is never empty
		{"/api/{*}", "/api/a/b", false},
		{"/{*}/b", "/a/b", true},
		{"/a/b", "/{*}/b", false},
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/b/", false},
		{"/{*}/{**}", "/x/{**}", true},
		{"/x/{**}", "/{*}/{**}", false},
		{"/a%C3%A9b", "/a%c3%a9b", true},
		{"/{*}", "/a%C3%A9b", true},
	}
	for _, c := range cases {
		p, err := ParsePath(c.earlier)
		if err != nil {
			t.Fatalf("%s: %v", c.earlier, err)
		}
		q, err := ParsePath(c.later)
		if err != nil {
			t.Fatalf("%s: %v", c.later, err)
		}
		if got := p.Covers(q); got != c.want {
			t.Errorf("%s covers %s = %v, want %v", c.earlier, c.later, got, c.want)
		}
	}
}

func TestParsePathRefusesWhatIstioRefuses(t *testing.T) {
	for path, want := range map[string]string{
		"api":           "must start with '/'",
		"/a//b":         "empty segment",
		"/a/{**}/b":     "only as the last segment",
		"/a/../b":       "'.' or '..'",
		"/a/..;x/b":     "must not contain ';'",
		"/a/.;/b":       "must not contain ';'",
		"/api;v=1/x":    "must not contain ';'",
		"/a%3bb":        "encoded ';'",
		"/a%2Fb":        "encoded '/'",
		"/a%5cb":        `encoded '\'`,
		"/a*":           "'*' is allowed only as",
		"/a{*}":         "'{' is allowed only as",
		"/a b":          `character ' ' is not allowed`,
		"/a%2":          "percent-encoded",
		"/a?x=1":        `character '?' is not allowed`,
		"/{**}/{**}":    "only as the last segment",
		"/caf\u00e9":    "is not allowed",
		"/a/{*}x":       "'{' is allowed only as",
		"/a/%zz":        "percent-encoded",
		"/templates/{}": "'{' is allowed only as",
	} {
		_, err := ParsePath(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to mention %q", path, err, want)
		}
	}
	for _, path := range []string{"/", "/*", "/{**}", "/a/", "/a/{*}/b/{**}", "/a%C3%A9b", "/v1:run", "/~user/x.y", "/a/...x"} {
		if _, err := ParsePath(path); err != nil {
			t.Errorf("%q refused: %v", path, err)
		}
	}
}
