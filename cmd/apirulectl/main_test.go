package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// render prints exactly what the golden files hold after their header: the bytes the operator
// applies.
func TestRenderMatchesGoldenOutputs(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("..", "..", "internal", "translate", "testdata", "*.in.yaml"))
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, input := range inputs {
		golden, err := os.ReadFile(strings.TrimSuffix(input, ".in.yaml") + ".out.yaml")
		if err != nil {
			t.Fatal(err)
		}
		var objects strings.Builder
		for _, line := range strings.SplitAfter(string(golden), "\n") {
			if !strings.HasPrefix(line, "#") {
				objects.WriteString(line)
			}
		}
		code, stdout, stderr := runCLI(t, "", "render", "-f", input)
		wantCode := 0
		if strings.Contains(string(golden), "#   Error ") {
			wantCode = 1
		}
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d; stderr:\n%s", input, code, wantCode, stderr)
		}
		if stdout != objects.String() {
			t.Errorf("%s: render output differs from the golden objects:\n%s", input, stdout)
		}
	}
}

func TestRenderSamplesWithTheirContext(t *testing.T) {
	samples, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "gateway_v2_apirule_*.yaml"))
	if len(samples) < 3 {
		t.Fatalf("found %d samples", len(samples))
	}
	context := filepath.Join("..", "..", "config", "samples", "context.yaml")
	for _, sample := range samples {
		code, stdout, stderr := runCLI(t, "", "render", "-f", context, "-f", sample)
		if code != 0 || !strings.Contains(stdout, "kind: VirtualService") || !strings.Contains(stdout, "kind: AuthorizationPolicy") {
			t.Errorf("%s: exit %d\nstdout:\n%s\nstderr:\n%s", sample, code, stdout, stderr)
		}
	}
}

func TestValidate(t *testing.T) {
	rule := `apiVersion: gateway.apirule.io/v2
kind: APIRule
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  gateway: istio-system/public
  service: {name: api, port: 8000}
  rules:
  - {path: /*, methods: [GET], noAuth: true}
`
	context := `---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*.example.com"]}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 8000}]}
`
	code, stdout, _ := runCLI(t, rule+context, "validate", "-f", "-")
	if code != 0 || !strings.Contains(stdout, "1 APIRules valid") || !strings.Contains(stdout, "Warning shop/api: spec.rules[0].path: noAuth on /*") {
		t.Errorf("valid input: exit %d, stdout %q", code, stdout)
	}

	code, stdout, _ = runCLI(t, rule, "validate", "-f", "-")
	if code != 1 {
		t.Errorf("missing context: exit %d, want 1", code)
	}
	for _, want := range []string{
		"Error shop/api: spec.gateway: Gateway istio-system/public not found",
		"(offline: add the Gateway to the input)",
		"Error shop/api: spec.service: Service shop/api not found",
		"(offline: add the Service to the input)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stdout)
		}
	}
}

// validate reports what the admission webhook refuses and warns about, with field paths.
func TestValidateShadowingAndWarnings(t *testing.T) {
	input := `apiVersion: gateway.apirule.io/v2
kind: APIRule
metadata: {name: api, namespace: shop}
spec:
  hosts: [api.example.com]
  gateway: istio-system/public
  service: {name: api, port: 8000}
  rules:
  - {path: "/api/{**}", methods: [GET], noAuth: true}
  - path: /api/admin
    methods: [GET]
    jwt: {authentications: [{issuer: "https://idp.example.com", jwksUri: "http://idp.example.com/jwks"}]}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: istio-system}
spec:
  servers: [{port: {number: 443, name: https, protocol: HTTPS}, hosts: ["*.example.com"]}]
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec: {selector: {app: api}, ports: [{port: 8000}]}
`
	code, stdout, _ := runCLI(t, input, "validate", "-f", "-")
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		"Error shop/api: spec.rules[1].path: spec.rules[1] is never reached for GET because spec.rules[0] (GET /api/{**}, noAuth) matches first",
		"[Accepted/RuleShadowed]",
		"Warning shop/api: spec.rules[1].jwt.authentications[0].jwksUri: signing keys fetched over plain http",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("validate output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestFlagsOverrideRenderOptions(t *testing.T) {
	input := filepath.Join("..", "..", "internal", "translate", "testdata", "default-gateway.in.yaml")
	code, stdout, stderr := runCLI(t, "", "render", "-f", input, "-ingress-gateway-principal", "example.org/ns/gw/sa/gw")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "- example.org/ns/gw/sa/gw") || strings.Contains(stdout, "istio-ingressgateway-service-account") {
		t.Errorf("the principal flag did not override the default:\n%s", stdout)
	}
	// The input's RenderOptions still sets the default gateway.
	if !strings.Contains(stdout, "- istio-system/public-gateway") {
		t.Errorf("the RenderOptions document was ignored:\n%s", stdout)
	}
}

func TestBadInput(t *testing.T) {
	cases := map[string]struct {
		stdin string
		args  []string
		want  string
	}{
		"no command":   {"", nil, "Usage:"},
		"no file":      {"", []string{"render"}, "-f FILE is required"},
		"unknown kind": {"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", []string{"render", "-f", "-"}, "unsupported object apps/v1 Deployment"},
		"no APIRule":   {"apiVersion: v1\nkind: Service\nmetadata: {name: x}\n", []string{"validate", "-f", "-"}, "holds no APIRule"},
		"missing file": {"", []string{"render", "-f", "does-not-exist.yaml"}, "no such file"},
	}
	for name, c := range cases {
		code, _, stderr := runCLI(t, c.stdin, c.args...)
		if code != 2 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit 2 and %q", name, code, stderr, c.want)
		}
	}
}

// A mesh config that does not parse is what the operator reports in status for the APIRules
// that read it: a finding with its reason, not a failure of the whole run.
func TestBrokenMeshConfigIsAFindingOfTheAPIRulesThatReadIt(t *testing.T) {
	input := `apiVersion: v1
kind: ConfigMap
metadata: {name: istio, namespace: istio-system}
data: {mesh: 'extensionProviders: {'}
---
apiVersion: gateway.apirule.io/v2
kind: APIRule
metadata: {name: authz, namespace: shop}
spec:
  hosts: [api.example.com]
  gateway: istio-system/public
  service: {name: api, port: 8000}
  rules:
  - {path: /x, methods: [GET], extAuth: {authorizers: [oauth2]}}
`
	code, stdout, _ := runCLI(t, input, "validate", "-f", "-")
	if code != 1 || !strings.Contains(stdout, "[ResolvedRefs/MeshConfigInvalid]") || !strings.Contains(stdout, "spec.rules: the Istio mesh config does not parse") {
		t.Errorf("exit %d, stdout:\n%s", code, stdout)
	}
}

// validate refuses what the API server refuses, with the server's field path: the CRD's schema
// and CEL rules run offline (tests/crd checks every case of its table against the server).
func TestValidateRefusesWhatTheAPIServerRefuses(t *testing.T) {
	const base = `apiVersion: gateway.apirule.io/v2
kind: APIRule
metadata: {name: x, namespace: shop}
spec:
  hosts: [api.example.com]
  service: {name: api, port: 8000}
`
	const gateway = "  gateway: istio-system/public\n"
	const noAuth = "  rules: [{path: /a, methods: [GET], noAuth: true}]\n"
	for name, c := range map[string]struct{ spec, field string }{
		"two strategies":   {gateway + `  rules: [{path: /a, methods: [GET], noAuth: true, jwt: {authentications: [{issuer: "https://i", jwksUri: "https://i/k"}]}}]` + "\n", "spec.rules[0]"},
		"no strategy":      {gateway + "  rules: [{path: /a, methods: [GET]}]\n", "spec.rules[0]"},
		"noAuth false":     {gateway + "  rules: [{path: /a, methods: [GET], noAuth: false}]\n", "spec.rules[0]"},
		"method case":      {gateway + "  rules: [{path: /a, methods: [get, FETCH], noAuth: true}]\n", "spec.rules[0].methods[0]"},
		"host bits":        {gateway + "  ipRestriction: {allow: [203.0.113.7/24]}\n" + noAuth, "spec.ipRestriction.allow[0]"},
		"prefix length":    {gateway + "  ipRestriction: {allow: [10.0.0.0/33]}\n" + noAuth, "spec.ipRestriction.allow[0]"},
		"allow with lists": {gateway + "  internalTraffic: {allow: true, fromNamespaces: [a]}\n" + noAuth, "spec.internalTraffic"},
		"gateway name":     {"  gateway: public\n" + noAuth, "spec.gateway"},
		"unknown field":    {gateway + "  hostz: [a]\n" + noAuth, "spec.hostz"},
	} {
		code, stdout, stderr := runCLI(t, base+c.spec, "validate", "-f", "-")
		if code != 1 || !strings.Contains(stdout, "Error shop/x: "+c.field+": ") {
			t.Errorf("%s: exit %d, want 1 and an error on %s; stdout:\n%s\nstderr:\n%s", name, code, c.field, stdout, stderr)
		}
		code, _, _ = runCLI(t, base+c.spec, "render", "-f", "-")
		if code != 1 {
			t.Errorf("%s: render exit %d, want 1", name, code)
		}
	}
}
