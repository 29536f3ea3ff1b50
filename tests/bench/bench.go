// Package bench measures the operator on a real kube-apiserver and etcd: how fast N APIRules
// become Ready, against the write ceiling of the same API server, what the operator sends,
// what a resync costs, latency under a steady load, and the process's CPU and memory.
//
// The workload is the one of docs/architecture.md (Performance targets), so figures compare over time: one namespace;
// per APIRule a Service (selector app: ar-<i>) and one Pod with an istio-proxy container; host
// ar-<i>.example.com on a Gateway serving *.example.com; rules GET /public noAuth,
// GET,POST /api/{**} jwt, GET /health noAuth.
package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

// Config sets the size of a run.
type Config struct {
	// N is the number of APIRules of the bulk run.
	N int
	// SteadyRate APIRules per second are created for SteadyFor after the bulk run; a zero
	// rate skips the steady run.
	SteadyRate int
	SteadyFor  time.Duration
	// CeilingWorkers are the concurrencies the plain client tries; the best one is the ceiling.
	CeilingWorkers []int
	// Workers overrides the operator's concurrent reconciles; 0 keeps the default.
	Workers int
	// Logf reports progress.
	Logf func(format string, args ...any)
	// APIServerProfile, when set, is where a CPU profile of kube-apiserver during the bulk
	// run is written (its /debug/pprof/profile endpoint, as the admin user), for
	// APIServerProfileFor from the first create.
	APIServerProfile    string
	APIServerProfileFor time.Duration
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
	// FinalizerByWebhook: the operator served its mutating webhook, so the finalizer came
	// with the create; otherwise the operator patched it in (Requests["PATCH apirules"]).
	FinalizerByWebhook bool
	ResyncReconciles   int
	ResyncWrites       int
	ResyncRequests     map[string]int
	CeilingObjects     int
	CeilingWorkers     int
	CeilingDuration    time.Duration
	CeilingThroughput  float64 // APIRules' worth of child objects per second
	Ratio              float64
	SteadyRate         int
	SteadyFor          time.Duration
	SteadyCount        int
	SteadyLatency      Percentiles
	CPUSeconds         float64
	PeakHeapMiB        float64
	PeakRSSMiB         float64
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
// one status write, and the finalizer patch when no webhook set the finalizer.
func (r *Report) WriteBudget() int {
	if r.FinalizerByWebhook {
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

// StartEnvironment starts the control plane of a run. With webhook, the API server calls the
// operator's admission webhooks as an install's does (config/webhook, a certificate envtest
// issues), and Run serves them from the operator under test.
func StartEnvironment(webhook bool) (*testenv.Environment, error) {
	if !webhook {
		return testenv.Start()
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return nil, err
	}
	return testenv.StartWith(func(e *envtest.Environment) {
		e.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook", "manifests.yaml")}}
	})
}

// Run performs a benchmark on the environment's API server. It always returns a report: when
// a phase fails, the error names it and the report keeps the figures of the phases before.
func Run(ctx context.Context, env *testenv.Environment, cfg Config) (*Report, error) {
	report := &Report{N: cfg.N, Requests: map[string]int{}}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	driverCfg := rest.CopyConfig(env.Config)
	driverCfg.QPS, driverCfg.Burst = 500, 1000
	scheme, err := operator.NewScheme()
	if err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	c, err := client.NewWithWatch(driverCfg, client.Options{Scheme: scheme})
	if err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	hook := env.WebhookInstallOptions
	report.FinalizerByWebhook = servesWebhooks(hook)

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
	total := cfg.N + cfg.SteadyRate*int(cfg.SteadyFor/time.Second)
	if err := parallel(total, clientWorkers, func(i int) error {
		name := fmt.Sprintf("ar-%d", i)
		svc := fixtures.Service(namespace, name, 8000)
		// Headless: the local API server's service range holds only 254 addresses.
		svc.Spec.ClusterIP = corev1.ClusterIPNone
		if err := c.Create(ctx, svc); err != nil {
			return err
		}
		return c.Create(ctx, fixtures.SidecarPod(namespace, name+"-0", name))
	}); err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	// The operator runs with the install's RBAC only; its namespace holds the lease.
	managerCfg, err := env.ManagerConfig(ctx, leaseNamespace)
	if err != nil {
		return report, report.fail(PhaseSetup, err)
	}
	report.done(PhaseSetup)

	if err := measureCeiling(ctx, scheme, cfg, report, logf); err != nil {
		return report, report.fail(PhaseCeiling, err)
	}
	report.done(PhaseCeiling)

	ready := newReadyWatch()
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	if err := ready.start(watchCtx, c); err != nil {
		return report, report.fail(PhaseBulk, err)
	}

	sampler := startSampler()
	cpuBefore := cpuSeconds()
	// The process figures cover what ran, also when a later phase fails.
	defer func() {
		report.CPUSeconds = cpuSeconds() - cpuBefore
		report.PeakHeapMiB, report.PeakRSSMiB = sampler.stop()
	}()
	op, err := startOperator(ctx, managerCfg, cfg.Workers, hook, c)
	if err != nil {
		return report, report.fail(PhaseBulk, err)
	}

	var profiled chan error
	if cfg.APIServerProfile != "" {
		profiled = make(chan error, 1)
		go func() { profiled <- profileAPIServer(ctx, env.Config, cfg.APIServerProfile, cfg.APIServerProfileFor) }()
	}
	logf("creating %d APIRules", cfg.N)
	start := time.Now()
	if err := parallel(cfg.N, clientWorkers, func(i int) error {
		return createAPIRule(ctx, c, i, ready)
	}); err != nil {
		op.stop()
		return report, report.fail(PhaseBulk, err)
	}
	if err := ready.waitAll(ctx, cfg.N, 30*time.Minute); err != nil {
		op.stop()
		return report, report.fail(PhaseBulk, err)
	}
	report.ReadyAfter = ready.last().Sub(start)
	report.Throughput = float64(cfg.N) / report.ReadyAfter.Seconds()
	report.Latency = percentiles(ready.latencies())
	report.Ratio = report.Throughput / report.CeilingThroughput
	op.waitQuiet()
	report.Requests, report.Writes = op.requests.Snapshot()
	logf("%d APIRules Ready after %s", cfg.N, report.ReadyAfter.Round(time.Millisecond))
	if profiled != nil {
		if err := <-profiled; err != nil {
			return report, report.fail(PhaseBulk, err)
		}
		logf("kube-apiserver CPU profile written to %s", cfg.APIServerProfile)
	}
	report.done(PhaseBulk)

	logf("restarting the operator over %d settled APIRules", cfg.N)
	op.stop()
	before := testenv.ReconcileCount("apirule")
	op, err = startOperator(ctx, managerCfg, cfg.Workers, hook, c)
	if err != nil {
		return report, report.fail(PhaseResync, err)
	}
	if err := waitFor(ctx, 10*time.Minute, func() bool { return testenv.ReconcileCount("apirule")-before >= float64(cfg.N) }); err != nil {
		op.stop()
		return report, report.fail(PhaseResync, err)
	}
	op.waitQuiet()
	report.ResyncReconciles = int(testenv.ReconcileCount("apirule") - before)
	report.ResyncRequests, report.ResyncWrites = op.requests.Snapshot()
	report.done(PhaseResync)

	if cfg.SteadyRate > 0 {
		logf("steady load: %d APIRules/s for %s", cfg.SteadyRate, cfg.SteadyFor)
		steady := newReadyWatch()
		steadyCtx, stopSteady := context.WithCancel(ctx)
		if err := steady.start(steadyCtx, c); err != nil {
			stopSteady()
			op.stop()
			return report, report.fail(PhaseSteady, err)
		}
		count := cfg.SteadyRate * int(cfg.SteadyFor/time.Second)
		tick := time.NewTicker(time.Second / time.Duration(cfg.SteadyRate))
		var creates sync.WaitGroup
		var createErr error
		var errOnce sync.Once
		for i := 0; i < count; i++ {
			<-tick.C
			creates.Add(1)
			go func(i int) {
				defer creates.Done()
				if err := createAPIRule(ctx, c, cfg.N+i, steady); err != nil {
					errOnce.Do(func() { createErr = err })
				}
			}(i)
		}
		tick.Stop()
		creates.Wait()
		err := createErr
		if err == nil {
			err = steady.waitAll(ctx, count, 10*time.Minute)
		}
		stopSteady()
		if err != nil {
			op.stop()
			return report, report.fail(PhaseSteady, err)
		}
		report.SteadyRate, report.SteadyFor, report.SteadyCount = cfg.SteadyRate, cfg.SteadyFor, count
		report.SteadyLatency = percentiles(steady.latencies())
		report.done(PhaseSteady)
	}
	op.stop()
	return report, nil
}

// measureCeiling creates, with a plain client and no operator, the child objects the
// operator would write for N APIRules (translated by the operator's own code), at several
// concurrencies, and keeps the best rate. Each round runs on a control plane of its own,
// started and stopped here: the objects of an earlier round would make a later one slower
// (a larger etcd, more to watch), and none of them weighs on the API server the operator is
// measured on.
func measureCeiling(ctx context.Context, scheme *k8sruntime.Scheme, cfg Config, report *Report, logf func(string, ...any)) error {
	workers := cfg.CeilingWorkers
	if len(workers) == 0 {
		workers = []int{4, 16, 32}
	}
	for _, w := range workers {
		if err := ceilingRound(ctx, scheme, cfg.N, w, report, logf); err != nil {
			return fmt.Errorf("%d workers: %w", w, err)
		}
	}
	return nil
}

func ceilingRound(ctx context.Context, scheme *k8sruntime.Scheme, n, workers int, report *Report, logf func(string, ...any)) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	ceilingCfg := rest.CopyConfig(env.Config)
	ceilingCfg.QPS, ceilingCfg.Burst = 500, 1000
	c, err := client.New(ceilingCfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ceilingNamespace}}); err != nil {
		return err
	}
	var objects []client.Object
	for i := 0; i < n; i++ {
		objects = append(objects, ceilingObjects(i)...)
	}
	report.ObjectsPerAPIRule = len(objects) / n
	start := time.Now()
	if err := parallel(len(objects), workers, func(i int) error { return c.Create(ctx, objects[i]) }); err != nil {
		return err
	}
	took := time.Since(start)
	rate := float64(n) / took.Seconds()
	logf("ceiling with %d workers: %d objects in %s (%.0f objects/s)", workers, len(objects), took.Round(time.Millisecond), float64(len(objects))/took.Seconds())
	if rate > report.CeilingThroughput {
		report.CeilingThroughput, report.CeilingWorkers, report.CeilingDuration, report.CeilingObjects = rate, workers, took, len(objects)
	}
	return nil
}

// ceilingObjects are the objects the operator generates for APIRule i, moved into the
// ceiling namespace and stripped of what would tie them to an APIRule.
func ceilingObjects(i int) []client.Object {
	rule := benchAPIRule(i)
	out := pipeline.Run(model.Input{
		APIRule: rule,
		Gateway: &model.Gateway{Namespace: gatewayNamespace, Name: gatewayName, Hosts: []string{"*.example.com"}},
		Services: map[types.NamespacedName]model.Service{{Namespace: namespace, Name: rule.Spec.Service.Name}: {
			Namespace: namespace, Name: rule.Spec.Service.Name, Selector: map[string]string{"app": rule.Spec.Service.Name}, Ports: []int32{8000},
		}},
		Options: operator.DefaultOptions().Settings.Translate(),
	})
	var objects []client.Object
	for _, obj := range apply.InApplyOrder(out.Objects.All()) {
		o := obj.(client.Object)
		o.SetNamespace(ceilingNamespace)
		o.SetLabels(nil)
		o.SetOwnerReferences(nil)
		objects = append(objects, o)
	}
	return objects
}

// benchAPIRule is APIRule i of the fixed workload.
func benchAPIRule(i int) *apiv2.APIRule {
	name := fmt.Sprintf("ar-%d", i)
	yes := true
	jwksURI := "https://idp.example.com/jwks"
	gateway := apiv2.GatewayReference(gatewayNamespace + "/" + gatewayName)
	return &apiv2.APIRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: apiv2.APIRuleSpec{
			Hosts:   []apiv2.Host{apiv2.Host(name + ".example.com")},
			Gateway: &gateway,
			Service: &apiv2.Service{Name: name, Port: 8000},
			Rules: []apiv2.Rule{
				{Path: "/public", Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: &yes},
				{Path: "/api/{**}", Methods: []apiv2.HTTPMethod{"GET", "POST"}, JWT: &apiv2.JWTConfig{
					Authentications: []apiv2.JWTAuthentication{{Issuer: "https://idp.example.com", JWKSURI: &jwksURI}},
				}},
				{Path: "/health", Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: &yes},
			},
		},
	}
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

// runningOperator is the operator started in-process with production options and a client
// that counts its requests.
type runningOperator struct {
	requests *testenv.RequestCounter
	cancel   context.CancelFunc
	done     chan error
}

// startOperator starts the operator; with the webhook's install options set (hook), it also
// serves the admission webhooks and is returned once the API server reaches them.
func startOperator(ctx context.Context, base *rest.Config, workers int, hook envtest.WebhookInstallOptions, c client.Client) (*runningOperator, error) {
	counter := testenv.NewRequestCounter()
	cfg := rest.CopyConfig(base)
	// Production: no client-side rate limit (the manager's config loader sets none either;
	// the API server's priority and fairness applies).
	cfg.QPS, cfg.Burst = -1, 0
	cfg.WrapTransport = counter.Wrap
	opts := operator.DefaultOptions()
	opts.LeaderElectionNamespace = leaseNamespace
	opts.MetricsAddress = "0"
	opts.HealthProbeAddress = "0"
	opts.RestartableInProcess = true
	if workers > 0 {
		opts.MaxConcurrentReconciles = workers
	}
	if servesWebhooks(hook) {
		opts.Webhook = webhook.Options{
			Enabled: true, Host: hook.LocalServingHost, Port: hook.LocalServingPort, CertDir: hook.LocalServingCertDir,
			CertManagement: webhook.CertExternal,
		}
	}
	mgr, err := operator.NewManager(cfg, opts)
	if err != nil {
		return nil, err
	}
	opCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(opCtx) }()
	op := &runningOperator{requests: counter, cancel: cancel, done: done}
	if servesWebhooks(hook) {
		// A dry run goes through both webhooks without storing anything: once it passes, the
		// creates of the run are not refused by a webhook that is still starting.
		// Its host is its own: the validating webhook refuses a host an APIRule claims.
		probe := benchAPIRule(0)
		probe.Name, probe.Spec.Hosts = "webhook-probe", []apiv2.Host{"webhook-probe.example.com"}
		var last error
		if err := waitFor(ctx, time.Minute, func() bool {
			last = c.Create(ctx, probe.DeepCopy(), client.DryRunAll)
			return last == nil
		}); err != nil {
			op.stop()
			return nil, fmt.Errorf("the operator's webhooks did not answer: %w (last: %w)", err, last)
		}
	}
	return op, nil
}

// servesWebhooks says whether the API server was set up to call the operator's webhooks
// (envtest fills in the serving options either way, so the registered webhooks decide).
func servesWebhooks(hook envtest.WebhookInstallOptions) bool {
	return len(hook.MutatingWebhooks) > 0 || len(hook.ValidatingWebhooks) > 0
}

func (o *runningOperator) stop() {
	o.cancel()
	if err := <-o.done; err != nil {
		fmt.Fprintln(os.Stderr, "bench: the operator stopped with:", err)
	}
}

// waitQuiet waits until the operator has sent no write (leases aside) for a second.
func (o *runningOperator) waitQuiet() {
	for {
		_, before := o.requests.Snapshot()
		time.Sleep(time.Second)
		if _, after := o.requests.Snapshot(); after == before {
			return
		}
	}
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
	deadline := time.Now().Add(limit)
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// cpuSeconds is the user and system CPU time of this process.
func cpuSeconds() float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return 0
	}
	return float64(u.Utime.Sec+u.Stime.Sec) + float64(u.Utime.Usec+u.Stime.Usec)/1e6
}

// memorySampler records the peak Go heap while it runs; the peak RSS comes from the kernel.
type memorySampler struct {
	stopCh   chan struct{}
	done     chan struct{}
	peakHeap uint64
}

func startSampler() *memorySampler {
	s := &memorySampler{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			s.peakHeap = max(s.peakHeap, m.HeapAlloc)
			select {
			case <-s.stopCh:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return s
}

func (s *memorySampler) stop() (heapMiB, rssMiB float64) {
	close(s.stopCh)
	<-s.done
	return float64(s.peakHeap) / (1 << 20), peakRSSMiB()
}

// peakRSSMiB reads VmHWM, the peak resident set size, from /proc/self/status.
func peakRSSMiB() float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			_, _ = fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// profileAPIServer writes a CPU profile of kube-apiserver, taken over the given time through
// its profiling endpoint (on by default; the admin user may read it).
func profileAPIServer(ctx context.Context, admin *rest.Config, path string, over time.Duration) error {
	httpClient, err := rest.HTTPClientFor(admin)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(admin.Host, "/"), max(1, int(over.Seconds())))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("profiling kube-apiserver: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profiling kube-apiserver: %s", resp.Status)
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
