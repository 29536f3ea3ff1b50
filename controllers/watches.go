package controllers

import (
	"context"
	"slices"
	"strings"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/gather"
	"github.com/apirule-operator/apirule-operator/internal/index"
	"github.com/apirule-operator/apirule-operator/internal/lookup"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/slim"
)

// requestsForGateway maps a Gateway to the APIRules bound to it and to the mTLS APIRules
// whose hosts it serves, for which it may start or end a conflict.
func (r *APIRuleReconciler) requestsForGateway(ctx context.Context, obj client.Object) []reconcile.Request {
	out := r.requestsForIndex(index.APIRuleGateway)(ctx, obj)
	for _, h := range index.ServerHosts(obj.(*networkingclientv1.Gateway)) {
		// The host itself, and the wildcard APIRules that cover it (an mTLS host may be).
		for _, pattern := range model.CoveringHosts(h) {
			out = append(out, r.requestsForKey(ctx, index.APIRuleHost, pattern)...)
		}
	}
	return out
}

// requestsForReferenceGrant maps a ReferenceGrant to the APIRules of the namespaces it names
// with a backend in its namespace: it may give or take away their consent.
func (r *APIRuleReconciler) requestsForReferenceGrant(ctx context.Context, obj client.Object) []reconcile.Request {
	grant := model.ReferenceGrantFromGatewayAPI(obj.(*gatewayv1beta1.ReferenceGrant))
	var out []reconcile.Request
	for _, from := range grant.From {
		if from.Group == apiv2.GroupVersion.Group && from.Kind == model.APIRuleKind {
			out = append(out, r.requestsForKey(ctx, index.APIRuleCrossNamespace, index.CrossNamespaceKey(from.Namespace, grant.Namespace))...)
		}
	}
	// And the owners of the routes that serve Services of its namespace now, which after a
	// refused edit the spec may no longer name.
	return append(out, r.requestsForRoutesTo(ctx, index.RouteDestinationNamespace, grant.Namespace)...)
}

// requestsForRoutesTo maps the operator's VirtualServices under an index key of their
// destinations to their owners: what serves now, whatever the owners' specs say.
func (r *APIRuleReconciler) requestsForRoutesTo(ctx context.Context, by lookup.Index, key string) []reconcile.Request {
	routes := &networkingclientv1.VirtualServiceList{}
	if err := by.List(ctx, r.Client, routes, key); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing the routes by destination", "index", by.Name(), "key", key)
		return nil
	}
	var out []reconcile.Request
	for _, vs := range routes.Items {
		if owner, ok := ownerFromLabels(vs); ok {
			out = append(out, reconcile.Request{NamespacedName: owner})
		}
	}
	return out
}

// requestsForSecret maps a Secret to the mTLS APIRules that read it, a CA copy to its owner,
// so a changed or deleted copy is restored, and a certificate Secret in the ingress gateway
// namespace to the APIRules on the Gateways whose servers name it.
func (r *APIRuleReconciler) requestsForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	out := append(requestForOwnerLabels(ctx, obj), r.requestsForIndex(index.APIRuleSecret)(ctx, obj)...)
	if obj.GetNamespace() != r.Options.IngressGatewayNamespace {
		return out
	}
	gateways := &networkingclientv1.GatewayList{}
	if err := index.GatewayCredential.List(ctx, r.Client, gateways, obj.GetName()); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing the Gateways of a certificate Secret", "secret", obj.GetName())
		return out
	}
	for _, gw := range gateways.Items {
		out = append(out, r.requestsForIndex(index.APIRuleGateway)(ctx, gw)...)
	}
	return out
}

// requestsForIndex maps an object to the APIRules whose index holds its namespace/name.
func (r *APIRuleReconciler) requestsForIndex(by lookup.Index) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		return r.requestsForKey(ctx, by, types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}.String())
	}
}

// requestsForKey maps an index key to the APIRules that hold it.
func (r *APIRuleReconciler) requestsForKey(ctx context.Context, by lookup.Index, key string) []reconcile.Request {
	rules := &apiv2.APIRuleList{}
	if err := by.List(ctx, r.Client, rules, key); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing APIRules by index", "index", by.Name(), "key", key)
		return nil
	}
	out := make([]reconcile.Request, 0, len(rules.Items))
	for _, rule := range rules.Items {
		out = append(out, reconcile.Request{NamespacedName: ownerOf(&rule)})
	}
	return out
}

// requestForOwnerLabels maps a generated object to the APIRule named by its owner labels,
// so an edited or deleted child is restored, in any namespace.
func requestForOwnerLabels(_ context.Context, obj client.Object) []reconcile.Request {
	if owner, ok := ownerFromLabels(obj); ok {
		return []reconcile.Request{{NamespacedName: owner}}
	}
	return nil
}

// ownerFromLabels returns the APIRule a generated object belongs to.
func ownerFromLabels(obj client.Object) (types.NamespacedName, bool) {
	return ownership.OwnerFromLabels(obj.GetLabels())
}

// requestsForVirtualService maps a VirtualService to its owner, if it is generated, and to
// every APIRule that claims one of its hosts: a route appearing or going away can start or
// end a host conflict.
func (r *APIRuleReconciler) requestsForVirtualService(ctx context.Context, obj client.Object) []reconcile.Request {
	out := requestForOwnerLabels(ctx, obj)
	for _, host := range obj.(*networkingclientv1.VirtualService).Spec.Hosts {
		for _, key := range index.RoutedHostKeys(host) {
			out = append(out, r.requestsForKey(ctx, index.APIRuleHost, key)...)
		}
		if strings.HasPrefix(host, "*") {
			// A wildcard route may cover an mTLS host on another server of the gateway.
			out = append(out, r.requestsForKey(ctx, index.APIRuleMTLS, index.MTLSKey)...)
		}
	}
	return out
}

func ownerOf(rule *apiv2.APIRule) types.NamespacedName {
	return types.NamespacedName{Namespace: rule.Namespace, Name: rule.Name}
}

// deletionPredicate lets through the update that marks an APIRule for deletion.
type deletionPredicate struct {
	predicate.Funcs
}

func (deletionPredicate) Update(e event.UpdateEvent) bool {
	return e.ObjectNew != nil && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// requestsForPod maps a Pod to the APIRules whose backend Services select it: a Pod that
// appears, changes labels or goes away can change the sidecar check.
func (r *APIRuleReconciler) requestsForPod(ctx context.Context, obj client.Object) []reconcile.Request {
	podLabels := labels.Set(obj.GetLabels())
	// Only a running Pod without the sidecar can take the protection of a route that serves
	// its Services now; for the others the routes need not be looked up.
	unprotected := !slim.PodHasSidecar(obj) && !slim.PodFinished(obj)
	seen := map[string]bool{}
	var out []reconcile.Request
	// An ingress gateway Pod's proxy config decides the IP-restricted APIRules' trusted proxies.
	if obj.GetNamespace() == r.Options.IngressGatewayNamespace && len(r.Options.IngressGatewaySelector) > 0 &&
		labels.SelectorFromSet(r.Options.IngressGatewaySelector).Matches(podLabels) {
		out = append(out, r.requestsForKey(ctx, index.APIRuleIPRestricted, index.IPRestrictedKey)...)
	}
	for _, pair := range index.LabelPairs(podLabels) {
		services := &corev1.ServiceList{}
		if err := index.ServiceSelector.List(ctx, r.Client, services, pair, client.InNamespace(obj.GetNamespace())); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing Services for a Pod", "pod", obj.GetName())
			return nil
		}
		for i := range services.Items {
			svc := &services.Items[i]
			if seen[svc.Name] || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
				continue
			}
			seen[svc.Name] = true
			out = append(out, r.requestsForIndex(index.APIRuleService)(ctx, svc)...)
			if unprotected {
				out = append(out, r.requestsForRoutesTo(ctx, index.RouteDestination, types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}.String())...)
			}
		}
	}
	return out
}

// podChanges lets through the Pod events that can change a sidecar check: creation,
// deletion, label changes (containers cannot change), and a Pod finishing, which leaves
// the check. Other phase changes (every Pod start) change nothing the check reads.
var podChanges = predicate.Or(predicate.LabelChangedPredicate{}, predicate.Funcs{
	CreateFunc: func(event.CreateEvent) bool { return true },
	DeleteFunc: func(event.DeleteEvent) bool { return true },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld != nil && e.ObjectNew != nil && slim.PodFinished(e.ObjectOld) != slim.PodFinished(e.ObjectNew)
	},
	GenericFunc: func(event.GenericEvent) bool { return false },
})

// notInInitialList drops the creation events an informer's first list delivers (and those a
// handler added to a synced informer is replayed with). The controller starts its workers
// only once every one of its watches has synced, and by then the APIRule watch has queued
// every APIRule for its own creation event: each reconcile reads the whole cache, so mapping
// every Pod, Service and generated object of the first list to APIRules again would only
// queue them twice. Over 10,000 settled APIRules those lookups were the mapping functions'
// 285 MB of a restart's allocations (docs/performance.md).
var notInInitialList = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool { return !e.IsInInitialList },
}

// notOwnCreation drops the creation events of generated objects: the reconcile that wrote
// them is done with them, and another reconcile would only find the APIRule in the cache as
// it was before that reconcile wrote its status. Changes and deletions (drift) still pass, as
// do creations of VirtualServices the operator does not manage (host conflicts).
var notOwnCreation = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool {
		_, generated := ownerFromLabels(e.Object)
		return !generated
	},
}

// requestsForWorkloadPeers maps an APIRule to the other APIRules whose backends may share its
// workload (gather.PeersOf, the lookup the workload-wide checks make), whose checks it takes
// part in.
func (r *APIRuleReconciler) requestsForWorkloadPeers(ctx context.Context, obj client.Object) []reconcile.Request {
	peers, err := gather.PeersOf(ctx, r.Client, r.Options, obj.(*apiv2.APIRule))
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "finding the APIRules that share a workload", "apirule", ownerOf(obj.(*apiv2.APIRule)))
		return nil
	}
	out := make([]reconcile.Request, 0, len(peers))
	for _, p := range peers {
		out = append(out, reconcile.Request{NamespacedName: model.Owner(p.APIRule)})
	}
	return out
}

// programmedChanges lets through the status updates in which an APIRule starts or stops
// serving its current spec, which decides who prevails in a workload conflict.
var programmedChanges = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*apiv2.APIRule)
		cur, okNew := e.ObjectNew.(*apiv2.APIRule)
		return okOld && okNew && conditions.ProgrammedAsIs(old) != conditions.ProgrammedAsIs(cur)
	},
}

// coveringCreation lets through the creation of the generated objects that may start an mTLS
// host conflict on the ingress gateway, which the APIRules on the other side must see at once:
// a route with a wildcard host, and an mTLS Gateway.
var coveringCreation = predicate.Funcs{
	CreateFunc: func(e event.CreateEvent) bool {
		switch obj := e.Object.(type) {
		case *networkingclientv1.VirtualService:
			return slices.ContainsFunc(obj.Spec.Hosts, func(h string) bool { return strings.HasPrefix(h, "*") })
		case *networkingclientv1.Gateway:
			owner, managed := ownerFromLabels(obj)
			return managed && obj.Name == model.MTLSGatewayName(owner)
		}
		return false
	},
	UpdateFunc:  func(event.UpdateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
}
