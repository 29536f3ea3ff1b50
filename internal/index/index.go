// Package index defines the cache's field indexes: their names, how each key is computed, and
// their registration. The reconciler, its event mappers, the admission webhook and the offline
// gatherer all look objects up through these, so a key is computed in one place only.
package index

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/lookup"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/slim"
)

// The indexes. Those with about one value per object are hashed (internal/lookup); every
// lookup goes through the index's List. A hashed index's values of an object of another kind
// are none.
var (
	// APIRuleHost lists APIRules by host as written; a short host as short:<name>.
	APIRuleHost = lookup.Hashed("apirule.io/hosts", func(obj client.Object) []string {
		var keys []string
		rule, ok := obj.(*apiv2.APIRule)
		if !ok {
			return nil
		}
		for _, h := range rule.Spec.Hosts {
			keys = append(keys, HostKey(h))
		}
		return keys
	})
	// APIRuleService lists APIRules by the namespace/name of each backend Service.
	APIRuleService = lookup.Hashed("apirule.io/backend-services", func(obj client.Object) []string {
		rule, ok := obj.(*apiv2.APIRule)
		if !ok {
			return nil
		}
		var keys []string
		for _, ref := range model.BackendRefs(rule) {
			keys = append(keys, ref.String())
		}
		return keys
	})
	// APIRuleGateway lists APIRules by the namespace/name of their Gateway.
	APIRuleGateway = lookup.Plain("apirule.io/gateway")
	// APIRuleMeshConfig lists the APIRules that read the mesh config, under its namespace/name.
	APIRuleMeshConfig = lookup.Plain("apirule.io/mesh-config")
	// APIRuleSecret lists mTLS APIRules by the Secrets they read.
	APIRuleSecret = lookup.Plain("apirule.io/secrets")
	// APIRuleMTLS lists the mTLS APIRules under MTLSKey: a route with a wildcard host
	// anywhere on the ingress gateway may start or end covering one of their hosts.
	APIRuleMTLS = lookup.Plain("apirule.io/mtls")
	// APIRuleIPRestricted lists the IP-restricted APIRules, which read the ingress gateway
	// Pods, under IPRestrictedKey.
	APIRuleIPRestricted = lookup.Plain("apirule.io/ip-restricted")
	// APIRuleCrossNamespace lists APIRules by CrossNamespaceKey for each backend namespace
	// that is not their own: a ReferenceGrant there may give or take away their consent.
	APIRuleCrossNamespace = lookup.Plain("apirule.io/cross-namespace")
	// GatewayServerHost lists Gateways by the hosts of their servers, without namespace/.
	GatewayServerHost = lookup.Plain("apirule.io/server-hosts")
	// RouteDestinationNamespace lists the operator's VirtualServices by the namespaces of the
	// Services they route to: a ReferenceGrant there may take away their consent.
	RouteDestinationNamespace = lookup.Plain("apirule.io/destination-namespaces")
	// RouteDestination lists the operator's VirtualServices by the namespace/name of each
	// Service they route to: a Pod joining it may take their protection away.
	RouteDestination = lookup.Hashed("apirule.io/destinations", func(obj client.Object) []string {
		vs, ok := obj.(*networkingclientv1.VirtualService)
		if !ok {
			return nil
		}
		var keys []string
		for _, ref := range RouteBackends(vs) {
			keys = append(keys, ref.String())
		}
		return keys
	})
	// GatewayCredential lists Gateways by the certificate Secret names of their servers.
	GatewayCredential = lookup.Plain("apirule.io/server-credentials")
	// VirtualServiceHost lists every VirtualService of the cluster by host.
	VirtualServiceHost = lookup.Hashed("spec.hosts", func(obj client.Object) []string {
		if vs, ok := obj.(*networkingclientv1.VirtualService); ok {
			return vs.Spec.Hosts
		}
		return nil
	})
	// PodLabel lists Pods by their labels and ServiceSelector Services by their selector, both
	// as key=value pairs, so Pods and the Services that select them find each other without
	// scanning a namespace.
	PodLabel        = lookup.HashedPairs("apirule.io/labels", func(obj client.Object) map[string]string { return obj.GetLabels() })
	ServiceSelector = lookup.HashedPairs("apirule.io/selector", func(obj client.Object) map[string]string {
		if svc, ok := obj.(*corev1.Service); ok {
			return svc.Spec.Selector
		}
		return nil
	})
)

// IPRestrictedKey is the one key of APIRuleIPRestricted, MTLSKey of APIRuleMTLS.
const (
	IPRestrictedKey = "true"
	MTLSKey         = "true"
)

// Definition is one field index of one kind.
type Definition struct {
	Object client.Object
	Index  lookup.Index
	// Extract are the values of a plain index; a hashed one has its own.
	Extract client.IndexerFunc
	// Scope is how the index is looked up; the cache keeps each value in that one form, so a
	// lookup the other way finds nothing.
	Scope Scope
}

// Values are the values an object is looked up by.
func (d Definition) Values(obj client.Object) []string {
	if d.Index.IsHashed() {
		return d.Index.Values(obj)
	}
	return d.Extract(obj)
}

// Stored are the values under which the index keeps an object, as a reader that matches
// field selectors against them (the fake client) registers them.
func (d Definition) Stored(obj client.Object) []string { return d.Index.Stored(d.Values(obj)) }

// Scope is how an index is looked up.
type Scope int

const (
	// AcrossNamespaces: without client.InNamespace. (The zero Scope is none: Register refuses
	// a Definition that does not say.)
	AcrossNamespaces Scope = iota + 1
	// WithinNamespace: with client.InNamespace only.
	WithinNamespace
)

// Definitions returns every index the operator uses. opts decide an APIRule's Gateway and
// Secrets; meshConfig is the namespace/name of the mesh config ConfigMap.
func Definitions(opts model.Options, meshConfig types.NamespacedName) []Definition {
	defs := []Definition{
		// A Service selects Pods of its own namespace only: both are looked up in a namespace.
		{Object: slim.PodMetadata(), Index: PodLabel, Scope: WithinNamespace},
		{Object: &corev1.Service{}, Index: ServiceSelector, Scope: WithinNamespace},
		{Object: &networkingclientv1.VirtualService{}, Index: VirtualServiceHost, Scope: AcrossNamespaces},
		{Object: &networkingclientv1.VirtualService{}, Index: RouteDestination, Scope: AcrossNamespaces},
		{Object: &networkingclientv1.VirtualService{}, Index: RouteDestinationNamespace, Extract: func(obj client.Object) []string {
			var namespaces []string
			for _, ref := range RouteBackends(obj.(*networkingclientv1.VirtualService)) {
				if !slices.Contains(namespaces, ref.Namespace) {
					namespaces = append(namespaces, ref.Namespace)
				}
			}
			return namespaces
		}, Scope: AcrossNamespaces},
		{Object: &networkingclientv1.Gateway{}, Index: GatewayServerHost, Extract: func(obj client.Object) []string {
			return ServerHosts(obj.(*networkingclientv1.Gateway))
		}, Scope: AcrossNamespaces},
		{Object: &networkingclientv1.Gateway{}, Index: GatewayCredential, Extract: func(obj client.Object) []string {
			var names []string
			for _, server := range obj.(*networkingclientv1.Gateway).Spec.Servers {
				if name := server.GetTls().GetCredentialName(); name != "" && !slices.Contains(names, name) {
					names = append(names, name)
				}
			}
			return names
		}, Scope: AcrossNamespaces},
		{Object: &apiv2.APIRule{}, Index: APIRuleHost, Scope: AcrossNamespaces},
		{Object: &apiv2.APIRule{}, Index: APIRuleService, Scope: AcrossNamespaces},
		{Object: &apiv2.APIRule{}, Index: APIRuleCrossNamespace, Extract: func(obj client.Object) []string {
			var keys []string
			for _, ref := range model.BackendRefs(obj.(*apiv2.APIRule)) {
				if key := CrossNamespaceKey(obj.GetNamespace(), ref.Namespace); ref.Namespace != obj.GetNamespace() && !slices.Contains(keys, key) {
					keys = append(keys, key)
				}
			}
			return keys
		}, Scope: AcrossNamespaces},
		{Object: &apiv2.APIRule{}, Index: APIRuleGateway, Extract: func(obj client.Object) []string {
			if ref, ok := model.GatewayRef(obj.(*apiv2.APIRule), opts); ok {
				return []string{ref.String()}
			}
			return nil
		}, Scope: AcrossNamespaces},
		// The cache holds only the mesh config ConfigMap, so its key is the one value.
		{Object: &apiv2.APIRule{}, Index: APIRuleMeshConfig, Extract: func(obj client.Object) []string {
			if model.ReadsMeshConfig(obj.(*apiv2.APIRule)) {
				return []string{meshConfig.String()}
			}
			return nil
		}, Scope: AcrossNamespaces},
		{Object: &apiv2.APIRule{}, Index: APIRuleIPRestricted, Extract: func(obj client.Object) []string {
			if model.UsesIPRestriction(obj.(*apiv2.APIRule)) {
				return []string{IPRestrictedKey}
			}
			return nil
		}, Scope: AcrossNamespaces},
		{Object: &apiv2.APIRule{}, Index: APIRuleMTLS, Extract: func(obj client.Object) []string {
			if obj.(*apiv2.APIRule).Spec.MTLS != nil {
				return []string{MTLSKey}
			}
			return nil
		}, Scope: AcrossNamespaces},
		{Object: &apiv2.APIRule{}, Index: APIRuleSecret, Extract: func(obj client.Object) []string {
			rule := obj.(*apiv2.APIRule)
			if rule.Spec.MTLS == nil {
				return nil
			}
			credential, ca, caCopy := model.MTLSSecretRefs(rule, opts)
			return []string{credential.String(), ca.String(), caCopy.String()}
		}, Scope: AcrossNamespaces},
	}
	// Every generated kind by its owner: pruning lists an APIRule's children through it.
	for _, k := range apply.Kinds {
		defs = append(defs, Definition{Object: k.Object, Index: apply.OwnerIndex, Scope: AcrossNamespaces})
	}
	return defs
}

// Register adds the indexes to the informers of a manager's cache. controller-runtime's own
// IndexField keeps every value of a namespaced object twice, under its namespace and across
// namespaces, and the operator reads each index one way only: the second copy was a quarter of
// the operator's memory at 10,000 APIRules (docs/performance.md).
func Register(ctx context.Context, informers lookup.Informers, defs []Definition) error {
	for _, d := range defs {
		if err := d.check(); err != nil {
			return err
		}
		// The manager has not started: nothing to wait for.
		informer, err := informers.GetInformer(ctx, d.Object, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("index %s: %w", d.Index.Name(), err)
		}
		if err := informer.AddIndexers(toolscache.Indexers{lookup.IndexerName(d.Index.Field()): d.CacheKeys}); err != nil {
			return fmt.Errorf("index %s: %w", d.Index.Name(), err)
		}
	}
	return nil
}

// check refuses a Definition without a scope, and one whose values are given twice or not at
// all.
func (d Definition) check() error {
	switch {
	case d.Scope != AcrossNamespaces && d.Scope != WithinNamespace:
		return fmt.Errorf("index %s: no scope", d.Index.Name())
	case d.Index.IsHashed() == (d.Extract != nil):
		return fmt.Errorf("index %s: a hashed index has its own values, a plain one needs Extract", d.Index.Name())
	}
	return nil
}

// ScopeCheck returns a check of a List's options: an error when its field selector reads one
// of the indexes the other way than its Scope, which the operator's cache would answer with
// nothing. A reader that matches index values whatever the namespace (the fake client behind
// apirulectl and its tests) runs it, so a lookup of the wrong scope fails there too.
func ScopeCheck(defs []Definition) func(*client.ListOptions) error {
	scopes := map[string]Scope{}
	for _, d := range defs {
		scopes[d.Index.Field()] = d.Scope
	}
	return func(opts *client.ListOptions) error {
		if opts.FieldSelector == nil {
			return nil
		}
		for _, req := range opts.FieldSelector.Requirements() {
			switch scope, indexed := scopes[req.Field]; {
			case !indexed:
			case scope == WithinNamespace && opts.Namespace == "":
				return fmt.Errorf("index %s is looked up within a namespace only: the list needs client.InNamespace", req.Field)
			case scope == AcrossNamespaces && opts.Namespace != "":
				return fmt.Errorf("index %s is looked up across namespaces only: the list must not name namespace %s", req.Field, opts.Namespace)
			}
		}
		return nil
	}
}

// CacheKeys are the keys under which the cache's reader looks up an object's values: in its
// namespace for an index looked up WithinNamespace, across namespaces otherwise.
func (d Definition) CacheKeys(raw any) ([]string, error) {
	obj, ok := raw.(client.Object)
	if !ok {
		return nil, fmt.Errorf("index %s: %T is not an object", d.Index.Name(), raw)
	}
	// A cluster-scoped object has no namespace to look it up in: it is kept as a lookup
	// across namespaces finds it.
	namespace := ""
	if d.Scope == WithinNamespace {
		namespace = obj.GetNamespace()
	}
	values := d.Stored(obj)
	keys := make([]string, len(values))
	for i, v := range values {
		keys[i] = lookup.IndexerKey(namespace, v)
	}
	return keys, nil
}

// HostKey is the key under which APIRuleHost lists a host: the host as written, or
// short:<name> for a short host, which is what a routed host's first label is looked up as.
func HostKey(host apiv2.Host) string {
	if strings.Contains(string(host), ".") {
		return string(host)
	}
	return ShortHostKey(string(host))
}

// CrossNamespaceKey is the APIRuleCrossNamespace key of APIRules in namespace from with a
// backend in namespace to.
func CrossNamespaceKey(from, to string) string { return from + "->" + to }

// ShortHostKey is the APIRuleHost key of a short host.
func ShortHostKey(name string) string { return "short:" + name }

// RoutedHostKeys are the APIRuleHost keys under which APIRules may list a routed host: the
// host itself, and its first label as a short host.
func RoutedHostKeys(host string) []string {
	return []string{host, ShortHostKey(strings.SplitN(host, ".", 2)[0])}
}

// LabelPairs returns a label map as key=value pairs, the values of PodLabel and
// ServiceSelector.
func LabelPairs(m map[string]string) []string { return lookup.Pairs(m) }

// FirstPair is the key=value pair under which objects matching the whole selector are looked
// up: the first in sorted order, so a lookup is one index read and a filter.
func FirstPair(selector map[string]string) string {
	pairs := LabelPairs(selector)
	slices.Sort(pairs)
	return pairs[0]
}

// ServerHosts returns the hosts of a Gateway's servers, once each, without namespace/ prefix.
func ServerHosts(gw *networkingclientv1.Gateway) []string {
	var hosts []string
	for _, server := range gw.Spec.Servers {
		for _, h := range server.Hosts {
			if h = model.ServerHost(h); !slices.Contains(hosts, h) {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// RouteBackends are the Services a VirtualService routes to (model.ServiceHost's form), once
// each, sorted.
func RouteBackends(vs *networkingclientv1.VirtualService) []types.NamespacedName {
	var out []types.NamespacedName
	for _, route := range vs.Spec.Http {
		for _, d := range route.Route {
			if ref, ok := model.ServiceFromHost(d.GetDestination().GetHost()); ok && !slices.Contains(out, ref) {
				out = append(out, ref)
			}
		}
	}
	slices.SortFunc(out, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	return out
}
