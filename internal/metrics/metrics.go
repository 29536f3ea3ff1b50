// Package metrics defines the operator's Prometheus metrics, served with controller-runtime's
// (reconcile counts, work queue, client requests) on the manager's metrics endpoint.
package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/types"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
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

	register sync.Once
	states   = stateTracker{byRule: map[types.NamespacedName]string{}}
)

// Register adds the metrics to controller-runtime's registry, once per process.
func Register() {
	register.Do(func() {
		ctrlmetrics.Registry.MustRegister(reconcileDuration, objectsApplied, objectsPruned, apiRules)
	})
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
