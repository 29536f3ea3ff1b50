package harness

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeExpect(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "case.expect.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadExpectationsNamesTheFieldAndTheFix(t *testing.T) {
	cases := []struct{ body, want string }{
		{"requests: []", "requests: empty"},
		{"requests:\n- {name: a, expect: \"999\"}", "requests[0].expect: 999 is not an HTTP status"},
		{"requests:\n- {name: a, expect: httpbin}", "requests[0].expect: \"httpbin\": want <service>.<namespace>:<port>"},
		{"requests:\n- {name: a, expect: \"404\"}\n- {name: a, expect: \"404\"}", "requests[1].name: \"a\" used twice"},
		{"requests:\n- {expect: \"404\"}", "requests[0].name: empty"},
		{"requests:\n- {name: a, expect: \"404\", decidedAt: backend}", "requests[0].decidedAt: \"backend\"; use gateway or sidecar"},
		{"requests:\n- {name: a, expect: \"404\", extAuthz: {opa: maybe}}", "requests[0].extAuthz.opa"},
		{"requests:\n- {name: a, expect: \"404\", token: {issuer: i, header: X, cookie: c}}", "requests[0].token: set at most one"},
		{"requests:\n- {name: a, expect: \"404\", methd: GET}", "unknown field \"methd\""},
	}
	for _, c := range cases {
		_, err := LoadExpectations(writeExpect(t, c.body))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error containing %q", c.body, err, c.want)
		}
	}
}

func TestDefaultsAreMergedIntoRequests(t *testing.T) {
	e, err := LoadExpectations(writeExpect(t, `
defaults:
  host: h.example.com
  path: /a
  headers: {x-a: "1"}
  clientCert: {subject: CN=a}
requests:
- {name: plain, expect: "404"}
- {name: own, host: other.example.com, method: POST, headers: {x-b: "2"}, expect: "404"}
- {name: nocert, noClientCert: true, expect: tlsRejected}
`))
	if err != nil {
		t.Fatal(err)
	}
	plain, own, nocert := e.Requests[0], e.Requests[1], e.Requests[2]
	if plain.Host != "h.example.com" || plain.Path != "/a" || plain.Method != "GET" || plain.ClientCert == nil {
		t.Errorf("defaults not applied: %+v", plain)
	}
	if own.Host != "other.example.com" || own.Method != "POST" || own.Headers["x-a"] != "1" || own.Headers["x-b"] != "2" {
		t.Errorf("request fields must win and headers merge: %+v", own)
	}
	if nocert.ClientCert != nil {
		t.Error("noClientCert must drop the default certificate")
	}
}

func TestOutcomesAndClusters(t *testing.T) {
	for in, want := range map[string]Outcome{
		"httpbin.shop:8000": {Backend: "httpbin.shop:8000"},
		"403":               {Status: 403},
		"tlsRejected":       {Status: -1},
	} {
		got, err := ParseOutcome(in)
		if err != nil || got != want || got.String() != in {
			t.Errorf("ParseOutcome(%q) = %+v (%s), %v", in, got, got, err)
		}
	}
	svc, ns, port, ok := parseOutboundCluster("outbound|8000||httpbin.shop.svc.cluster.local")
	if !ok || svc != "httpbin" || ns != "shop" || port != 8000 {
		t.Errorf("parseOutboundCluster = %s %s %d %v", svc, ns, port, ok)
	}
	if _, _, _, ok := parseOutboundCluster("outbound|443||api.example.org"); ok {
		t.Error("a cluster outside the mesh's services must not parse as one")
	}
}

func TestCheckReportsEveryMismatch(t *testing.T) {
	called := []string{}
	r := Request{Expect: "httpbin.shop:8000", ExtAuthzCalled: &called, UpstreamHeaders: map[string]string{"x-a": "1", "x-b": ""}, DecidedAt: ""}
	res := Result{Outcome: Outcome{Backend: "httpbin.shop:8000"}, ExtAuthzCalled: []string{"opa"}, Upstream: map[string][]string{"x-a": {"2"}, "x-b": {"forged"}}}
	bad := Check(r, res)
	if len(bad) != 3 {
		t.Errorf("want 3 mismatches (ext_authz, x-a, x-b), got %q", bad)
	}
	res = Result{Outcome: Outcome{Status: 403}, DecidedAt: "gateway"}
	r = Request{Expect: "403", DecidedAt: "sidecar"}
	if bad := Check(r, res); len(bad) != 1 || !strings.Contains(bad[0], "decided at") {
		t.Errorf("decidedAt mismatch not reported: %q", bad)
	}
}
