package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
)

// ceilingResult is the best round of a write ceiling.
type ceilingResult struct {
	Throughput float64 // APIRules per second
	Workers    int
	Duration   time.Duration
	Writes     int // requests of the round
	// APIServerCPU and EtcdCPU are the CPU seconds of the round's control plane.
	APIServerCPU, EtcdCPU float64
}

// ceilingWork is what a plain client writes per APIRule in one kind of ceiling round.
type ceilingWork int

const (
	// outcomeWrites are the writes the outcome of one APIRule needs: the APIRule's create
	// (with the finalizer), its 3 children (owned by it) and one status patch.
	outcomeWrites ceilingWork = iota
	// childWrites are the 3 children alone, the ceiling of the earlier reports.
	childWrites
)

// measureCeiling measures, with a plain client and no operator, the writes the outcome of N
// APIRules needs and, separately, their children alone, at several concurrencies, and keeps
// the best rate of each. Each round runs on a control plane of its own, started and stopped
// here: the objects of an earlier round would make a later one slower (a larger etcd, more to
// watch), and none of them weighs on the API server the operator is measured on.
func measureCeiling(ctx context.Context, cfg Config, report *Report, logf func(string, ...any)) error {
	workers := cfg.CeilingWorkers
	if len(workers) == 0 {
		workers = []int{4, 16, 32}
	}
	for _, w := range workers {
		for _, work := range []ceilingWork{outcomeWrites, childWrites} {
			if err := ceilingRound(ctx, cfg.N, w, work, report, logf); err != nil {
				return fmt.Errorf("%d workers: %w", w, err)
			}
		}
	}
	return nil
}

func ceilingRound(ctx context.Context, n, workers int, work ceilingWork, report *Report, logf func(string, ...any)) error {
	// The same control plane as the operator's runs, its audit log included, and the
	// operator's writes made as the operator's user. What a run has beyond this is the
	// operator's part: its process, its admission (the validating webhook, the finalizer
	// policy) and the readiness watch that sees its statuses.
	env, err := startAudited(nil)
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	scheme, err := operator.NewScheme()
	if err != nil {
		return err
	}
	// The load driver's client creates the APIRules; the manager's user writes what the
	// operator writes (the children and the status), through the manager's RBAC.
	driverCfg := rest.CopyConfig(env.Config)
	managerCfg, err := env.ManagerConfig(ctx, "")
	if err != nil {
		return err
	}
	driver, err := ceilingClient(driverCfg, scheme)
	if err != nil {
		return err
	}
	c, err := ceilingClient(managerCfg, scheme)
	if err != nil {
		return err
	}
	_, auditedBefore, err := env.audit.Snapshot()
	if err != nil {
		return err
	}
	ns := namespace
	if work == childWrites {
		ns = ceilingNamespace
	}
	if err := driver.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	// Everything is rendered before the clock starts: the round measures the API server.
	children := make([][]client.Object, n)
	statuses := make([][]byte, n)
	for i := range n {
		children[i] = ceilingChildren(i, work)
		if work == outcomeWrites {
			if statuses[i], err = json.Marshal(map[string]any{"status": ceilingStatus(benchAPIRule(i), children[i])}); err != nil {
				return err
			}
		}
	}
	report.ObjectsPerAPIRule = len(children[0])
	// The writes are counted as they succeed, so the report says what the round did.
	var writes atomic.Int64
	written := func(err error) error {
		if err == nil {
			writes.Add(1)
		}
		return err
	}
	apiServerBefore, etcdBefore, err := env.cpu()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := parallel(n, workers, func(i int) error {
		if work == childWrites {
			for _, obj := range children[i] {
				if err := written(c.Create(ctx, obj)); err != nil {
					return err
				}
			}
			return nil
		}
		rule := benchAPIRule(i)
		rule.Finalizers = []string{ownership.Finalizer}
		if err := written(driver.Create(ctx, rule)); err != nil {
			return err
		}
		for _, obj := range children[i] {
			refs := obj.GetOwnerReferences()
			refs[0].UID = rule.UID
			obj.SetOwnerReferences(refs)
			if err := written(c.Create(ctx, obj)); err != nil {
				return err
			}
		}
		return written(c.Status().Patch(ctx, rule, client.RawPatch(types.MergePatchType, statuses[i])))
	}); err != nil {
		return err
	}
	took := time.Since(start)
	apiServerAfter, etcdAfter, err := env.cpu()
	if err != nil {
		return err
	}
	// The audit log recorded the writes of the operator's user, as it does in a run.
	_, auditedAfter, err := env.audit.Snapshot()
	if err != nil {
		return err
	}
	if audited, want := auditedAfter-auditedBefore, int(writes.Load())-ownWrites(work, n); audited != want {
		return fmt.Errorf("the audit log recorded %d writes of the manager's user, want %d", audited, want)
	}
	round := ceilingResult{Throughput: float64(n) / took.Seconds(), Workers: workers, Duration: took, Writes: int(writes.Load()),
		APIServerCPU: apiServerAfter - apiServerBefore, EtcdCPU: etcdAfter - etcdBefore}
	what, best := "children only", &report.ChildrenCeiling
	if work == outcomeWrites {
		what, best = "APIRule, children, status", &report.Ceiling
	}
	logf("ceiling (%s) with %d workers: %d writes in %s (%.1f APIRules/s)", what, workers, round.Writes, took.Round(time.Millisecond), round.Throughput)
	if round.Throughput > best.Throughput {
		*best = round
	}
	return nil
}

// ceilingClient is a client of the ceiling's rounds: no client-side rate limit to speak of,
// and uncompressed as the run's load driver and the operator are.
func ceilingClient(cfg *rest.Config, scheme *runtime.Scheme) (client.Client, error) {
	cfg.QPS, cfg.Burst = 500, 1000
	cfg.DisableCompression = true
	return client.New(cfg, client.Options{Scheme: scheme})
}

// ownWrites are the writes of a round that the load driver makes in a run, not the operator:
// the APIRules' creates.
func ownWrites(work ceilingWork, n int) int {
	if work == outcomeWrites {
		return n
	}
	return 0
}

// ceilingChildren are the objects the operator generates for APIRule i. For the children-only
// round they move into a namespace of their own, stripped of what ties them to an APIRule;
// for the outcome round they keep the operator's labels and owner reference, whose UID the
// round fills in once the APIRule is created.
func ceilingChildren(i int, work ceilingWork) []client.Object {
	rule := benchAPIRule(i)
	// A UID to render the owner reference with; the round sets the created APIRule's.
	rule.UID = "to-be-created"
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
		if work == childWrites {
			o.SetNamespace(ceilingNamespace)
			o.SetLabels(nil)
			o.SetOwnerReferences(nil)
		}
		objects = append(objects, o)
	}
	return objects
}

// ceilingStatus is a status of the size and shape the operator writes for a served APIRule
// (TestSmoke compares it with one the operator wrote).
func ceilingStatus(rule *apiv2.APIRule, children []client.Object) apiv2.APIRuleStatus {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	condition := func(t conditions.Type, reason conditions.Reason, message string) metav1.Condition {
		return metav1.Condition{Type: string(t), Status: metav1.ConditionTrue, ObservedGeneration: 1, LastTransitionTime: now,
			Reason: string(reason), Message: message}
	}
	status := apiv2.APIRuleStatus{
		State:              apiv2.StateReady,
		Description:        "The APIRule is served as specified.",
		LastProcessedTime:  &now,
		ObservedGeneration: 1,
		Conditions: []metav1.Condition{
			condition(conditions.Accepted, conditions.ReasonAccepted, "The spec is valid."),
			condition(conditions.ResolvedRefs, conditions.ReasonResolved, "The Gateway, every backend Service and every extension provider were found."),
			condition(conditions.Programmed, conditions.ReasonProgrammed, "All Istio objects are applied."),
			condition(conditions.Ready, conditions.ReasonReady, "The APIRule is served as specified."),
		},
		Gateway: gatewayNamespace + "/" + gatewayName,
	}
	for _, h := range rule.Spec.Hosts {
		status.Hosts = append(status.Hosts, string(h))
	}
	for _, obj := range children {
		status.Objects = append(status.Objects, apiv2.GeneratedObject{Kind: kindOf(obj), Namespace: obj.GetNamespace(), Name: obj.GetName()})
	}
	return status
}

func kindOf(obj client.Object) string {
	if kind := obj.GetObjectKind().GroupVersionKind().Kind; kind != "" {
		return kind
	}
	return fmt.Sprintf("%T", obj)
}
