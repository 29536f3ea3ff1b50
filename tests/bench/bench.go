// Package bench measures the operator on a real kube-apiserver and etcd: how fast N APIRules
// become Ready, against the write ceiling of the same API server, what the operator sends,
// how fast a restarted operator has verified every APIRule and what that costs, latency under
// a steady load, and the operator's CPU and memory. The operator is the manager binary in a
// process of its own, as a Deployment runs it; this process is the load driver.
//
// The workload is the one of docs/architecture.md (Performance targets), so figures compare over time: one namespace;
// per APIRule a Service (selector app: ar-<i>) and one Pod with an istio-proxy container; host
// ar-<i>.example.com on a Gateway serving *.example.com; rules GET /public noAuth,
// GET,POST /api/{**} jwt, GET /health noAuth.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// Config sets the size of a run.
type Config struct {
	// N is the number of APIRules of the bulk run.
	N int
	// ManagerBinary is the built cmd/manager the run starts as the operator.
	ManagerBinary string
	// SteadyRates are the rates, in APIRules per second, at which new APIRules are created
	// for SteadyFor each after the bulk run, one after the other; none skips the steady runs.
	SteadyRates []int
	SteadyFor   time.Duration
	// CeilingWorkers are the concurrencies the plain client tries; the best one is the ceiling.
	CeilingWorkers []int
	// Workers overrides the operator's concurrent reconciles; 0 keeps the default.
	Workers int
	// Logf reports progress.
	Logf func(format string, args ...any)
	// APIServerProfile and OperatorProfile, when set, are where CPU profiles of kube-apiserver
	// and of the operator during the bulk run are written (their /debug/pprof/profile
	// endpoints), taken for ProfileFor from the first create.
	APIServerProfile string
	OperatorProfile  string
	ProfileFor       time.Duration
	// OperatorHeapProfile, when set, is where a heap profile of the operator is written at
	// the end of the bulk run, when its cache holds every APIRule and child.
	OperatorHeapProfile string
	// RestartHeapProfile, when set, is where a heap profile of the restarted operator is
	// written once it has verified every APIRule.
	RestartHeapProfile string
	// OperatorMemoryLimit, when set, is the operator process's GOMEMLIMIT, as an install sets
	// it from the container's memory limit.
	OperatorMemoryLimit string
	// OperatorLogDir, when set, is where the operator processes' logs (operator-bulk.log,
	// operator-restarted.log) are kept; otherwise they go with the run's other files.
	OperatorLogDir string
	// OperatorGODEBUG, when set, is the operator processes' GODEBUG (gctrace=1 writes the
	// collector's trace into their logs).
	OperatorGODEBUG string
}

// Report holds the figures of a run.
type Report struct {
	N                 int
	ObjectsPerAPIRule int
	ReadyAfter        time.Duration
	Throughput        float64 // APIRules per second
	Latency           Percentiles
	Requests          map[string]int // "VERB resource" -> count, issued by the operator
	Writes            int
	// FinalizerAtAdmission: the install's MutatingAdmissionPolicy or the operator's mutating
	// webhook was in place, so the finalizer came with each APIRule's create; otherwise the
	// operator patched it in (Requests["PATCH apirules"]).
	FinalizerAtAdmission bool
	// FinalizerBy is who set it at admission: FinalizerByPolicy or FinalizerByWebhook.
	FinalizerBy string
	// MemoryLimit is the operator process's GOMEMLIMIT, if it had one.
	MemoryLimit string
	// Bulk is the operator process's usage from its start to the end of the bulk run.
	Bulk usage
	// APIServerCPU and EtcdCPU are the control plane's CPU seconds over the bulk run, from
	// the first create until every APIRule was Ready.
	APIServerCPU, EtcdCPU float64
	// HalfRates are the throughput of the bulk run's first half of APIRules Ready and of its
	// second: a cost per APIRule that grows with N shows as a slower second half.
	HalfRates [2]float64
	// RestartVerifiedAfter is the time from the restarted operator's start until it had
	// reconciled every settled APIRule; Restart its usage until then.
	RestartVerifiedAfter time.Duration
	Restart              usage
	ResyncReconciles     int
	ResyncWrites         int
	ResyncRequests       map[string]int
	// The ceiling: a plain client's writes of the outcome (the APIRule create, its 3
	// children, one status patch) per APIRule, best of the concurrencies tried.
	Ceiling ceilingResult
	// ChildrenCeiling: the 3 children alone per APIRule (the ceiling of earlier reports).
	ChildrenCeiling ceilingResult
	Ratio           float64 // Throughput / Ceiling
	ChildrenRatio   float64 // Throughput / ChildrenCeiling
	// Steady are the steady runs, in the order of Config.SteadyRates.
	Steady []steadyResult
	// Driver is this process's usage: the load driver and the ceiling's client.
	Driver usage
	// Completed are the phases that finished, in order; their figures are set. FailedPhase
	// is the phase that failed, if one did, and Failure its error.
	Completed   []string
	FailedPhase string
	Failure     string
}

// The phases of a run.
const (
	PhaseSetup   = "setup"
	PhaseCeiling = "ceiling"
	PhaseBulk    = "bulk"
	PhaseResync  = "resync"
	PhaseSteady  = "steady"
)

// WriteBudget is the most the operator may write for one new APIRule: its 3 children and
// one status write, and the finalizer patch when admission did not set the finalizer.
func (r *Report) WriteBudget() int {
	if r.FinalizerAtAdmission {
		return 4
	}
	return 5
}

// fail records that phase failed and returns the error, naming the phase.
func (r *Report) fail(phase string, err error) error {
	r.FailedPhase, r.Failure = phase, err.Error()
	return fmt.Errorf("bench phase %s: %w", phase, err)
}

func (r *Report) done(phase string) { r.Completed = append(r.Completed, phase) }

// Has says whether the phase completed.
func (r *Report) Has(phase string) bool { return slices.Contains(r.Completed, phase) }

// steadyResult is one steady run: APIRules created at Rate per second for For.
type steadyResult struct {
	Rate    int
	For     time.Duration
	Count   int
	Latency Percentiles
	// Usage is the restarted operator's over the run: its CPU then, and its peak RSS since
	// its start.
	Usage usage
	// APIServerCPU and EtcdCPU are the control plane's CPU seconds over the run.
	APIServerCPU, EtcdCPU float64
}

// SubSecondRate is the highest steady rate whose p99 create-to-Ready latency stayed under a
// second, 0 if none did.
func (r *Report) SubSecondRate() int {
	best := 0
	for _, s := range r.Steady {
		if s.Latency.P99 < time.Second && s.Rate > best {
			best = s.Rate
		}
	}
	return best
}

// Percentiles of a latency distribution.
type Percentiles struct{ P50, P95, P99, Max time.Duration }

const (
	namespace        = "bench"
	ceilingNamespace = "bench-ceiling"
	gatewayNamespace = "istio-system"
	gatewayName      = "bench-gateway"
	clientWorkers    = 16
	leaseNamespace   = "default"
)

// Environment is the control plane of a run, with kube-apiserver's audit log of the
// operator's requests, and a directory for the run's files (the operator's kubeconfig and
// logs), removed by Stop.
type Environment struct {
	*testenv.Environment
	dir   string
	audit *auditLog
	controlPlane
	// finalizer is who sets the finalizer on create (FinalizerByPolicy or FinalizerByWebhook);
	// empty: nobody at admission.
	finalizer string
}

// Finalizer admission of a run: who sets the finalizer as an APIRule is created.
const (
	// FinalizerByPolicy is the install's MutatingAdmissionPolicy (config/finalizer-policy).
	FinalizerByPolicy = "policy"
	// FinalizerByWebhook is the operator's mutating webhook, as installed on clusters before
	// Kubernetes 1.36 (config/components/finalizer-webhook).
	FinalizerByWebhook = "webhook"
)

// StartEnvironment starts the control plane of a run. With webhook, the API server admits
// APIRules as an install's does: it calls the operator's validating webhook (config/webhook, a
// certificate envtest issues), which Run's operator serves, and sets the finalizer as
// finalizer says (FinalizerByPolicy or FinalizerByWebhook).
func StartEnvironment(webhook bool, finalizer string) (*Environment, error) {
	if webhook && finalizer != FinalizerByPolicy && finalizer != FinalizerByWebhook {
		return nil, fmt.Errorf("finalizer admission %q: want %q or %q", finalizer, FinalizerByPolicy, FinalizerByWebhook)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	out, err := startAudited(func(e *envtest.Environment) {
		if webhook {
			paths := []string{filepath.Join(root, "config", "webhook", "manifests.yaml")}
			if finalizer == FinalizerByWebhook {
				paths = append(paths, filepath.Join(root, "config", "components", "finalizer-webhook", "mutating-webhook.yaml"))
			}
			e.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: paths}
		}
	})
	if err != nil {
		return nil, err
	}
	env := out.Environment
	if webhook {
		out.finalizer = finalizer
	}
	if webhook && finalizer == FinalizerByPolicy {
		c, err := env.Client()
		if err != nil {
			return nil, errors.Join(err, out.Stop())
		}
		// The operator's start waits until a dry-run create comes back with the finalizer.
		if err := testenv.InstallFinalizerPolicy(context.Background(), c); err != nil {
			return nil, errors.Join(err, out.Stop())
		}
	}
	return out, nil
}

// controlPlane are the processes of a control plane, whose CPU the report shows.
type controlPlane struct{ apiServerPID, etcdPID int }

func findControlPlane(env *testenv.Environment) (controlPlane, error) {
	apiServer, errAPIServer := controlPlaneProcess("kube-apiserver", "--secure-port="+env.ControlPlane.APIServer.Port)
	etcd, errEtcd := controlPlaneProcess("etcd", "--listen-client-urls="+env.ControlPlane.Etcd.URL.String())
	return controlPlane{apiServer, etcd}, errors.Join(errAPIServer, errEtcd)
}

// cpu is the CPU seconds kube-apiserver and etcd have used so far.
func (p controlPlane) cpu() (apiServer, etcd float64, err error) {
	a, errAPIServer := processUsage(p.apiServerPID)
	b, errEtcd := processUsage(p.etcdPID)
	return a.CPUSeconds, b.CPUSeconds, errors.Join(errAPIServer, errEtcd)
}

// operatorLog is the path of an operator process's log.
func operatorLog(env *Environment, cfg Config, name string) string {
	if cfg.OperatorLogDir != "" {
		return filepath.Join(cfg.OperatorLogDir, name)
	}
	return filepath.Join(env.dir, name)
}

// startAudited starts a control plane, adjusted by configure, whose kube-apiserver writes the
// audit log of the manager's user (auditPolicy) into the run's directory. The operator's runs
// and the ceiling's rounds both start theirs here, so that the log, which costs the API server
// a little for each request it records, weighs on both alike.
func startAudited(configure func(*envtest.Environment)) (*Environment, error) {
	dir, err := os.MkdirTemp("", "apirule-bench-")
	if err != nil {
		return nil, err
	}
	policy, logPath, err := auditArgs(dir, testenv.ManagerUser)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	env, err := testenv.StartWith(func(e *envtest.Environment) {
		if configure != nil {
			configure(e)
		}
		e.ControlPlane.GetAPIServer().Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", logPath).
			Set("audit-log-mode", "blocking").
			// No rotation: the log is read from where the last read ended.
			Set("audit-log-maxsize", "0")
	})
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	out := &Environment{Environment: env, dir: dir, audit: newAuditLog(logPath)}
	if out.controlPlane, err = findControlPlane(env); err != nil {
		return nil, errors.Join(err, out.Stop())
	}
	return out, nil
}

// Stop stops the control plane and removes the run's files.
func (e *Environment) Stop() error {
	return errors.Join(e.Environment.Stop(), os.RemoveAll(e.dir))
}

// Run performs a benchmark on the environment's API server. It always returns a report: when
// a phase fails, the error names it and the report keeps the figures of the phases before.
func Run(ctx context.Context, env *Environment, cfg Config) (*Report, error) {
	report := &Report{N: cfg.N, Requests: map[string]int{}, MemoryLimit: cfg.OperatorMemoryLimit}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	// The driver's figures cover what ran, also when a later phase fails.
	defer func() { report.Driver, _ = processUsage(os.Getpid()) }()
	driverCfg := rest.CopyConfig(env.Config)
	driverCfg.QPS, driverCfg.Burst = 500, 1000
	// The readiness watch is the bench's instrument: uncompressed, so that kube-apiserver does
	// not spend on compressing it CPU that would show as the operator's.
	driverCfg.DisableCompression = true
	scheme, err := operator.NewScheme()
	if err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	c, err := client.NewWithWatch(driverCfg, client.Options{Scheme: scheme})
	if err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	hook := env.WebhookInstallOptions
	report.FinalizerAtAdmission, report.FinalizerBy = env.finalizer != "", env.finalizer

	logf("creating the Gateway, %d Services and %d Pods", cfg.N, cfg.N)
	for _, obj := range []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gatewayNamespace}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}},
		fixtures.Gateway(gatewayNamespace, gatewayName, "*.example.com"),
		fixtures.GatewayCredential(gatewayNamespace, gatewayName, "*.example.com"),
	} {
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return report, report.fail(PhaseSetup, err)
		}
	}
	// The backends of the steady runs come before each run, so the cache holds N of them
	// while the bulk run is measured.
	if err := createBackends(ctx, c, 0, cfg.N); err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	// The operator runs with the install's RBAC only; its namespace holds the lease.
	kubeconfig, err := env.ManagerKubeconfig(ctx, leaseNamespace)
	if err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	process := processOptions{binary: cfg.ManagerBinary, kubeconfig: filepath.Join(env.dir, "manager.kubeconfig"), workers: cfg.Workers, hook: hook, memoryLimit: cfg.OperatorMemoryLimit, godebug: cfg.OperatorGODEBUG}
	if err := os.WriteFile(process.kubeconfig, kubeconfig, 0o600); err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	report.done(PhaseSetup)

	if err := measureCeiling(ctx, cfg, report, logf); err != nil {
		return report, report.fail(PhaseCeiling, err)
	}
	report.done(PhaseCeiling)

	ready := newReadyWatch()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := ready.start(watchCtx, c); err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	// Only the operator's requests count from here (setting up its user sent some).
	baseline, _, err := env.audit.Snapshot()
	if err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	process.logPath = operatorLog(env, cfg, "operator-bulk.log")
	op, err := startOperatorProcess(ctx, process, c)
	if err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	// Whatever happens next, no operator process outlives the run.
	defer func() { op.stop() }()

	profiles := startProfiles(ctx, env, op, cfg)
	logf("creating %d APIRules", cfg.N)
	apiServerBefore, etcdBefore, err := env.cpu()
	if err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	start := time.Now()
	if err := parallel(cfg.N, clientWorkers, func(i int) error {
		return createAPIRule(ctx, c, i, ready)
	}); err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	if err := ready.waitAll(ctx, cfg.N, 30*time.Minute); err != nil {
		return report, report.fail(PhaseBulk, fmt.Errorf("%w%s", err, op.logTail()))
	}
	apiServerAfter, etcdAfter, err := env.cpu()
	if err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	report.APIServerCPU, report.EtcdCPU = apiServerAfter-apiServerBefore, etcdAfter-etcdBefore
	report.ReadyAfter = ready.last().Sub(start)
	report.HalfRates = ready.halfRates(start)
	report.Throughput = float64(cfg.N) / report.ReadyAfter.Seconds()
	report.Latency = percentiles(ready.latencies())
	report.Ratio = report.Throughput / report.Ceiling.Throughput
	report.ChildrenRatio = report.Throughput / report.ChildrenCeiling.Throughput
	after, err := waitQuiet(env.audit)
	if err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	report.Requests = since(after, baseline)
	report.Writes = testenv.Writes(report.Requests)
	if report.Bulk, err = op.usage(); err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	logf("%d APIRules Ready after %s", cfg.N, report.ReadyAfter.Round(time.Millisecond))
	if err := profiles.wait(logf); err != nil {
		return report, report.fail(PhaseBulk, err)
	}
	if cfg.OperatorHeapProfile != "" {
		if err := op.heapProfile(ctx, cfg.OperatorHeapProfile); err != nil {
			return report, report.fail(PhaseBulk, err)
		}
		logf("heap profile of the operator: %s", cfg.OperatorHeapProfile)
	}
	report.done(PhaseBulk)

	logf("restarting the operator over %d settled APIRules", cfg.N)
	op.stop()
	if baseline, _, err = env.audit.Snapshot(); err != nil {
		return report, report.fail(PhaseResync, err)
	}
	process.logPath = operatorLog(env, cfg, "operator-restarted.log")
	if op, err = startOperatorProcess(ctx, process, c); err != nil {
		return report, report.fail(PhaseResync, err)
	}
	if err := op.waitUnlessExited(ctx, 10*time.Minute, func() bool { return op.knownAPIRules() >= cfg.N }); err != nil {
		return report, report.fail(PhaseResync, fmt.Errorf("the restarted operator did not reconcile all %d APIRules: %w%s", cfg.N, err, op.logTail()))
	}
	report.RestartVerifiedAfter = time.Since(op.started)
	if report.Restart, err = op.usage(); err != nil {
		return report, report.fail(PhaseResync, err)
	}
	if after, err = waitQuiet(env.audit); err != nil {
		return report, report.fail(PhaseResync, err)
	}
	report.ResyncRequests = since(after, baseline)
	report.ResyncWrites = testenv.Writes(report.ResyncRequests)
	reconciles, err := op.metric("controller_runtime_reconcile_total", map[string]string{"controller": "apirule"})
	if err != nil {
		return report, report.fail(PhaseResync, err)
	}
	report.ResyncReconciles = int(reconciles)
	logf("the restarted operator verified %d APIRules %s after its start", cfg.N, report.RestartVerifiedAfter.Round(time.Millisecond))
	if cfg.RestartHeapProfile != "" {
		if err := op.heapProfile(ctx, cfg.RestartHeapProfile); err != nil {
			return report, report.fail(PhaseResync, err)
		}
		logf("heap profile of the restarted operator: %s", cfg.RestartHeapProfile)
	}
	report.done(PhaseResync)

	next := cfg.N
	for _, rate := range cfg.SteadyRates {
		count := rate * int(cfg.SteadyFor/time.Second)
		if err := createBackends(ctx, c, next, next+count); err != nil {
			return report, report.fail(PhaseSteady, err)
		}
		// The operator's watches deliver the new Services and Pods before the run starts.
		time.Sleep(2 * time.Second)
		result, err := runSteady(ctx, c, op, env.controlPlane, rate, cfg.SteadyFor, next, logf)
		if err != nil {
			return report, report.fail(PhaseSteady, fmt.Errorf("%d APIRules/s: %w", rate, err))
		}
		report.Steady = append(report.Steady, result)
		next += result.Count
	}
	if len(cfg.SteadyRates) > 0 {
		report.done(PhaseSteady)
	}
	return report, nil
}

// createBackends creates the Services and Pods of APIRules from to to-1: per APIRule a
// Service and one Pod with the sidecar that it selects.
func createBackends(ctx context.Context, c client.Client, from, to int) error {
	return parallel(to-from, clientWorkers, func(i int) error {
		name := fmt.Sprintf("ar-%d", from+i)
		svc := fixtures.Service(namespace, name, 8000)
		// Headless: the local API server's service range holds only 254 addresses.
		svc.Spec.ClusterIP = corev1.ClusterIPNone
		if err := c.Create(ctx, svc); err != nil {
			return err
		}
		return c.Create(ctx, fixtures.SidecarPod(namespace, name+"-0", name))
	})
}

// runSteady creates rate APIRules per second for a while, numbered from first, and measures
// their create-to-Ready latency and the operator's CPU meanwhile.
func runSteady(ctx context.Context, c client.WithWatch, op *operatorProcess, processes controlPlane, rate int, length time.Duration, first int, logf func(string, ...any)) (steadyResult, error) {
	result := steadyResult{Rate: rate, For: length, Count: rate * int(length/time.Second)}
	logf("steady load: %d APIRules/s for %s", rate, length)
	steady := newReadyWatch()
	steadyCtx, stopSteady := context.WithCancel(ctx)
	defer stopSteady()
	if err := steady.start(steadyCtx, c); err != nil {
		return result, err
	}
	before, err := op.usage()
	if err != nil {
		return result, err
	}
	apiServerBefore, etcdBefore, err := processes.cpu()
	if err != nil {
		return result, err
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	var creates sync.WaitGroup
	var createErr error
	var errOnce sync.Once
	for i := 0; i < result.Count; i++ {
		<-tick.C
		creates.Add(1)
		go func(i int) {
			defer creates.Done()
			if err := createAPIRule(ctx, c, first+i, steady); err != nil {
				errOnce.Do(func() { createErr = err })
			}
		}(i)
	}
	tick.Stop()
	creates.Wait()
	if createErr != nil {
		return result, createErr
	}
	if err := steady.waitAll(ctx, result.Count, 10*time.Minute); err != nil {
		return result, fmt.Errorf("%w%s", err, op.logTail())
	}
	after, err := op.usage()
	if err != nil {
		return result, err
	}
	apiServerAfter, etcdAfter, err := processes.cpu()
	if err != nil {
		return result, err
	}
	result.APIServerCPU, result.EtcdCPU = apiServerAfter-apiServerBefore, etcdAfter-etcdBefore
	result.Latency = percentiles(steady.latencies())
	result.Usage = usage{CPUSeconds: after.CPUSeconds - before.CPUSeconds, PeakRSSMiB: after.PeakRSSMiB}
	logf("steady load %d APIRules/s: p99 %s", rate, result.Latency.P99.Round(time.Millisecond))
	return result, nil
}

// profiling runs the CPU profiles of the bulk run, if any were asked for.
type profiling struct {
	pending []string
	done    chan error
}

func startProfiles(ctx context.Context, env *Environment, op *operatorProcess, cfg Config) *profiling {
	p := &profiling{done: make(chan error, 2)}
	if cfg.APIServerProfile != "" {
		p.pending = append(p.pending, "kube-apiserver: "+cfg.APIServerProfile)
		go func() { p.done <- profileAPIServer(ctx, env.Config, cfg.APIServerProfile, cfg.ProfileFor) }()
	}
	if cfg.OperatorProfile != "" {
		p.pending = append(p.pending, "operator: "+cfg.OperatorProfile)
		go func() { p.done <- op.profile(ctx, cfg.OperatorProfile, cfg.ProfileFor) }()
	}
	return p
}

func (p *profiling) wait(logf func(string, ...any)) error {
	var errs []error
	for range p.pending {
		errs = append(errs, <-p.done)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, written := range p.pending {
		logf("CPU profile of %s", written)
	}
	return nil
}

// waitQuiet waits until the audit log has recorded no write by the operator (leases aside)
// for a second, and returns the counts then.
func waitQuiet(audit *auditLog) (map[string]int, error) {
	_, before, err := audit.Snapshot()
	for err == nil {
		time.Sleep(time.Second)
		var counts map[string]int
		var after int
		if counts, after, err = audit.Snapshot(); err == nil && after == before {
			return counts, nil
		}
		before = after
	}
	return nil, err
}

// benchAPIRule is APIRule i of the fixed workload.
func benchAPIRule(i int) *apiv2.APIRule {
	return fixtures.WorkloadAPIRule(namespace, fmt.Sprintf("ar-%d", i), gatewayNamespace+"/"+gatewayName)
}

func createAPIRule(ctx context.Context, c client.Client, i int, ready *readyWatch) error {
	rule := benchAPIRule(i)
	ready.created(rule.Name, time.Now())
	return c.Create(ctx, rule)
}

// readyWatch records when each APIRule was created and when it first reported Ready. It
// lists the APIRules, then watches from the list's resourceVersion with bookmarks, and when
// the API server ends the watch (it does after a timeout of its choosing) it watches again
// from the last resourceVersion it saw, so no change in between is missed; when that version
// is too old (410 Gone) it lists again.
type readyWatch struct {
	mu        sync.Mutex
	createdAt map[string]time.Time
	readyAt   map[string]time.Time
	changed   chan struct{}
	// lastErr is the latest failure to watch again, for the message of a run that times out.
	lastErr error
	// resumes counts the watches started after the first; relists the lists after the first;
	// received the APIRule events watched (bookmarks aside).
	resumes, relists, received int

	// timeout, when set, asks the API server to end each watch after that many seconds.
	timeout int64
	// gap, when set, runs between the end of a watch and the next one.
	gap func()
}

func newReadyWatch() *readyWatch {
	return &readyWatch{createdAt: map[string]time.Time{}, readyAt: map[string]time.Time{}, changed: make(chan struct{}, 1)}
}

func (w *readyWatch) created(name string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.createdAt[name] = at
}

// start lists and starts watching; it returns once the watch is established.
func (w *readyWatch) start(ctx context.Context, c client.WithWatch) error {
	rv, err := w.list(ctx, c)
	if err != nil {
		return err
	}
	events, err := w.watch(ctx, c, rv)
	if err != nil {
		return err
	}
	go w.run(ctx, c, events, rv)
	return nil
}

// list observes every APIRule and returns the list's resourceVersion.
func (w *readyWatch) list(ctx context.Context, c client.WithWatch) (string, error) {
	list := &apiv2.APIRuleList{}
	if err := c.List(ctx, list, client.InNamespace(namespace)); err != nil {
		return "", err
	}
	for i := range list.Items {
		w.observe(&list.Items[i])
	}
	return list.ResourceVersion, nil
}

func (w *readyWatch) watch(ctx context.Context, c client.WithWatch, rv string) (watch.Interface, error) {
	raw := &metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true}
	if w.timeout > 0 {
		raw.TimeoutSeconds = &w.timeout
	}
	return c.Watch(ctx, &apiv2.APIRuleList{}, &client.ListOptions{Namespace: namespace, Raw: raw})
}

func (w *readyWatch) run(ctx context.Context, c client.WithWatch, events watch.Interface, rv string) {
	defer func() {
		if events != nil {
			events.Stop()
		}
	}()
	for {
		var e watch.Event
		var open bool
		select {
		case <-ctx.Done():
			return
		case e, open = <-events.ResultChan():
		}
		switch {
		case !open:
		case e.Type == watch.Error:
			if err := apierrors.FromObject(e.Object); apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				rv = ""
			}
			events.Stop()
		default:
			if m, err := meta.Accessor(e.Object); err == nil && m.GetResourceVersion() != "" {
				rv = m.GetResourceVersion()
			}
			if e.Type == watch.Bookmark {
				continue
			}
			w.mu.Lock()
			w.received++
			w.mu.Unlock()
			if rule, isRule := e.Object.(*apiv2.APIRule); isRule && e.Type != watch.Deleted {
				w.observe(rule)
			}
			continue
		}
		if events = w.resume(ctx, c, &rv); events == nil {
			return
		}
	}
}

// resume watches again from *rv, or lists first when *rv is empty (too old to watch from),
// until it succeeds or the context ends (then nil).
func (w *readyWatch) resume(ctx context.Context, c client.WithWatch, rv *string) watch.Interface {
	for ctx.Err() == nil {
		if w.gap != nil {
			w.gap()
		}
		var err error
		if *rv == "" {
			w.mu.Lock()
			w.relists++
			w.mu.Unlock()
			*rv, err = w.list(ctx, c)
		}
		if err == nil {
			var events watch.Interface
			if events, err = w.watch(ctx, c, *rv); err == nil {
				w.mu.Lock()
				w.resumes++
				w.mu.Unlock()
				return events
			}
			if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
				*rv = ""
			}
		}
		w.mu.Lock()
		w.lastErr = err
		w.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// observe records the first time an APIRule created by this run reports Ready for its
// current generation.
func (w *readyWatch) observe(rule *apiv2.APIRule) {
	if rule.Status.State != apiv2.StateReady || rule.Status.ObservedGeneration != rule.Generation {
		return
	}
	now := time.Now()
	w.mu.Lock()
	if _, seen := w.readyAt[rule.Name]; !seen {
		if _, ours := w.createdAt[rule.Name]; ours {
			w.readyAt[rule.Name] = now
		}
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *readyWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.readyAt)
}

func (w *readyWatch) waitAll(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.After(limit)
	for w.count() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			w.mu.Lock()
			lastErr := w.lastErr
			w.mu.Unlock()
			if lastErr != nil {
				return fmt.Errorf("only %d of %d APIRules Ready after %s (the readiness watch last failed with: %w)", w.count(), n, limit, lastErr)
			}
			return fmt.Errorf("only %d of %d APIRules Ready after %s", w.count(), n, limit)
		case <-w.changed:
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (w *readyWatch) last() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, t := range w.readyAt {
		if t.After(last) {
			last = t
		}
	}
	return last
}

// halfRates are the APIRules per second of the first half of the Ready ones, counted from
// start, and of the second half, counted from the moment the first half was Ready.
func (w *readyWatch) halfRates(start time.Time) [2]float64 {
	w.mu.Lock()
	times := slices.SortedFunc(maps.Values(w.readyAt), time.Time.Compare)
	w.mu.Unlock()
	if len(times) < 2 {
		return [2]float64{}
	}
	half := len(times) / 2
	middle, end := times[half-1], times[len(times)-1]
	return [2]float64{float64(half) / middle.Sub(start).Seconds(), float64(len(times)-half) / end.Sub(middle).Seconds()}
}

func (w *readyWatch) latencies() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]time.Duration, 0, len(w.readyAt))
	for name, at := range w.readyAt {
		out = append(out, at.Sub(w.createdAt[name]))
	}
	return out
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return Percentiles{P50: at(0.50), P95: at(0.95), P99: at(0.99), Max: d[len(d)-1]}
}

// servesWebhooks says whether the API server was set up to call the operator's webhooks
// (envtest fills in the serving options either way, so the registered webhooks decide).
func servesWebhooks(hook envtest.WebhookInstallOptions) bool {
	return len(hook.MutatingWebhooks) > 0 || len(hook.ValidatingWebhooks) > 0
}

// parallel runs work(0..n-1) on the given number of workers and returns the first error.
func parallel(n, workers int, work func(i int) error) error {
	jobs := make(chan int)
	var wg sync.WaitGroup
	var first error
	var once sync.Once
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := work(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return first
}

func waitFor(ctx context.Context, limit time.Duration, done func() bool) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, limit, true, func(context.Context) (bool, error) { return done(), nil })
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("not done after %s", limit)
	}
	return err
}

// profileAPIServer writes a CPU profile of kube-apiserver, taken over the given time through
// its profiling endpoint (on by default; the admin user may read it).
func profileAPIServer(ctx context.Context, admin *rest.Config, path string, over time.Duration) error {
	httpClient, err := rest.HTTPClientFor(admin)
	if err != nil {
		return err
	}
	if err := writeProfile(ctx, httpClient, strings.TrimSuffix(admin.Host, "/"), path, over); err != nil {
		return fmt.Errorf("profiling kube-apiserver: %w", err)
	}
	return nil
}

// writeProfile reads a CPU profile over the given time from the Go profiling endpoint under
// base and writes it to path.
func writeProfile(ctx context.Context, httpClient *http.Client, base, path string, over time.Duration) error {
	return download(ctx, httpClient, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, max(1, int(over.Seconds()))), path)
}

// download writes what a GET of url answers to path.
func download(ctx context.Context, httpClient *http.Client, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
