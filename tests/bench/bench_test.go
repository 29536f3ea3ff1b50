package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// TestSmoke runs the benchmark small, so the harness keeps working; the figures come from
// make bench.
func TestSmoke(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	report, err := Run(context.Background(), env, Config{
		N: 20, SteadyRate: 10, SteadyFor: time.Second, CeilingWorkers: []int{4}, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", report.Table())
	if report.ReadyAfter <= 0 || report.Throughput <= 0 || report.CeilingThroughput <= 0 {
		t.Errorf("missing figures: %+v", report)
	}
	if report.ObjectsPerAPIRule != 3 {
		t.Errorf("%d child objects per APIRule, want 3 (RequestAuthentication, AuthorizationPolicy, VirtualService)", report.ObjectsPerAPIRule)
	}
	if report.ResyncReconciles < 20 || report.ResyncWrites != 0 {
		t.Errorf("resync: %d reconciles, %d writes; want >= 20 and 0", report.ResyncReconciles, report.ResyncWrites)
	}
	if report.SteadyCount != 10 || report.SteadyLatency.P99 <= 0 {
		t.Errorf("steady run: %d APIRules, p99 %s", report.SteadyCount, report.SteadyLatency.P99)
	}
	if report.Requests["PATCH virtualservices"] != 20 || report.Requests["PATCH apirules/status"] == 0 {
		t.Errorf("requests: %v", report.Requests)
	}
	if !strings.Contains(report.Table(), "throughput / ceiling") {
		t.Errorf("table lacks the ratio:\n%s", report.Table())
	}
}

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
