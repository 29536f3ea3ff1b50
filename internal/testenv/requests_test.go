package testenv

import "testing"

func TestResourceOfPath(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/namespaces/bench/pods":                                                  "pods",
		"/api/v1/namespaces/bench/services/ar-1":                                         "services",
		"/apis/gateway.apirule.io/v2/namespaces/bench/apirules/ar-1/status":              "apirules/status",
		"/apis/networking.istio.io/v1/virtualservices":                                   "virtualservices",
		"/apis/coordination.k8s.io/v1/namespaces/default/leases/apirule-operator":        "leases",
		"/apis/security.istio.io/v1/namespaces/bench/authorizationpolicies/ar-1-authz-x": "authorizationpolicies",
	} {
		if got := resource(path); got != want {
			t.Errorf("resource(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestObjectOfPath(t *testing.T) {
	for path, want := range map[string]string{
		"/api/v1/namespaces/bench/pods":                                     "",
		"/api/v1/namespaces/bench/services/ar-1":                            "bench/ar-1",
		"/apis/gateway.apirule.io/v2/namespaces/bench/apirules/ar-1/status": "bench/ar-1",
		"/apis/networking.istio.io/v1/virtualservices":                      "",
		"/api/v1/namespaces/bench":                                          "bench",
		"/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/apirule-operator-mutating-webhook-configuration": "apirule-operator-mutating-webhook-configuration",
		"/apis": "",
	} {
		if got := objectName(path); got != want {
			t.Errorf("objectName(%q) = %q, want %q", path, got, want)
		}
	}
}
