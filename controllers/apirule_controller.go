// Package controllers holds the APIRule reconciler: a thin pipeline of named phases
// (fetch, gather, translate, apply, prune, status) around the pure translator.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/translate"
	"github.com/apirule-operator/apirule-operator/internal/validate"
)

// Kinds of children, in the order stale ones are pruned: routes go before the policies that
// protect them.
var pruneOrder = []client.ObjectList{
	&networkingclientv1.VirtualServiceList{},
	&networkingclientv1.GatewayList{},
	&securityclientv1.AuthorizationPolicyList{},
	&securityclientv1.RequestAuthenticationList{},
	&corev1.SecretList{},
}

// APIRuleReconciler reconciles APIRules into Istio objects.
type APIRuleReconciler struct {
	Client   client.Client
	Recorder events.EventRecorder
	Options  translate.Options
	// MeshConfig is the namespace/name of Istio's mesh config ConfigMap.
	MeshConfig types.NamespacedName
	// MaxConcurrentReconciles is how many APIRules are reconciled at once.
	MaxConcurrentReconciles int

	hostsOnce sync.Once
	hosts     *hostRegistry
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
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.istio.io,resources=gateways,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// Gateways and CA copies are written only in the ingress gateway namespace (a Role there;
// the install renders it into the namespace configured with --ingress-gateway-namespace).
// +kubebuilder:rbac:groups=networking.istio.io,namespace=istio-system,resources=gateways,verbs=create;patch;delete
// +kubebuilder:rbac:groups="",namespace=istio-system,resources=secrets,verbs=create;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// Leader election leases: config/rbac/leader_election_role.yaml, a Role in the operator's
// namespace only, not a marker (a marker would grant them cluster-wide).

// Reconcile brings the Istio objects of one APIRule in line with its spec and reports the
// outcome in status.
func (r *APIRuleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	result, err := r.reconcile(ctx, req)
	if apierrors.IsConflict(err) {
		// The cached APIRule was stale; the newer version is already queued.
		ctrl.LoggerFrom(ctx).V(1).Info("conflict, requeueing", "error", err.Error())
		result, err = ctrl.Result{RequeueAfter: retryDelay}, nil
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

// retryDelay is how soon a reconcile that lost a race (a stale cached APIRule, a host
// claimed meanwhile) runs again. It replaces the deprecated Result{Requeue: true}, which
// requeued through the rate limiter (5 ms at first, doubling while the same APIRule kept
// requeueing). The next reconcile is expected to succeed or to report the conflict, so a short
// fixed delay suffices; returning the error instead would log and count a lost race as a
// reconcile error.
const retryDelay = 100 * time.Millisecond

func (r *APIRuleReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rule := &apiv2.APIRule{}
	if err := r.Client.Get(ctx, req.NamespacedName, rule); apierrors.IsNotFound(err) {
		r.registry().set(req.NamespacedName, nil)
		metrics.SetState(req.NamespacedName, "")
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, err
	}
	if !rule.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, rule)
	}

	report := newReport(rule)
	input, err := r.gather(ctx, rule)
	if err != nil {
		return ctrl.Result{}, err
	}
	output := validate.Translate(input)
	report.translated(output.Findings)
	if hosts := translate.ConflictingHosts(output.Findings, input); len(hosts) > 0 {
		withdrawn, err := r.withdraw(ctx, rule, hosts)
		if err != nil {
			return ctrl.Result{}, err
		}
		if withdrawn {
			r.registry().set(ownerOf(rule), nil)
			report.withdrawn(hosts)
		}
	}
	if len(output.Findings.Errors()) == 0 {
		if held := r.registry().claim(ownerOf(rule), output.Objects.VirtualServices[0].Spec.Hosts); len(held) > 0 {
			// Another APIRule claimed a host since gather read the claims; the next
			// reconcile sees it and reports the conflict.
			return ctrl.Result{RequeueAfter: retryDelay}, nil
		}
		if err := r.program(ctx, rule, output.Objects); err != nil {
			report.programFailed(err)
			// The apply error is returned, so the request is retried with backoff; the status
			// still says why.
			return ctrl.Result{}, errors.Join(err, r.writeStatus(ctx, rule, report))
		}
		report.programmed()
	}
	if err := r.writeStatus(ctx, rule, report); err != nil {
		return ctrl.Result{}, err // never a requeue delay together with an error
	}
	var result ctrl.Result
	if !output.RecheckAt.IsZero() {
		// A certificate comes close to its expiry then; the status must say so without waiting
		// for an unrelated event.
		result.RequeueAfter = max(time.Until(output.RecheckAt), time.Second)
	}
	return result, nil
}

// program applies the desired objects, policies before routes, then prunes stale children,
// routes before policies. The finalizer is added before the first child is written: it is
// what removes the children when the APIRule is deleted, routes first. The garbage collector
// would delete the children in no particular order, leaving a moment in which a route is
// live without its policy; and it cannot reach children in other namespaces at all.
func (r *APIRuleReconciler) program(ctx context.Context, rule *apiv2.APIRule, objects translate.Objects) error {
	inOrder := objects.InApplyOrder()
	ordered := make([]client.Object, 0, len(inOrder))
	for _, obj := range inOrder {
		ordered = append(ordered, obj)
	}
	if err := r.ensureFinalizer(ctx, rule); err != nil {
		return err
	}
	applier := apply.Applier{Client: r.Client}
	if err := r.takeDownRouteIfPoliciesNarrow(ctx, rule, objects); err != nil {
		return err
	}
	applied, err := applier.Apply(ctx, ordered)
	metrics.CountApplied(applied.Applied)
	if err != nil {
		return err
	}
	pruned, err := applier.Prune(ctx, ownerOf(rule), pruneOrder, ordered)
	metrics.CountPruned(pruned.Pruned)
	return err
}

// takeDownRouteIfPoliciesNarrow deletes the current route before policies are written that
// drop a rule the current policies have. Policies go before routes so a new route is never
// live without its policy; but a policy that loses a rule (a rule removed, reordered or
// changed) can leave the old route, still live, decided by a different rule: removing a jwt
// rule also removes its path from a later noAuth rule's exclusions. Policies that only gain
// rules cannot change what the old route's requests get, because a new rule's operations
// exclude the paths of every rule before it. The route comes back with the new policies in
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
		for _, had := range current.Spec.Rules {
			if !slices.ContainsFunc(desired.Spec.Rules, func(want *securityv1.Rule) bool { return proto.Equal(had, want) }) {
				narrows = true
			}
		}
	}
	if !narrows {
		return nil
	}
	route := &networkingclientv1.VirtualService{}
	route.Namespace, route.Name = rule.Namespace, ownership.ChildName(ownerOf(rule), "route")
	if err := r.Client.Delete(ctx, route); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("taking down route %s/%s before narrowing its policies: %w", route.Namespace, route.Name, err)
	}
	metrics.CountPruned(map[string]int{"VirtualService": 1})
	return nil
}

// withdraw removes every child of an APIRule whose route claims a host that an older owner
// holds. This is the one case where objects of an earlier generation do not keep serving: two
// routes for one host would be merged by Istio, and two APIRules' policies for one host would
// widen each other. The route goes first.
func (r *APIRuleReconciler) withdraw(ctx context.Context, rule *apiv2.APIRule, hosts []string) (bool, error) {
	routes := &networkingclientv1.VirtualServiceList{}
	if err := r.Client.List(ctx, routes, client.MatchingLabelsSelector{Selector: ownership.Selector(ownerOf(rule))}); err != nil {
		return false, fmt.Errorf("listing the routes of %s: %w", ownerOf(rule), err)
	}
	for _, vs := range routes.Items {
		if slices.ContainsFunc(vs.Spec.Hosts, func(h string) bool { return slices.Contains(hosts, h) }) {
			applier := apply.Applier{Client: r.Client}
			pruned, err := applier.Prune(ctx, ownerOf(rule), pruneOrder, nil)
			metrics.CountPruned(pruned.Pruned)
			return err == nil, err
		}
	}
	return false, nil
}

// finalize removes every child of a deleted APIRule, routes first, then lets it go.
func (r *APIRuleReconciler) finalize(ctx context.Context, rule *apiv2.APIRule) error {
	r.registry().set(ownerOf(rule), nil)
	if !controllerutil.ContainsFinalizer(rule, ownership.Finalizer) {
		return nil
	}
	applier := apply.Applier{Client: r.Client}
	pruned, err := applier.Prune(ctx, ownerOf(rule), pruneOrder, nil)
	metrics.CountPruned(pruned.Pruned)
	if err != nil {
		return err
	}
	return r.removeFinalizer(ctx, rule)
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

// SetupWithManager registers the reconciler, its field indexes and its watches.
func (r *APIRuleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := r.registerIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	children := handler.EnqueueRequestsFromMapFunc(requestForOwnerLabels)
	return ctrl.NewControllerManagedBy(mgr).
		Named("apirule").
		For(&apiv2.APIRule{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, deletionPredicate{}))).
		Watches(&networkingclientv1.VirtualService{}, handler.EnqueueRequestsFromMapFunc(r.requestsForVirtualService),
			builder.WithPredicates(notOwnCreation)).
		Watches(&securityclientv1.AuthorizationPolicy{}, children, builder.WithPredicates(notOwnCreation)).
		Watches(&securityclientv1.RequestAuthentication{}, children, builder.WithPredicates(notOwnCreation)).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.requestsForIndex(serviceIndex))).
		Watches(&networkingclientv1.Gateway{}, handler.EnqueueRequestsFromMapFunc(r.requestsForGateway), builder.WithPredicates(notOwnCreation)).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.requestsForSecret), builder.WithPredicates(notOwnCreation)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.requestsForIndex(meshConfigIndex))).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.requestsForPod), builder.WithPredicates(podChanges)).
		WithOptions(controller.Options{MaxConcurrentReconciles: max(1, r.MaxConcurrentReconciles)}).
		Complete(r)
}
