package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// TestSmoke runs the benchmark small, so the harness keeps working, and holds the operator to
// its write budget; the figures come from make bench. It runs as an install does, with the
// operator serving its admission webhooks; BENCH_SMOKE_WEBHOOK=0 runs it without them, where
// the operator's own finalizer patch is the fifth write.
func TestSmoke(t *testing.T) {
	withWebhook := os.Getenv("BENCH_SMOKE_WEBHOOK") != "0"
	env, err := StartEnvironment(withWebhook, FinalizerByPolicy)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	manager, err := buildManager(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	report, err := Run(context.Background(), env, Config{
		N: n, ManagerBinary: manager, SteadyRates: []int{10, 20}, SteadyFor: time.Second, CeilingWorkers: []int{4}, Logf: t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", report.Table())
	if report.ReadyAfter <= 0 || report.Throughput <= 0 || report.Ceiling.Throughput <= 0 || report.ChildrenCeiling.Throughput <= 0 {
		t.Errorf("missing figures: %+v", report)
	}
	// The ceiling writes 5 times per APIRule, the children-only ceiling 3 times.
	if report.Ceiling.Writes != 5*n || report.ChildrenCeiling.Writes != 3*n {
		t.Errorf("ceiling writes %d and %d, want %d and %d", report.Ceiling.Writes, report.ChildrenCeiling.Writes, 5*n, 3*n)
	}
	// The operator's own process: the kernel's figures of it, and a restart that verified
	// every APIRule.
	if report.Bulk.CPUSeconds <= 0 || report.Bulk.PeakRSSMiB <= 0 || len(report.Steady) != 2 || report.Steady[1].Usage.PeakRSSMiB <= 0 || report.RestartVerifiedAfter <= 0 {
		t.Errorf("missing operator process figures: bulk %+v, steady %+v, restart after %s", report.Bulk, report.Steady, report.RestartVerifiedAfter)
	}
	if report.Driver.CPUSeconds <= 0 {
		t.Errorf("missing load driver figures: %+v", report.Driver)
	}
	if report.APIServerCPU <= 0 || report.EtcdCPU <= 0 || report.HalfRates[0] <= 0 || report.HalfRates[1] <= 0 || len(report.Steady) == 0 || report.Steady[0].APIServerCPU <= 0 {
		t.Errorf("missing control plane or half-run figures: kube-apiserver %.2f s, etcd %.2f s, halves %v", report.APIServerCPU, report.EtcdCPU, report.HalfRates)
	}
	checkCeilingStatusIsTheOperators(t, env)
	if report.ObjectsPerAPIRule != 3 {
		t.Errorf("%d child objects per APIRule, want 3 (RequestAuthentication, AuthorizationPolicy, VirtualService)", report.ObjectsPerAPIRule)
	}

	// The write budget of a new APIRule: its 3 children and one status write; the finalizer
	// comes with the create from the install's MutatingAdmissionPolicy, or costs a patch of
	// its own without it.
	if report.FinalizerAtAdmission != withWebhook {
		t.Fatalf("finalizer at admission: %v, want %v", report.FinalizerAtAdmission, withWebhook)
	}
	finalizerPatches := 0
	if withWebhook {
		t.Logf("budget: %d writes per APIRule (finalizer set at admission)", report.WriteBudget())
	} else {
		finalizerPatches = n
		t.Logf("budget: %d writes per APIRule (no admission: the operator patches the finalizer in)", report.WriteBudget())
	}
	if report.Writes > report.WriteBudget()*n {
		t.Errorf("%d operator writes for %d new APIRules (%.2f each), want at most %d each: %v",
			report.Writes, n, float64(report.Writes)/n, report.WriteBudget(), report.Requests)
	}
	if got := report.Requests["PATCH apirules"]; got != finalizerPatches {
		t.Errorf("the operator patched APIRules %d times, want %d", got, finalizerPatches)
	}
	// One create per child (a new object is never applied) and one status patch per APIRule.
	for _, request := range []string{"POST virtualservices", "POST authorizationpolicies", "POST requestauthentications", "PATCH apirules/status"} {
		if got := report.Requests[request]; got != n {
			t.Errorf("%s: %d, want %d (one per APIRule): %v", request, got, n, report.Requests)
		}
	}
	if got := report.Requests["POST events"]; got != 0 {
		t.Errorf("%d Events for APIRules that became Ready at once, want none", got)
	}
	// A restarted operator over settled APIRules writes nothing.
	if report.ResyncReconciles < n || report.ResyncWrites != 0 {
		t.Errorf("resync: %d reconciles, %d writes; want >= %d and 0: %v", report.ResyncReconciles, report.ResyncWrites, n, report.ResyncRequests)
	}
	for i, want := range []int{10, 20} {
		if i >= len(report.Steady) || report.Steady[i].Count != want || report.Steady[i].Latency.P99 <= 0 {
			t.Errorf("steady runs: %+v, want %d APIRules in run %d", report.Steady, want, i)
		}
	}
	if !strings.Contains(report.Table(), "highest steady rate with p99 under 1 s") {
		t.Errorf("table lacks the highest sub-second rate:\n%s", report.Table())
	}
	if !strings.Contains(report.Table(), "throughput / ceiling") {
		t.Errorf("table lacks the ratio:\n%s", report.Table())
	}
}

// checkCeilingStatusIsTheOperators: the status the ceiling writes is the one the operator
// wrote for the same APIRule, times aside, so the ceiling's status patch costs what the
// operator's does.
func checkCeilingStatusIsTheOperators(t *testing.T, env *Environment) {
	t.Helper()
	c, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	written := &apiv2.APIRule{}
	if err := c.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: "ar-0"}, written); err != nil {
		t.Fatal(err)
	}
	want := ceilingStatus(benchAPIRule(0), ceilingChildren(0, outcomeWrites))
	got := written.Status
	got.LastProcessedTime, want.LastProcessedTime = nil, nil
	for _, list := range [][]metav1.Condition{got.Conditions, want.Conditions} {
		for i := range list {
			list[i].LastTransitionTime = metav1.Time{}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the ceiling's status differs from the operator's (-ceiling +operator):\n%s", diff)
	}
}

// The readiness watch survives the API server ending it: with watches cut after a second,
// every APIRule that became Ready is seen, among them one that became Ready between two
// watches, when nothing was watching.
func TestReadyWatchResumesWhereItStopped(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	scheme, err := operator.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		t.Fatal(err)
	}
	markReady := func(name string) {
		t.Helper()
		rule := &apiv2.APIRule{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, rule); err != nil {
			t.Error(err)
			return
		}
		rule.Status.State = apiv2.StateReady
		rule.Status.ObservedGeneration = rule.Generation
		if err := c.Status().Update(ctx, rule); err != nil {
			t.Error(err)
		}
	}

	const n = 4
	w := newReadyWatch()
	w.timeout = 1
	var gapOnce sync.Once
	w.gap = func() {
		// Between the first watch's end and the next watch: a watch that started afresh
		// instead of resuming would never hear of this one.
		gapOnce.Do(func() { markReady("ar-gap") })
	}
	for _, name := range append([]string{"ar-gap"}, names(n)...) {
		rule := benchAPIRule(0)
		rule.Name = name
		w.created(name, time.Now())
		if err := c.Create(ctx, rule); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.start(ctx, c); err != nil {
		t.Fatal(err)
	}
	// One APIRule turns Ready per 1.5 s, each under a later watch than the one before.
	for _, name := range names(n) {
		time.Sleep(1500 * time.Millisecond)
		markReady(name)
	}
	if err := w.waitAll(ctx, n+1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	resumes, relists, received := w.resumes, w.relists, w.received
	w.mu.Unlock()
	if resumes < n {
		t.Errorf("%d watches resumed in %d s of one-second watches, want at least %d", resumes, 3*n/2, n)
	}
	if relists != 0 {
		t.Errorf("%d lists after the first: the watch should resume from its resourceVersion", relists)
	}
	// Resuming from the last resourceVersion replays nothing: the APIRules were created before
	// the first list, so the only events are the n+1 status changes. A watch started afresh
	// would begin with every APIRule again, at each resume.
	if received != n+1 {
		t.Errorf("%d APIRule events watched, want %d (one per status change)", received, n+1)
	}
}

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("ar-%d", i)
	}
	return out
}

// A failed phase is named in the error and the report, and the report keeps the figures of
// the phases before it and shows none of the phases that did not run.
func TestFailedPhaseKeepsEarlierFigures(t *testing.T) {
	r := &Report{N: 10, ObjectsPerAPIRule: 3, Requests: map[string]int{}}
	r.done(PhaseSetup)
	r.Ceiling = ceilingResult{Throughput: 50, Workers: 4, Duration: 200 * time.Millisecond, Writes: 50}
	r.ChildrenCeiling = ceilingResult{Throughput: 80, Workers: 4, Duration: 125 * time.Millisecond, Writes: 30}
	r.done(PhaseCeiling)
	err := r.fail(PhaseBulk, fmt.Errorf("only 7 of 10 APIRules Ready after 30m0s"))
	if !strings.Contains(err.Error(), "bench phase bulk: only 7 of 10") {
		t.Errorf("error %q does not name the phase", err)
	}
	table := r.Table()
	for _, want := range []string{"| failed | phase bulk: only 7 of 10 APIRules Ready after 30m0s (completed: setup, ceiling) |", "| write ceiling (plain client, no operator) | 50.0 APIRules/s", "| children-only ceiling (plain client) | 80.0 APIRules/s"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, absent := range []string{"throughput / ceiling", "restart", "operator writes", "operator process"} {
		if strings.Contains(table, absent) {
			t.Errorf("table shows %q of a phase that did not complete:\n%s", absent, table)
		}
	}
}

// The kube-apiserver profile is read from the API server's own profiling endpoint: a gzipped
// pprof profile, as go tool pprof reads it.
func TestProfileAPIServerWritesAProfile(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	path := filepath.Join(t.TempDir(), "apiserver.pprof")
	if err := profileAPIServer(context.Background(), env.Config, path, time.Second); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) < 2 || raw[0] != 0x1f || raw[1] != 0x8b {
		t.Errorf("not a gzipped profile: %d bytes starting %q", len(raw), raw[:min(len(raw), 16)])
	}
}

// The highest sub-second rate is the highest rate tried whose p99 stayed under a second,
// whatever the order of the runs.
func TestHalfRates(t *testing.T) {
	start := time.Unix(1000, 0)
	w := newReadyWatch()
	// 4 Ready after 1, 2, 3 and 5 s: the first two in 2 s, the other two in the 3 s after.
	for i, after := range []int{5, 1, 3, 2} {
		w.readyAt[fmt.Sprint(i)] = start.Add(time.Duration(after) * time.Second)
	}
	if got, want := w.halfRates(start), [2]float64{1, 2.0 / 3}; got != want {
		t.Errorf("halfRates = %v, want %v", got, want)
	}
}

func TestSubSecondRate(t *testing.T) {
	r := &Report{Steady: []steadyResult{
		{Rate: 100, Latency: Percentiles{P99: 1400 * time.Millisecond}},
		{Rate: 50, Latency: Percentiles{P99: 500 * time.Millisecond}},
		{Rate: 75, Latency: Percentiles{P99: 999 * time.Millisecond}},
	}}
	if got := r.SubSecondRate(); got != 75 {
		t.Errorf("SubSecondRate() = %d, want 75", got)
	}
	r.Steady[1].Latency.P99, r.Steady[2].Latency.P99 = time.Second, 2*time.Second
	if got := r.SubSecondRate(); got != 0 {
		t.Errorf("SubSecondRate() = %d with no run under a second, want 0", got)
	}
}

// The audit log is counted as testenv.RequestCounter counts: by verb and resource, each request
// once however many stages it is recorded at, the leader election's Event with the leases,
// and a line still being written only once it is whole.
func TestAuditLogCountsEachRequestOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	lines := []string{
		`{"auditID":"1","stage":"ResponseComplete","verb":"patch","requestURI":"/apis/x","objectRef":{"resource":"virtualservices"}}`,
		`{"auditID":"2","stage":"ResponseComplete","verb":"patch","requestURI":"/apis/x","objectRef":{"resource":"apirules","subresource":"status"}}`,
		`{"auditID":"3","stage":"ResponseStarted","verb":"watch","requestURI":"/apis/x?watch=true","objectRef":{"resource":"apirules"}}`,
		`{"auditID":"3","stage":"ResponseComplete","verb":"watch","requestURI":"/apis/x?watch=true","objectRef":{"resource":"apirules"}}`,
		`{"auditID":"4","stage":"ResponseComplete","verb":"create","requestURI":"/api/v1/namespaces/default/events","objectRef":{"resource":"events"},"requestObject":{"involvedObject":{"kind":"Lease"}}}`,
		`{"auditID":"5","stage":"ResponseComplete","verb":"create","requestURI":"/apis/events.k8s.io/v1/namespaces/bench/events","objectRef":{"resource":"events"},"requestObject":{"regarding":{"kind":"APIRule"}}}`,
		`{"auditID":"6","stage":"ResponseComplete","verb":"update","requestURI":"/apis/coordination.k8s.io/v1/leases/x","objectRef":{"resource":"leases"}}`,
		`{"auditID":"7","stage":"ResponseComplete","verb":"get","requestURI":"/apis"}`,
	}
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = f.Close() }()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	log := newAuditLog(path)
	write(strings.Join(lines[:3], "\n") + "\n" + lines[3][:20])
	counts, writes, err := log.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if writes != 2 || counts["WATCH apirules"] != 1 {
		t.Errorf("after a partial line: %v, %d writes; want 2 writes and the watch once", counts, writes)
	}
	write(lines[3][20:] + "\n" + strings.Join(lines[4:], "\n") + "\n")
	counts, writes, err = log.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"PATCH virtualservices": 1, "PATCH apirules/status": 1, "WATCH apirules": 1,
		"POST events(Lease)": 1, "POST events": 1, "PUT leases": 1, "GET discovery": 1,
	}
	if !cmp.Equal(counts, want) {
		t.Errorf("counts %v, want %v", counts, want)
	}
	// The APIRule's Event counts; the lease and its Event do not.
	if writes != 3 {
		t.Errorf("%d writes, want 3", writes)
	}
	before := counts
	write(`{"auditID":"8","stage":"ResponseComplete","verb":"patch","requestURI":"/apis/x","objectRef":{"resource":"virtualservices"}}` + "\n")
	after, _, err := log.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if got := since(after, before); !cmp.Equal(got, map[string]int{"PATCH virtualservices": 1}) {
		t.Errorf("since: %v", got)
	}
}
