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
	defer func() { _ = env.Stop() }()
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
