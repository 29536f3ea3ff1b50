package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apirule-operator/apirule-operator/internal/schema"
)

var update = flag.Bool("update", false, "rewrite the convert golden files (testdata/convert/*.out.yaml, *.stderr)")

// convert's output and report, per input under testdata/convert: the output is each
// <case>.out.yaml, the report <case>.stderr; the table names the field paths each report must
// hold, so a golden file cannot drift into accepting a lost finding.
func TestConvert(t *testing.T) {
	cases := []struct {
		name  string
		code  int
		notes []string // "<kind> <object>: <field>" prefixes the report must hold
	}{
		{"v2-clean", 0, nil},
		{"v2-differences", 0, []string{
			"left out shop/orders: spec.externalGateway: ",
			"left out shop/orders: spec.service.external: ",
			`left out shop/orders: spec.rules[0].path: "/orders/{**}/items": Kyma lets {**} stand before other segments`,
			`left out shop/orders: spec.rules[1].jwt.authentications[0].jwksUri: "file:///etc/keys/jwks.json"`,
			"differs shop/orders: spec.rules[2].jwt.authentications[0]: no token location is set",
			"differs shop/orders: spec.rules[2].service.namespace: a Service of namespace identity: refused (CrossNamespaceBackend)",
			`left out shop/orders: spec.rules[3].path: Invalid value: "/a;b"`,
			"left out shop/orders: spec.rules[4].retries: not a field of gateway.apirule.io/v2",
			`left out shop/orders: spec.rules[5].extAuth.restrictions.authentications[0].jwksUri: "file:`,
		}},
		{"v2-list", 0, []string{"left out document 1, item 2 (Service one/a): kind: "}},
		{"v1beta1-noauth", 0, []string{
			"left out shop/httpbin: spec.rules[1].mutators[0].config.headers.X-User: a template",
			`left out shop/httpbin: spec.rules[2].mutators[0].handler: "id_token" has no v2 equivalent`,
			`left out shop/httpbin: spec.rules[3].path: "/items/[0-9]+" is a regular expression`,
		}},
		{"v1beta1-jwt", 0, []string{
			"left out shop/api: spec.rules[0].accessStrategies[0].config.scope_strategy: ",
			"differs shop/api: spec.rules[1].accessStrategies[0].config.authentications[0]: no token location",
			"left out shop/api: spec.rules[2].accessStrategies[0].handler: oauth2_introspection has no v2 equivalent",
			"left out shop/api: spec.rules[3].accessStrategies: several access strategies",
			"left out shop/api: spec.rules[4].accessStrategies[0].config.jwks_urls: 2 key sets and 1 trusted issuers",
			`left out shop/api: spec.rules[5].accessStrategies[0].handler: "cookie_session"`,
		}},
		{"nothing", 1, []string{
			"left out shop/legacy: spec.rules[0].accessStrategies[0].handler: oauth2_introspection",
			"left out shop/legacy: spec.rules: no rule converts",
			"left out document 2 (VirtualService shop/legacy): kind: ",
			"no APIRule converted",
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := filepath.Join("testdata", "convert", c.name)
			code, stdout, stderr := runCLI(t, "", "convert", "-f", base+".in.yaml")
			if code != c.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, c.code, stderr)
			}
			for _, want := range c.notes {
				if !strings.Contains(stderr, want) {
					t.Errorf("the report lacks %q:\n%s", want, stderr)
				}
			}
			if c.notes == nil && stderr != "" {
				t.Errorf("a clean conversion reports:\n%s", stderr)
			}
			golden(t, base+".out.yaml", stdout)
			golden(t, base+".stderr", stderr)
			if _, again, _ := runCLI(t, "", "convert", "-f", base+".in.yaml"); again != stdout {
				t.Error("two runs print different output")
			}
			// Every printed APIRule is one the API server stores.
			docs, err := readDocuments(strings.NewReader(stdout))
			if err != nil {
				t.Fatal(err)
			}
			for _, doc := range docs {
				if _, errs := schema.Validate(doc.obj); len(errs) > 0 {
					t.Errorf("%s: the converted APIRule does not validate: %v", doc.where, errs)
				}
			}
			// --strict fails exactly when something was left out, with the same output.
			strictCode, strictOut, _ := runCLI(t, "", "convert", "--strict", "-f", base+".in.yaml")
			wantStrict := c.code
			if strings.Contains(stderr, "left out ") {
				wantStrict = 1
			}
			if strictCode != wantStrict || strictOut != stdout {
				t.Errorf("--strict: exit %d, want %d; same output: %v", strictCode, wantStrict, strictOut == stdout)
			}
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cmd/apirulectl -run TestConvert -update)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
