package istio_test

import (
	"strings"
	"testing"

	"github.com/apirule-operator/apirule-operator/tests/istio/harness"
)

// The validation check is only worth something if it can fail: objects istiod's webhook
// refuses must be refused here, with Istio's reason.
func TestIstioValidationRejectsKnownBadObjects(t *testing.T) {
	v, err := harness.IstioValidator()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, yaml, reason string }{
		{"a path operator after {**}", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: shop}
spec:
  selector: {matchLabels: {app: httpbin}}
  rules:
  - to: [{operation: {paths: ["/a/{**}/{*}"]}}]
`, "{**} is not the last operator"},
		{"a CIDR out of range", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: istio-system}
spec:
  action: DENY
  selector: {matchLabels: {istio: ingressgateway}}
  rules:
  - from: [{source: {notRemoteIpBlocks: [10.0.0.0/33]}}]
`, "10.0.0.0/33"},
		{"a CUSTOM policy without a provider", `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: bad, namespace: shop}
spec:
  action: CUSTOM
  rules:
  - to: [{operation: {paths: ["/a"]}}]
`, "provider"},
		{"a VirtualService route without a destination", `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: shop}
spec:
  hosts: [httpbin.example.com]
  http:
  - match: [{uri: {prefix: /}}]
`, "HTTP route, redirect or direct_response is required"},
		{"a MUTUAL server without credentials", `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bad, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: [partner.example.com]
    tls: {mode: MUTUAL}
`, "MUTUAL TLS requires a client CA bundle"},
		{"an unknown top-level field", `
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: bad, namespace: shop}
spec: {}
status2: {}
`, "status2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			docs, err := harness.ParseDocs([]byte(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			err = v.Validate(docs[0])
			if err == nil {
				t.Fatal("Istio's webhook admitted a bad object")
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Errorf("rejected for another reason: %v (want %q)", err, c.reason)
			}
		})
	}
}
