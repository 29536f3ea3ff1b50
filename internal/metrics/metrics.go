// Package metrics defines the operator's Prometheus metrics, served with controller-runtime's
// (reconcile counts, work queue, client requests) on the manager's metrics endpoint.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/apirule-operator/apirule-operator/internal/version"
)

var (
	reconcileDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "apirule_reconcile_duration_seconds",
		Help:    "Time to reconcile one APIRule, by result: success, error, requeue.",
		Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	}, []string{"result"})
	objectsApplied = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apirule_objects_applied_total",
		Help: "Istio objects written by server-side apply, by kind. Objects already up to date are not written.",
	}, []string{"kind"})
	objectsPruned = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apirule_objects_pruned_total",
		Help: "Stale Istio objects deleted, by kind.",
	}, []string{"kind"})
	apiRules = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apirule_apirules",
		Help: "APIRules known to the operator, by status.state.",
	}, []string{"state"})
	outcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apirule_reconcile_outcomes_total",
		Help: "Reconciles by the reason of the status they computed: Ready, a warning's reason, or the reason the APIRule is not ready (ServiceNotFound, RuleShadowed, ReadFailed, ...).",
	}, []string{"reason"})
	admissionRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apirule_admission_requests_total",
		Help: "APIRule creates and updates the admission webhook decided, by operation (create, update) and result (allowed, denied, error).",
	}, []string{"operation", "result"})
	admissionDenials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "apirule_admission_denials_total",
		Help: "Refusals of the admission webhook, by the reason of each finding that refused (HostConflict, RuleShadowed, ...).",
	}, []string{"reason"})
	certificateExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apirule_certificate_expiry_timestamp_seconds",
		Help: "When a certificate an mTLS APIRule serves with expires, as a Unix time: the server certificate (role server) and the earliest-expiring certificate of the client CA bundle (role ca).",
	}, []string{"namespace", "apirule", "role", "secret_namespace", "secret"})
	buildInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apirule_build_info",
		Help: "The running build: always 1, with its version, commit and Go version as labels.",
	}, []string{"version", "commit", "go_version"})

	register sync.Once
	states   = stateTracker{byRule: map[types.NamespacedName]string{}}
	expiries = expiryTracker{byRule: map[types.NamespacedName][]prometheus.Labels{}}
)

// Certificate is one certificate whose expiry is exported.
type Certificate struct {
	// Role is server or ca.
	Role     string
	Secret   types.NamespacedName
	NotAfter time.Time
}

// SetCertificates replaces the certificates exported for an APIRule; none forgets them.
func SetCertificates(rule types.NamespacedName, certs []Certificate) { expiries.set(rule, certs) }

type expiryTracker struct {
	mu     sync.Mutex
	byRule map[types.NamespacedName][]prometheus.Labels
}

func (t *expiryTracker) set(rule types.NamespacedName, certs []Certificate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.byRule[rule] {
		certificateExpiry.Delete(l)
	}
	delete(t.byRule, rule)
	for _, c := range certs {
		l := prometheus.Labels{"namespace": rule.Namespace, "apirule": rule.Name, "role": c.Role,
			"secret_namespace": c.Secret.Namespace, "secret": c.Secret.Name}
		certificateExpiry.With(l).Set(float64(c.NotAfter.Unix()))
		t.byRule[rule] = append(t.byRule[rule], l)
	}
}

// Register adds the metrics to controller-runtime's registry, once per process.
func Register() {
	register.Do(func() {
		ctrlmetrics.Registry.MustRegister(Collectors()...)
		build := version.Get()
		buildInfo.WithLabelValues(build.Version, build.Commit, build.GoVersion).Set(1)
	})
}

// Collectors are the operator's own metrics, which Register adds to controller-runtime's
// registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{reconcileDuration, objectsApplied, objectsPruned, apiRules, outcomes,
		admissionRequests, admissionDenials, certificateExpiry, buildInfo}
}

// CountOutcome counts one reconcile by the reason of the status it computed.
func CountOutcome(reason string) { outcomes.WithLabelValues(reason).Inc() }

// CountAdmission counts one admission decision and, for a refusal, the reason of each
// finding that refused.
func CountAdmission(operation, result string, denialReasons []string) {
	admissionRequests.WithLabelValues(operation, result).Inc()
	for _, r := range denialReasons {
		admissionDenials.WithLabelValues(r).Inc()
	}
}

// ObserveReconcile records how long a reconcile took and how it ended.
func ObserveReconcile(result string, took time.Duration) {
	reconcileDuration.WithLabelValues(result).Observe(took.Seconds())
}

// CountApplied and CountPruned add the objects of one reconcile by kind.
func CountApplied(byKind map[string]int) { add(objectsApplied, byKind) }

// CountPruned adds the stale objects deleted in one reconcile by kind.
func CountPruned(byKind map[string]int) { add(objectsPruned, byKind) }

func add(counter *prometheus.CounterVec, byKind map[string]int) {
	for kind, n := range byKind {
		counter.WithLabelValues(kind).Add(float64(n))
	}
}

// SetState records an APIRule's state; an empty state forgets a deleted APIRule.
func SetState(rule types.NamespacedName, state string) { states.set(rule, state) }

// KnownAPIRules is how many APIRules have a state recorded: those reconciled since the
// process started that still exist.
func KnownAPIRules() int {
	states.mu.Lock()
	defer states.mu.Unlock()
	return len(states.byRule)
}

type stateTracker struct {
	mu     sync.Mutex
	byRule map[types.NamespacedName]string
}

func (t *stateTracker) set(rule types.NamespacedName, state string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	previous, known := t.byRule[rule]
	if known && previous == state {
		return
	}
	if known {
		apiRules.WithLabelValues(previous).Dec()
	}
	if state == "" {
		delete(t.byRule, rule)
		return
	}
	t.byRule[rule] = state
	apiRules.WithLabelValues(state).Inc()
}
