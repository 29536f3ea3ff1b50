// Package controllers holds the APIRule reconciler: a thin pipeline of named phases
// (fetch, gather, translate, apply, prune, status) around the pure translator.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/gather"
	"github.com/apirule-operator/apirule-operator/internal/index"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
	"github.com/apirule-operator/apirule-operator/internal/slim"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// APIRuleReconciler reconciles APIRules into Istio objects.
type APIRuleReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Options  model.Options
	// MeshConfig is the namespace/name of Istio's mesh config ConfigMap.
	MeshConfig types.NamespacedName
	// MaxConcurrentReconciles is how many APIRules are reconciled at once.
	MaxConcurrentReconciles int
	// Creator creates the children the cache does not know; nil: Client does.
	Creator apply.Creator

	hostsOnce sync.Once
	hosts     *hostRegistry
	// ledger is the status this process last wrote for each APIRule.
	ledger statusLedger
}

// gatherer reads the input of an APIRule from the manager's cache.
func (r *APIRuleReconciler) gatherer() *gather.Gatherer {
	return &gather.Gatherer{
		Reader: r.Client, Options: r.Options, MeshConfig: r.MeshConfig,
		Holder: r.registry().holder,
	}
}

func (r *APIRuleReconciler) registry() *hostRegistry {
	r.hostsOnce.Do(func() { r.hosts = newHostRegistry() })
	return r.hosts
}

// +kubebuilder:rbac:groups=gateway.apirule.io,resources=apirules,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=gateway.apirule.io,resources=apirules/status,verbs=get;patch
// +kubebuilder:rbac:groups=gateway.apirule.io,resources=apirules/finalizers,verbs=update
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=security.istio.io,resources=authorizationpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=security.istio.io,resources=requestauthentications,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.istio.io,resources=gateways,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// Gateways and CA copies are written only in the ingress gateway namespace (a Role there;
// the install renders it into the namespace configured with --ingress-gateway-namespace).
// +kubebuilder:rbac:groups=networking.istio.io,namespace=istio-system,resources=gateways,verbs=create;patch;delete
// +kubebuilder:rbac:groups="",namespace=istio-system,resources=secrets,verbs=create;patch;delete
// The mesh config ConfigMap is read only in the Istio namespace (--istio-namespace; the
// manager caches ConfigMaps of that namespace only). Its marker shares istio-system with the
// two above; the Helm chart moves this rule alone into istio.namespace when that differs
// from the ingress gateway namespace.
// +kubebuilder:rbac:groups="",namespace=istio-system,resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=referencegrants,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// Leader election leases: config/rbac/leader_election_role.yaml, a Role in the operator's
// namespace only, not a marker (a marker would grant them cluster-wide).

// Reconcile brings the Istio objects of one APIRule in line with its spec and reports the
// outcome in status.
func (r *APIRuleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	result, err := r.reconcile(ctx, req)
	if apierrors.IsConflict(err) {
		// A child changed under the write; the change is already queued, and this retry
		// comes soon after it.
		ctrl.LoggerFrom(ctx).V(1).Info("conflict, requeueing", "error", err.Error())
		result, err = ctrl.Result{RequeueAfter: conflictRetry}, nil
	}
	outcome := "success"
	switch {
	case err != nil:
		outcome = "error"
	case result.RequeueAfter > 0:
		outcome = "requeue"
	}
	metrics.ObserveReconcile(outcome, time.Since(start))
	return result, err
}

// conflictRetry is how soon a reconcile that lost a write race, or found a host claimed by a
// reconcile still running, is retried.
const conflictRetry = 100 * time.Millisecond

// reconcile runs the phases of one APIRule. Status is written once, from the deferred call,
// whatever phase failed: a failed read leaves Ready Unknown with its reason, a failed write
// says which write failed, and never does an error leave the previous status standing.
func (r *APIRuleReconciler) reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, err error) {
	// Before the cache: statusLedger.read says why.
	written := r.ledger.read(req.NamespacedName)
	rule := &apiv2.APIRule{}
	if err := r.Client.Get(ctx, req.NamespacedName, rule); apierrors.IsNotFound(err) {
		r.registry().set(req.NamespacedName, nil)
		r.ledger.forget(req.NamespacedName)
		metrics.SetState(req.NamespacedName, "")
		metrics.SetCertificates(req.NamespacedName, nil)
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if !rule.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, rule)
	}

	last := written.of(rule)
	report := newReport(rule, last)
	defer func() {
		if statusErr := r.writeStatus(ctx, rule, report, last); statusErr != nil {
			// Never a requeue delay together with an error.
			result, err = ctrl.Result{}, errors.Join(err, statusErr)
		}
	}()

	input, err := r.gatherer().Gather(ctx, rule)
	if err != nil {
		report.readFailed(err)
		return ctrl.Result{}, err
	}
	r.registry().set(ownerOf(rule), input.ServedHosts)
	report.gathered(input)
	exportCertificates(ownerOf(rule), input)
	output := pipeline.Run(input)
	report.checked(output.Findings)
	if hosts := output.Findings.ConflictingHosts(); len(hosts) > 0 {
		withdrawn, err := r.withdraw(ctx, rule, hosts)
		if err != nil {
			report.programFailed(conditions.ReasonPruneFailed, err)
			return ctrl.Result{}, err
		}
		if withdrawn {
			r.registry().set(ownerOf(rule), nil)
			report.withdrawn(strings.Join(hosts, ", ") + " are held by an older owner")
		}
	}
	if why, ok := withdrawal(output.Findings, conditions.ProgrammedAsIs(rule), check.UnconsentedServing(input), check.UnprotectedServing(input)); ok {
		if err := r.withdrawAll(ctx, rule); err != nil {
			report.programFailed(conditions.ReasonPruneFailed, err)
			return ctrl.Result{}, err
		}
		r.registry().set(ownerOf(rule), nil)
		ctrl.LoggerFrom(ctx).Info("withdrawn", "why", why)
		report.withdrawn(why)
	}
	if !output.Findings.HasErrors() {
		if held := r.registry().claim(ownerOf(rule), output.Objects.VirtualServices[0].Spec.Hosts); len(held) > 0 {
			// Another APIRule claimed a host since gather read the claims; the next
			// reconcile sees it and reports the conflict.
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		if reason, err := r.program(ctx, rule, output.Objects); err != nil {
			// The error is returned, so the request is retried with backoff; the status says why.
			report.programFailed(reason, err)
			return ctrl.Result{}, err
		}
		report.programmed(output.Objects)
	}
	if !output.RecheckAt.IsZero() {
		// A certificate comes close to its expiry then; the status must say so without waiting
		// for an unrelated event.
		result.RequeueAfter = max(time.Until(output.RecheckAt), time.Second)
	}
	return result, nil
}

// exportCertificates exports when the certificates of an mTLS APIRule expire.
func exportCertificates(owner types.NamespacedName, in model.Input) {
	var certs []metrics.Certificate
	for _, c := range check.Certificates(in) {
		certs = append(certs, metrics.Certificate{Role: c.Role, Secret: c.Secret, NotAfter: c.NotAfter})
	}
	metrics.SetCertificates(owner, certs)
}

// withdrawal says whether the refusals require removing what serves, and why. A refusal
// usually keeps the objects of the last good spec: a bad edit must not take down what
// serves. These are the exceptions, where what serves is itself unsafe or unwanted:
//   - a Service the route serves, of whatever generation, in a namespace that does not (or no
//     longer) consent;
//   - a Pod without the sidecar behind a Service the route serves, of whatever generation: the
//     gateway would route to a Pod that enforces no policy;
//   - when this very spec serves: a conflict with an APIRule that prevails (a race let both
//     through), or a backend namespace that took its consent back. When an edit introduced the
//     refusal, the objects of the earlier generation keep serving.
func withdrawal(fs check.Findings, programmedAsIs bool, unconsented, unprotected []types.NamespacedName) (string, bool) {
	switch {
	case len(unconsented) > 0:
		return fmt.Sprintf("namespace %s no longer consents to serving Service %s (its ReferenceGrant is gone or changed)",
			unconsented[0].Namespace, unconsented[0]), true
	case len(unprotected) > 0:
		return fmt.Sprintf("a Pod of Service %s, which the route serves, runs without the Istio sidecar, so nothing there would enforce the policies",
			unprotected[0]), true
	case !programmedAsIs:
		return "", false
	case fs.Refuses(conditions.ReasonWorkloadConflict), fs.Refuses(conditions.ReasonMTLSHostCovered):
		return "it conflicts with an APIRule that prevails (a shared workload's issuers or ext-authz provider, or an mTLS host on the same ingress gateway)", true
	}
	return "", false
}

// program applies the desired objects, policies before routes, then prunes stale children,
// routes before policies. The finalizer is added before the first child is written: it is
// what removes the children when the APIRule is deleted, routes first. The garbage collector
// would delete the children in no particular order, leaving a moment in which a route is
// live without its policy; and it cannot reach children in other namespaces at all.
// The mutating webhook normally sets the finalizer as the APIRule is created; the patch here
// is the fallback for APIRules created while the webhook was off or unreachable (its
// failurePolicy is Ignore), and costs one write more.
// The reason says which write failed: ApplyFailed or PruneFailed.
func (r *APIRuleReconciler) program(ctx context.Context, rule *apiv2.APIRule, objects translate.Objects) (conditions.Reason, error) {
	all := objects.All()
	ordered := make([]client.Object, 0, len(all))
	for _, obj := range all {
		ordered = append(ordered, obj)
	}
	if err := r.ensureFinalizer(ctx, rule); err != nil {
		return conditions.ReasonApplyFailed, err
	}
	applier := apply.Applier{Client: r.Client, Creator: r.Creator}
	if err := r.takeDownRouteIfPoliciesNarrow(ctx, rule, objects); err != nil {
		return conditions.ReasonPruneFailed, err
	}
	applied, err := applier.Apply(ctx, ordered)
	recordApplied(ctx, applied.Applied)
	if err != nil {
		return conditions.ReasonApplyFailed, err
	}
	pruned, err := applier.Prune(ctx, ownerOf(rule), ordered)
	recordPruned(ctx, pruned.Pruned)
	if err != nil {
		return conditions.ReasonPruneFailed, err
	}
	return "", nil
}

// takeDownRouteIfPoliciesNarrow deletes the current route before policies are written that
// drop a rule the current policies have. Policies go before routes so a new route is never
// live without its policy; but a policy that loses a rule (a rule removed, reordered or
// changed) would leave the old route live with tokens no policy rule accepts, for rules that no
// longer exist. Policies that only gain rules cannot change what the old route's requests get:
// the old route sets none of the new tokens. The route comes back with the new policies in
// place; until then its requests get 404, never an unchecked 200.
func (r *APIRuleReconciler) takeDownRouteIfPoliciesNarrow(ctx context.Context, rule *apiv2.APIRule, objects translate.Objects) error {
	narrows := false
	for _, desired := range objects.AuthorizationPolicies {
		current := &securityclientv1.AuthorizationPolicy{}
		switch err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), current); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("reading AuthorizationPolicy %s/%s: %w", desired.Namespace, desired.Name, err)
		}
		had, err := slim.RuleDigests(current)
		if err != nil {
			return err
		}
		wanted, err := slim.RuleDigests(desired)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(had, func(digest string) bool { return !slices.Contains(wanted, digest) }) {
			narrows = true
			break
		}
	}
	if !narrows {
		return nil
	}
	route := &networkingclientv1.VirtualService{}
	route.Namespace, route.Name = rule.Namespace, model.RouteName(ownerOf(rule))
	if err := r.Client.Delete(ctx, route); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("taking down route %s/%s before narrowing its policies: %w", route.Namespace, route.Name, err)
	}
	recordPruned(ctx, map[string]int{"VirtualService": 1})
	return nil
}

// withdraw removes every child of an APIRule whose route claims a host that an older owner
// holds. This is the one case where objects of an earlier generation do not keep serving: two
// routes for one host would be merged by Istio, and two APIRules' policies for one host would
// widen each other. The route goes first.
func (r *APIRuleReconciler) withdraw(ctx context.Context, rule *apiv2.APIRule, hosts []string) (bool, error) {
	routes := &networkingclientv1.VirtualServiceList{}
	if err := apply.OwnerIndex.List(ctx, r.Client, routes, ownerOf(rule).String()); err != nil {
		return false, fmt.Errorf("listing the routes of %s: %w", ownerOf(rule), err)
	}
	for _, vs := range routes.Items {
		if slices.ContainsFunc(vs.Spec.Hosts, func(h string) bool { return slices.Contains(hosts, h) }) {
			return true, r.withdrawAll(ctx, rule)
		}
	}
	return false, nil
}

// withdrawAll removes every child of the APIRule, routes first.
func (r *APIRuleReconciler) withdrawAll(ctx context.Context, rule *apiv2.APIRule) error {
	applier := apply.Applier{Client: r.Client, Creator: r.Creator}
	pruned, err := applier.Prune(ctx, ownerOf(rule), nil)
	recordPruned(ctx, pruned.Pruned)
	return err
}

// finalize removes every child of a deleted APIRule, routes first, then lets it go.
func (r *APIRuleReconciler) finalize(ctx context.Context, rule *apiv2.APIRule) error {
	r.registry().set(ownerOf(rule), nil)
	if !controllerutil.ContainsFinalizer(rule, ownership.Finalizer) {
		return nil
	}
	applier := apply.Applier{Client: r.Client, Creator: r.Creator}
	pruned, err := applier.Prune(ctx, ownerOf(rule), nil)
	recordPruned(ctx, pruned.Pruned)
	if err != nil {
		return err
	}
	if r.Recorder != nil {
		r.Recorder.Eventf(rule, nil, "Normal", "Deleted", "Finalize", "Removed the generated objects: %s", kindCounts(pruned.Pruned))
	}
	return r.removeFinalizer(ctx, rule)
}

// recordApplied counts and logs the objects one reconcile wrote, by kind; the reconcile's
// logger names the APIRule.
func recordApplied(ctx context.Context, byKind map[string]int) {
	metrics.CountApplied(byKind)
	if len(byKind) > 0 {
		ctrl.LoggerFrom(ctx).Info("applied", "objects", kindCounts(byKind))
	}
}

// recordPruned counts and logs the stale objects one reconcile deleted, by kind.
func recordPruned(ctx context.Context, byKind map[string]int) {
	metrics.CountPruned(byKind)
	if len(byKind) > 0 {
		ctrl.LoggerFrom(ctx).Info("pruned", "objects", kindCounts(byKind))
	}
}

// kindCounts writes counts by kind in a fixed order, for example "1 AuthorizationPolicy, 1
// VirtualService"; "none" for none.
func kindCounts(byKind map[string]int) string {
	kinds := slices.Sorted(maps.Keys(byKind))
	parts := make([]string, 0, len(kinds))
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%d %s", byKind[k], k))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func (r *APIRuleReconciler) ensureFinalizer(ctx context.Context, rule *apiv2.APIRule) error {
	if controllerutil.ContainsFinalizer(rule, ownership.Finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(rule.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.AddFinalizer(rule, ownership.Finalizer)
	if err := r.Client.Patch(ctx, rule, patch); err != nil {
		return fmt.Errorf("adding finalizer: %w", err)
	}
	return nil
}

func (r *APIRuleReconciler) removeFinalizer(ctx context.Context, rule *apiv2.APIRule) error {
	if !controllerutil.ContainsFinalizer(rule, ownership.Finalizer) {
		return nil
	}
	patch := client.MergeFromWithOptions(rule.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(rule, ownership.Finalizer)
	if err := r.Client.Patch(ctx, rule, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("removing finalizer: %w", err)
	}
	return nil
}

// observeCached forgets a status write of this process once the cache shows it.
func (r *APIRuleReconciler) observeCached(obj any) {
	if rule, ok := obj.(*apiv2.APIRule); ok {
		r.ledger.caughtUp(rule)
	}
}

// SetupWithManager registers the reconciler, its field indexes and its watches.
func (r *APIRuleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := index.Register(context.Background(), mgr.GetCache(), index.Definitions(r.Options, r.MeshConfig)); err != nil {
		return err
	}
	rules, err := mgr.GetCache().GetInformer(context.Background(), &apiv2.APIRule{}, cache.BlockUntilSynced(false))
	if err != nil {
		return err
	}
	// Every APIRule the cache receives may show a status write of this process.
	if _, err := rules.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.observeCached(obj) },
		UpdateFunc: func(_, obj any) { r.observeCached(obj) },
	}); err != nil {
		return err
	}
	children := handler.EnqueueRequestsFromMapFunc(requestForOwnerLabels)
	b := ctrl.NewControllerManagedBy(mgr)
	// Every watch but the APIRules' own skips what its first list delivers (notInInitialList).
	watches := func(obj client.Object, h handler.EventHandler, predicates ...predicate.Predicate) {
		b = b.Watches(obj, h, builder.WithPredicates(append([]predicate.Predicate{notInInitialList}, predicates...)...))
	}
	if r.Options.ReferenceGrants {
		// A ReferenceGrant gives or takes away a namespace's consent to cross-namespace backends.
		watches(&gatewayv1beta1.ReferenceGrant{}, handler.EnqueueRequestsFromMapFunc(r.requestsForReferenceGrant))
	}
	// Another APIRule on the same backends: a workload conflict may start or end when it
	// appears, changes, goes away or starts or stops serving its spec.
	watches(&apiv2.APIRule{}, handler.EnqueueRequestsFromMapFunc(r.requestsForWorkloadPeers),
		predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, deletionPredicate{}, programmedChanges))
	watches(&networkingclientv1.VirtualService{}, handler.EnqueueRequestsFromMapFunc(r.requestsForVirtualService),
		predicate.Or[client.Object](notOwnCreation, coveringCreation))
	watches(&securityclientv1.AuthorizationPolicy{}, children, notOwnCreation)
	watches(&securityclientv1.RequestAuthentication{}, children, notOwnCreation)
	watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.requestsForIndex(index.APIRuleService)))
	watches(&networkingclientv1.Gateway{}, handler.EnqueueRequestsFromMapFunc(r.requestsForGateway),
		predicate.Or[client.Object](notOwnCreation, coveringCreation))
	watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.requestsForSecret), notOwnCreation)
	watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.requestsForIndex(index.APIRuleMeshConfig)))
	watches(slim.PodMetadata(), handler.EnqueueRequestsFromMapFunc(r.requestsForPod), podChanges)
	return b.
		Named("apirule").
		For(&apiv2.APIRule{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionPredicate{}))).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Complete(r)
}
