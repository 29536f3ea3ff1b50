package controllers

import (
	"bytes"
	"context"
	"slices"
	"strings"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/translate"
	"github.com/apirule-operator/apirule-operator/internal/validate"
)

// Field indexes on APIRules, so an event on a referenced object finds the APIRules that
// reference it without listing them all.
const (
	hostIndex       = validate.HostIndex
	serviceIndex    = "apirule.io/backend-services"
	gatewayIndex    = "apirule.io/gateway"
	meshConfigIndex = "apirule.io/mesh-config"
	// secretIndex holds the Secrets an mTLS APIRule reads; ipRestrictedIndex marks the
	// APIRules with an IP restriction, which read the ingress gateway Pods.
	secretIndex       = "apirule.io/secrets"
	ipRestrictedIndex = "apirule.io/ip-restricted"
	// gatewayServerHostIndex indexes every Gateway by the hosts of its servers, without
	// the namespace/ prefix, for the mTLS host conflict check.
	gatewayServerHostIndex = "apirule.io/server-hosts"
	// virtualServiceHostIndex indexes every VirtualService of the cluster by host.
	virtualServiceHostIndex = "spec.hosts"
	// podLabelIndex indexes Pods by their labels and serviceSelectorIndex Services by their
	// selector, both as key=value pairs, so Pods and the Services that select them find each
	// other without scanning a namespace.
	podLabelIndex        = "apirule.io/labels"
	serviceSelectorIndex = "apirule.io/selector"
)

func labelPairs(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	return out
}

func (r *APIRuleReconciler) registerIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &corev1.Pod{}, podLabelIndex, func(obj client.Object) []string {
		return labelPairs(obj.GetLabels())
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &corev1.Service{}, serviceSelectorIndex, func(obj client.Object) []string {
		return labelPairs(obj.(*corev1.Service).Spec.Selector)
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &networkingclientv1.VirtualService{}, virtualServiceHostIndex, func(obj client.Object) []string {
		return obj.(*networkingclientv1.VirtualService).Spec.Hosts
	}); err != nil {
		return err
	}
	// Hosts as written; a short host is indexed as short:<name>, which is what a
	// VirtualService host's first label is looked up as.
	if err := indexer.IndexField(ctx, &apiv2.APIRule{}, hostIndex, func(obj client.Object) []string {
		var keys []string
		for _, h := range obj.(*apiv2.APIRule).Spec.Hosts {
			if strings.Contains(string(h), ".") {
				keys = append(keys, string(h))
			} else {
				keys = append(keys, shortHostKey(string(h)))
			}
		}
		return keys
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &apiv2.APIRule{}, serviceIndex, func(obj client.Object) []string {
		rule := obj.(*apiv2.APIRule)
		var keys []string
		seen := map[string]bool{}
		for i := range rule.Spec.Rules {
			if ref, _, ok := translate.BackendRef(rule, i); ok && !seen[ref.String()] {
				seen[ref.String()] = true
				keys = append(keys, ref.String())
			}
		}
		return keys
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &apiv2.APIRule{}, gatewayIndex, func(obj client.Object) []string {
		if ref, ok := translate.GatewayRef(obj.(*apiv2.APIRule), r.Options); ok {
			return []string{ref.String()}
		}
		return nil
	}); err != nil {
		return err
	}
	// Only APIRules with extAuth rules or IP restrictions depend on the mesh config; the cache
	// holds only the mesh config ConfigMap, so its key is the one value of this index.
	if err := indexer.IndexField(ctx, &apiv2.APIRule{}, meshConfigIndex, func(obj client.Object) []string {
		if readsMeshConfig(obj.(*apiv2.APIRule)) {
			return []string{r.MeshConfig.String()}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &apiv2.APIRule{}, ipRestrictedIndex, func(obj client.Object) []string {
		if translate.UsesIPRestriction(obj.(*apiv2.APIRule)) {
			return []string{"true"}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := indexer.IndexField(ctx, &apiv2.APIRule{}, secretIndex, func(obj client.Object) []string {
		rule := obj.(*apiv2.APIRule)
		if rule.Spec.MTLS == nil {
			return nil
		}
		credential, ca, caCopy := translate.MTLSSecretRefs(rule, r.Options)
		return []string{credential.String(), ca.String(), caCopy.String()}
	}); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &networkingclientv1.Gateway{}, gatewayServerHostIndex, func(obj client.Object) []string {
		return serverHosts(obj.(*networkingclientv1.Gateway))
	})
}

// serverHosts returns the hosts of a Gateway's servers, once each, without namespace/ prefix.
func serverHosts(gw *networkingclientv1.Gateway) []string {
	var hosts []string
	for _, server := range gw.Spec.Servers {
		for _, h := range server.Hosts {
			if h = translate.ServerHost(h); !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// requestsForGateway maps a Gateway to the APIRules bound to it and to the mTLS APIRules
// whose hosts it serves, for which it may start or end a conflict.
func (r *APIRuleReconciler) requestsForGateway(ctx context.Context, obj client.Object) []reconcile.Request {
	out := r.requestsForIndex(gatewayIndex)(ctx, obj)
	for _, h := range serverHosts(obj.(*networkingclientv1.Gateway)) {
		out = append(out, r.requestsForKey(ctx, hostIndex, h)...)
	}
	return out
}

// requestsForSecret maps a Secret to the mTLS APIRules that read it, and a CA copy to its
// owner, so a changed or deleted copy is restored.
func (r *APIRuleReconciler) requestsForSecret(ctx context.Context, obj client.Object) []reconcile.Request {
	return append(requestForOwnerLabels(ctx, obj), r.requestsForIndex(secretIndex)(ctx, obj)...)
}

// requestsForIndex maps an object to the APIRules whose index holds its namespace/name.
func (r *APIRuleReconciler) requestsForIndex(index string) func(context.Context, client.Object) []reconcile.Request {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		return r.requestsForKey(ctx, index, types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}.String())
	}
}

// requestsForKey maps an index key to the APIRules that hold it.
func (r *APIRuleReconciler) requestsForKey(ctx context.Context, index, key string) []reconcile.Request {
	rules := &apiv2.APIRuleList{}
	if err := r.Client.List(ctx, rules, client.MatchingFields{index: key}); err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "listing APIRules by index", "index", index, "key", key)
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
	labels := obj.GetLabels()
	name, namespace := labels[ownership.LabelName], labels[ownership.LabelNamespace]
	if name == "" || namespace == "" || labels[ownership.LabelManagedBy] != ownership.ManagedByValue {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: name}, true
}

// requestsForVirtualService maps a VirtualService to its owner, if it is generated, and to
// every APIRule that claims one of its hosts: a route appearing or going away can start or
// end a host conflict.
func (r *APIRuleReconciler) requestsForVirtualService(ctx context.Context, obj client.Object) []reconcile.Request {
	out := requestForOwnerLabels(ctx, obj)
	for _, host := range obj.(*networkingclientv1.VirtualService).Spec.Hosts {
		for _, key := range []string{host, shortHostKey(strings.SplitN(host, ".", 2)[0])} {
			out = append(out, r.requestsForKey(ctx, hostIndex, key)...)
		}
	}
	return out
}

func shortHostKey(name string) string { return "short:" + name }

// SlimVirtualService keeps in the cache whole VirtualServices the operator generated and, of
// all others, only what the host-conflict check reads: hosts and gateways.
func SlimVirtualService(obj any) (any, error) {
	vs, ok := obj.(*networkingclientv1.VirtualService)
	if !ok {
		return obj, nil
	}
	if _, managed := ownerFromLabels(vs); managed {
		return vs, nil
	}
	slim := &networkingclientv1.VirtualService{ObjectMeta: slimMeta(vs.ObjectMeta)}
	slim.Spec.Hosts = vs.Spec.Hosts
	slim.Spec.Gateways = vs.Spec.Gateways
	return slim, nil
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
	seen := map[string]bool{}
	var out []reconcile.Request
	// An ingress gateway Pod's proxy config decides the IP-restricted APIRules' trusted proxies.
	if obj.GetNamespace() == r.Options.IngressGatewayNamespace && len(r.Options.IngressGatewaySelector) > 0 &&
		labels.SelectorFromSet(r.Options.IngressGatewaySelector).Matches(podLabels) {
		out = append(out, r.requestsForKey(ctx, ipRestrictedIndex, "true")...)
	}
	for _, pair := range labelPairs(podLabels) {
		services := &corev1.ServiceList{}
		if err := r.Client.List(ctx, services, client.InNamespace(obj.GetNamespace()), client.MatchingFields{serviceSelectorIndex: pair}); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "listing Services for a Pod", "pod", obj.GetName())
			return nil
		}
		for i := range services.Items {
			svc := &services.Items[i]
			if seen[svc.Name] || !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
				continue
			}
			seen[svc.Name] = true
			out = append(out, r.requestsForIndex(serviceIndex)(ctx, svc)...)
		}
	}
	return out
}

// podChanges lets through the Pod events that can change a sidecar check: creation,
// deletion, and label changes (containers cannot change).
var podChanges = predicate.Or(predicate.LabelChangedPredicate{}, predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return true },
	DeleteFunc:  func(event.DeleteEvent) bool { return true },
	UpdateFunc:  func(event.UpdateEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
})

// SlimPod keeps in the cache only what the sidecar check and the trusted-proxy check read of
// a Pod.
func SlimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Pod{ObjectMeta: slimMeta(pod.ObjectMeta)}
	if proxyConfig, ok := pod.Annotations[meshconfig.ProxyConfigAnnotation]; ok {
		slim.Annotations = map[string]string{meshconfig.ProxyConfigAnnotation: proxyConfig}
	}
	for _, c := range pod.Spec.Containers {
		slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Name: c.Name})
	}
	for _, c := range pod.Spec.InitContainers {
		slim.Spec.InitContainers = append(slim.Spec.InitContainers, corev1.Container{Name: c.Name})
	}
	return slim, nil
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

// SlimSecret keeps in the cache only the certificates of a Secret, never a key or other
// confidential value: the operator reads server certificates and CA bundles. A value that is
// not only certificates is replaced by a marker, so the certificate check still reports the
// key as present but not a certificate.
func SlimSecret(obj any) (any, error) {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Secret{ObjectMeta: slimMeta(secret.ObjectMeta), Type: secret.Type}
	for key, value := range secret.Data {
		if slim.Data == nil {
			slim.Data = map[string][]byte{}
		}
		if bytes.Contains(value, []byte("-----BEGIN CERTIFICATE-----")) && !bytes.Contains(value, []byte("PRIVATE KEY")) {
			slim.Data[key] = value
		} else {
			slim.Data[key] = notCached
		}
	}
	return slim, nil
}

// notCached stands for a Secret value that is not kept in the cache.
var notCached = []byte("(not a certificate: not cached by apirule-operator)")

// slimMeta keeps the metadata a cached object needs: identity, labels and lifecycle.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
	}
}
