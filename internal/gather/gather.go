// Package gather reads everything the checks and the translator need about one APIRule into
// a model.Input. It reads through a client.Reader: the manager's cache in the operator, an
// in-memory store of the input files in apirulectl, so both compute from the same reads.
package gather

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/index"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/slim"
)

// Gatherer reads the input of APIRules.
type Gatherer struct {
	Reader client.Reader
	// Options are the operator's settings.
	Options model.Options
	// MeshConfig is the namespace/name of Istio's mesh config ConfigMap.
	MeshConfig types.NamespacedName
	// Holder, when set, returns the APIRule other than self that this process has seen
	// route the host: the reconciler's record of its own writes, which the cache may not
	// show yet.
	Holder func(host string, self types.NamespacedName) (types.NamespacedName, bool)
	// Now is the clock certificates are checked against; time.Now when nil.
	Now func() time.Time
	// SkipPods leaves the backend Pods unread (model.Service.PodsKnown false): offline
	// inputs usually hold no Pods, and their absence must not read as "no Pods run".
	SkipPods bool
	// SkipCredentials leaves the Gateway's certificate Secrets unread: offline inputs hold the
	// Secrets of mTLS APIRules only, and a Gateway's Secret missing there is no finding.
	SkipCredentials bool
}

// Gather reads everything the checks and the translation need. A missing object is left out
// of the input, for the checks to report; a mesh config that does not parse is recorded in
// the input too. The error is a failed read: the input is incomplete and nothing may be
// decided from it.
func (r *Gatherer) Gather(ctx context.Context, rule *apiv2.APIRule) (model.Input, error) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	in := model.Input{
		APIRule: rule,
		Options: r.Options,
		Now:     now(),
	}

	if gw := model.MTLSGateway(rule, r.Options); gw != nil {
		in.Gateway = gw
		if err := r.gatherMTLS(ctx, &in); err != nil {
			return in, err
		}
	} else if ref, ok := model.GatewayRef(rule, r.Options); ok {
		gw := &networkingclientv1.Gateway{}
		switch err := r.Reader.Get(ctx, ref, gw); {
		case err == nil:
			in.Gateway = model.GatewayFromIstio(gw)
		case !apierrors.IsNotFound(err):
			return in, fmt.Errorf("reading Gateway %s: %w", ref, err)
		}
	}

	if in.MTLS == nil {
		if err := r.coveredMTLSHosts(ctx, &in); err != nil {
			return in, err
		}
	}
	// The cache lists in no fixed order; findings, and so status, must not flap with it. One
	// finding per host and covering route, with its most specific covering host.
	slices.SortFunc(in.Fronting, func(a, b model.Fronting) int {
		if c := strings.Compare(a.Host+" "+a.Route.String(), b.Host+" "+b.Route.String()); c != 0 {
			return c
		}
		return len(b.Pattern) - len(a.Pattern) // the longer covering host is the more specific
	})
	in.Fronting = slices.CompactFunc(in.Fronting, func(a, b model.Fronting) bool { return a.Host == b.Host && a.Route == b.Route })

	var err error
	if in.ServedHosts, in.ServedBackends, err = r.served(ctx, rule); err != nil {
		return in, err
	}
	if in.Gateway != nil {
		claims, err := r.hostClaims(ctx, in)
		if err != nil {
			return in, err
		}
		in.HostClaims = claims
		if in.MissingCredentials, err = r.missingCredentials(ctx, in); err != nil {
			return in, err
		}
	}

	if model.ReadsMeshConfig(rule) {
		if in.Mesh, in.MeshError, err = r.meshConfig(ctx); err != nil {
			return in, err
		}
	}
	if model.UsesIPRestriction(rule) {
		if in.IngressPods, err = r.ingressPods(ctx); err != nil {
			return in, err
		}
	}

	if in.Services, err = r.backends(ctx, rule); err != nil {
		return in, err
	}
	if in.ServedServices, err = r.services(ctx, in.ServedBackends, func(ref types.NamespacedName) bool {
		_, known := in.Services[ref]
		return !known
	}); err != nil {
		return in, err
	}
	if in.Peers, err = Peers(ctx, r.Reader, r.Options, rule, in.Services); err != nil {
		return in, err
	}
	if in.ReferenceGrants, err = r.referenceGrants(ctx, rule, in.ServedBackends); err != nil {
		return in, err
	}
	return in, nil
}

// missingCredentials returns the credentialNames of the Gateway's servers for the APIRule's
// hosts whose Secret is not in the ingress gateway namespace, where Istio reads it. An mTLS
// APIRule's own Gateway is left out: its Secrets are checked as the mode's.
func (r *Gatherer) missingCredentials(ctx context.Context, in model.Input) ([]string, error) {
	if r.SkipCredentials || in.MTLS != nil || r.Options.IngressGatewayNamespace == "" {
		return nil, nil
	}
	hosts := model.RoutedHosts(in)
	var missing []string
	for _, server := range in.Gateway.Servers {
		name := server.CredentialName
		if name == "" || slices.Contains(missing, name) || !slices.ContainsFunc(server.Hosts, func(pattern string) bool {
			return slices.ContainsFunc(hosts, func(h string) bool { return model.GatewayServes(model.ServerHost(pattern), h) })
		}) {
			continue
		}
		key := types.NamespacedName{Namespace: r.Options.IngressGatewayNamespace, Name: name}
		switch err := r.Reader.Get(ctx, key, &corev1.Secret{}); {
		case apierrors.IsNotFound(err):
			missing = append(missing, name)
		case err != nil:
			return nil, fmt.Errorf("reading the Gateway's credential Secret %s: %w", key, err)
		}
	}
	slices.Sort(missing)
	return missing, nil
}

// backends reads the APIRule's backend Services that exist and, unless SkipPods, their Pods.
func (r *Gatherer) backends(ctx context.Context, rule *apiv2.APIRule) (map[types.NamespacedName]model.Service, error) {
	return r.services(ctx, model.BackendRefs(rule), func(types.NamespacedName) bool { return true })
}

// services reads the Services of refs that want selects, and, unless SkipPods, their Pods; a
// Service that does not exist is left out.
func (r *Gatherer) services(ctx context.Context, refs []types.NamespacedName, want func(types.NamespacedName) bool) (map[types.NamespacedName]model.Service, error) {
	out := map[types.NamespacedName]model.Service{}
	for _, ref := range refs {
		if !want(ref) {
			continue
		}
		svc := &corev1.Service{}
		switch err := r.Reader.Get(ctx, ref, svc); {
		case err == nil:
			backend := model.ServiceFromCore(svc)
			if !r.SkipPods {
				if backend.Pods, err = r.backendPods(ctx, svc); err != nil {
					return nil, err
				}
				backend.PodsKnown = true
			}
			out[ref] = backend
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("reading Service %s: %w", ref, err)
		}
	}
	return out, nil
}

// PeersOf finds the peers of an APIRule from what the reader holds now: the APIRule's backend
// Services and their Pods, then Peers. The relation is symmetric, so these are also the
// APIRules whose workload-wide checks the APIRule takes part in.
func PeersOf(ctx context.Context, reader client.Reader, opts model.Options, rule *apiv2.APIRule) ([]model.Peer, error) {
	services, err := (&Gatherer{Reader: reader, Options: opts}).backends(ctx, rule)
	if err != nil {
		return nil, err
	}
	return Peers(ctx, reader, opts, rule, services)
}

// referenceGrants reads the ReferenceGrants of the namespaces, other than the APIRule's, of its
// backends and of the Services its route serves now, when the cluster serves them, in a fixed order: the grant a finding names must
// not change with the cache's list order.
func (r *Gatherer) referenceGrants(ctx context.Context, rule *apiv2.APIRule, served []types.NamespacedName) ([]model.ReferenceGrant, error) {
	if !r.Options.ReferenceGrants {
		return nil, nil
	}
	var namespaces []string
	for _, ref := range append(model.BackendRefs(rule), served...) {
		if ref.Namespace != rule.Namespace && !slices.Contains(namespaces, ref.Namespace) {
			namespaces = append(namespaces, ref.Namespace)
		}
	}
	slices.Sort(namespaces)
	var out []model.ReferenceGrant
	for _, ns := range namespaces {
		grants := &gatewayv1beta1.ReferenceGrantList{}
		if err := r.Reader.List(ctx, grants, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("listing the ReferenceGrants of namespace %s: %w", ns, err)
		}
		slices.SortFunc(grants.Items, func(a, b gatewayv1beta1.ReferenceGrant) int { return strings.Compare(a.Name, b.Name) })
		for i := range grants.Items {
			out = append(out, model.ReferenceGrantFromGatewayAPI(&grants.Items[i]))
		}
	}
	return out, nil
}

// Peers finds the other APIRules whose backend Services may select Pods of the APIRule's
// backends (model.SelectorsOverlap), through the Service selector and APIRule backend
// indexes. services are the APIRule's backends as read. An APIRule of another namespace than
// the shared Service's counts only with that namespace's consent: without it, it serves
// nothing there, and must not keep the namespace's own APIRules from its workload.
func Peers(ctx context.Context, reader client.Reader, opts model.Options, rule *apiv2.APIRule, services map[types.NamespacedName]model.Service) ([]model.Peer, error) {
	self := model.Owner(rule)
	grants := map[string][]model.ReferenceGrant{}
	consented := func(from string, svc types.NamespacedName) (bool, error) {
		// The grants are read only when the rest of the rule does not decide.
		if model.Consented(opts, nil, from, svc) {
			return true, nil
		}
		if !opts.ReferenceGrants {
			return false, nil // the cluster has no ReferenceGrants to read
		}
		if _, read := grants[svc.Namespace]; !read {
			list := &gatewayv1beta1.ReferenceGrantList{}
			if err := reader.List(ctx, list, client.InNamespace(svc.Namespace)); err != nil {
				return false, fmt.Errorf("listing the ReferenceGrants of namespace %s: %w", svc.Namespace, err)
			}
			grants[svc.Namespace] = []model.ReferenceGrant{}
			for i := range list.Items {
				grants[svc.Namespace] = append(grants[svc.Namespace], model.ReferenceGrantFromGatewayAPI(&list.Items[i]))
			}
		}
		return model.Consented(opts, grants[svc.Namespace], from, svc), nil
	}
	byOwner := map[types.NamespacedName]*model.Peer{}
	var order []types.NamespacedName
	for _, ref := range model.BackendRefs(rule) {
		mine, ok := services[ref]
		if !ok || len(mine.Selector) == 0 {
			continue
		}
		seen := map[types.NamespacedName]bool{}
		for _, pair := range candidatePairs(mine) {
			candidates := &corev1.ServiceList{}
			if err := index.ServiceSelector.List(ctx, reader, candidates, pair, client.InNamespace(mine.Namespace)); err != nil {
				return nil, fmt.Errorf("listing the Services that may share workload %s: %w", model.WorkloadKey(mine), err)
			}
			for i := range candidates.Items {
				other := model.ServiceFromCore(&candidates.Items[i])
				key := types.NamespacedName{Namespace: other.Namespace, Name: other.Name}
				if seen[key] || !model.SelectorsOverlap(mine, other) {
					continue
				}
				seen[key] = true
				rules := &apiv2.APIRuleList{}
				if err := index.APIRuleService.List(ctx, reader, rules, key.String()); err != nil {
					return nil, fmt.Errorf("listing the APIRules of Service %s: %w", key, err)
				}
				for j := range rules.Items {
					peer := &rules.Items[j]
					owner := model.Owner(peer)
					// A peer being deleted still counts until it is gone: its routes serve until
					// the finalizer has pruned them, and its deletion enqueues this APIRule again.
					if owner == self {
						continue
					}
					if ok, err := consented(peer.Namespace, key); err != nil {
						return nil, err
					} else if !ok {
						continue
					}
					p, ok := byOwner[owner]
					if !ok {
						p = &model.Peer{APIRule: peer}
						byOwner[owner] = p
						order = append(order, owner)
					}
					if w := model.WorkloadKey(mine); !slices.Contains(p.Workloads, w) {
						p.Workloads = append(p.Workloads, w)
					}
					if !slices.Contains(p.Services, key) {
						p.Services = append(p.Services, key)
					}
				}
			}
		}
	}
	slices.SortFunc(order, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	out := make([]model.Peer, 0, len(order))
	for _, o := range order {
		out = append(out, *byOwner[o])
	}
	return out, nil
}

// candidatePairs are the label pairs under which the Services that may share a Service's
// workload are looked up: its own selector's (a Service whose selector shares one may select
// the same Pods, now or later), and the labels of the Pods it selects now (every Service that
// selects one of them has a pair among its labels, whatever labels its selector names).
func candidatePairs(svc model.Service) []string {
	unique := map[string]bool{}
	for _, pair := range index.LabelPairs(svc.Selector) {
		unique[pair] = true
	}
	for _, pod := range svc.Pods {
		for _, pair := range index.LabelPairs(pod.Labels) {
			unique[pair] = true
		}
	}
	return slices.Sorted(maps.Keys(unique))
}

// meshConfig reads the Istio mesh config: nil when the ConfigMap does not exist, and the
// parse error as invalid when it does not parse (the checks refuse to guess: a guess could
// route requests to the wrong authorizer). err is a failed read.
func (r *Gatherer) meshConfig(ctx context.Context) (mesh *model.MeshConfig, invalid, err error) {
	return MeshConfig(ctx, r.Reader, r.MeshConfig)
}

// MeshConfig reads and parses the mesh config ConfigMap key: nil when it does not exist,
// invalid when it does not parse; err is a failed read.
func MeshConfig(ctx context.Context, reader client.Reader, key types.NamespacedName) (mesh *model.MeshConfig, invalid, err error) {
	cm := &corev1.ConfigMap{}
	switch err := reader.Get(ctx, key, cm); {
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading the mesh config %s: %w", key, err)
	}
	mesh, parseErr := meshconfig.Parse(cm.Data[meshconfig.Key])
	if parseErr != nil {
		return nil, fmt.Errorf("ConfigMap %s: %w", key, parseErr), nil
	}
	return mesh, nil, nil
}

// backendPods reads the Pods a Service selects, and whether each runs the Istio sidecar.
func (r *Gatherer) backendPods(ctx context.Context, svc *corev1.Service) ([]model.Pod, error) {
	if len(svc.Spec.Selector) == 0 {
		return nil, nil
	}
	// Look up by one selector pair through the index, then keep the Pods the whole selector
	// matches: a label selector alone would scan every Pod of the namespace.
	pods := slim.PodMetadataList()
	if err := index.PodLabel.List(ctx, r.Reader, pods, index.FirstPair(svc.Spec.Selector), client.InNamespace(svc.Namespace)); err != nil {
		return nil, fmt.Errorf("listing the Pods of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	out := make([]model.Pod, 0, len(pods.Items))
	for i := range pods.Items {
		// A finished Pod is no endpoint of the Service: no request reaches it, whatever its
		// containers (a Job's Pod without a sidecar must not take the route down).
		if slim.PodFinished(&pods.Items[i]) {
			continue
		}
		if selector.Matches(labels.Set(pods.Items[i].Labels)) {
			out = append(out, model.Pod{Name: pods.Items[i].Name, Labels: pods.Items[i].Labels, Sidecar: slim.PodHasSidecar(&pods.Items[i])})
		}
	}
	return out, nil
}

// served returns the hosts the APIRule's VirtualService routes now, and the Services it
// routes them to.
func (r *Gatherer) served(ctx context.Context, rule *apiv2.APIRule) ([]string, []types.NamespacedName, error) {
	vs := &networkingclientv1.VirtualService{}
	key := model.RouteKey(model.Owner(rule))
	switch err := r.Reader.Get(ctx, key, vs); {
	case apierrors.IsNotFound(err):
		return nil, nil, nil
	case err != nil:
		return nil, nil, fmt.Errorf("reading VirtualService %s: %w", key, err)
	}
	return vs.Spec.Hosts, index.RouteBackends(vs), nil
}

// hostClaims finds who else routes one of the APIRule's hosts: other APIRules (from the cache,
// and from the claims this process made that the cache may not show yet), and unmanaged
// VirtualServices bound to the same Gateway.
func (r *Gatherer) hostClaims(ctx context.Context, in model.Input) (map[string][]model.HostClaim, error) {
	gateway, _ := model.GatewayRef(in.APIRule, r.Options)
	self := in.Owner()
	claims := map[string][]model.HostClaim{}
	claimedBy := func(host string, owner types.NamespacedName, vs types.NamespacedName) error {
		for _, c := range claims[host] {
			if c.APIRule != nil && *c.APIRule == owner {
				return nil
			}
		}
		other := &apiv2.APIRule{}
		if err := r.Reader.Get(ctx, owner, other); apierrors.IsNotFound(err) {
			return nil // an orphan its owner's deletion is removing
		} else if err != nil {
			return fmt.Errorf("reading APIRule %s: %w", owner, err)
		}
		claims[host] = append(claims[host], model.HostClaim{APIRule: &owner, VirtualService: vs, Since: other.CreationTimestamp})
		return nil
	}
	for _, host := range resolvableHosts(in) {
		routes := &networkingclientv1.VirtualServiceList{}
		if err := index.VirtualServiceHost.List(ctx, r.Reader, routes, host); err != nil {
			return nil, fmt.Errorf("looking up VirtualServices of host %s: %w", host, err)
		}
		for _, vs := range routes.Items {
			owner, managed := ownership.OwnerFromLabels(vs.Labels)
			switch {
			case managed && owner == self:
				continue
			case managed:
				if err := claimedBy(host, owner, client.ObjectKeyFromObject(vs)); err != nil {
					return nil, err
				}
			case bindsTo(vs, gateway):
				claims[host] = append(claims[host], model.HostClaim{
					VirtualService: client.ObjectKeyFromObject(vs), Since: vs.CreationTimestamp,
				})
			}
		}
		if r.Holder == nil {
			continue
		}
		if owner, held := r.Holder(host, self); held {
			if err := claimedBy(host, owner, model.RouteKey(owner)); err != nil {
				return nil, err
			}
		}
	}
	return claims, nil
}

// bindsTo says whether a VirtualService is bound to the Gateway.
func bindsTo(vs *networkingclientv1.VirtualService, gateway types.NamespacedName) bool {
	return slices.Contains(gatewaysOf(vs), gateway)
}

// gatewaysOf returns the Gateways a VirtualService is bound to: written namespace/name, or
// name alone for a Gateway in the VirtualService's namespace; "mesh" is no Gateway.
func gatewaysOf(vs *networkingclientv1.VirtualService) []types.NamespacedName {
	var out []types.NamespacedName
	for _, ref := range vs.Spec.Gateways {
		if ref == "mesh" {
			continue
		}
		namespace, name, scoped := strings.Cut(ref, "/")
		if !scoped {
			namespace, name = vs.Namespace, ref
		}
		out = append(out, types.NamespacedName{Namespace: namespace, Name: name})
	}
	return out
}

// gatherMTLS reads the Secrets of an mTLS APIRule and the other Gateways that serve its hosts.
func (r *Gatherer) gatherMTLS(ctx context.Context, in *model.Input) error {
	credential, ca, caCopy := model.MTLSSecretRefs(in.APIRule, r.Options)
	in.MTLS = &model.MTLSSecrets{}
	for _, s := range []struct {
		key  types.NamespacedName
		into **model.Secret
	}{{credential, &in.MTLS.Credential}, {ca, &in.MTLS.CA}, {caCopy, &in.MTLS.CACopy}} {
		secret := &corev1.Secret{}
		switch err := r.Reader.Get(ctx, s.key, secret); {
		case err == nil:
			*s.into = model.SecretFromCore(secret)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("reading Secret %s: %w", s.key, err)
		}
	}
	seen := map[types.NamespacedName]bool{}
	for _, host := range in.APIRule.Spec.Hosts {
		gateways := &networkingclientv1.GatewayList{}
		if err := index.GatewayServerHost.List(ctx, r.Reader, gateways, string(host)); err != nil {
			return fmt.Errorf("looking up Gateways of host %s: %w", host, err)
		}
		for _, gw := range gateways.Items {
			key := client.ObjectKeyFromObject(gw)
			if owner, managed := ownership.OwnerFromLabels(gw.Labels); seen[key] || (managed && owner == in.Owner()) {
				continue
			}
			seen[key] = true
			in.OtherGateways = append(in.OtherGateways, *model.GatewayFromIstio(gw))
		}
	}
	slices.SortFunc(in.OtherGateways, func(a, b model.Gateway) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return r.frontingRoutes(ctx, in)
}

// frontingRoutes finds, for each host of an mTLS APIRule, the VirtualServices on other
// Gateways of the same ingress gateway whose hosts cover it.
func (r *Gatherer) frontingRoutes(ctx context.Context, in *model.Input) error {
	for _, h := range in.APIRule.Spec.Hosts {
		host := string(h)
		for _, pattern := range model.CoveringHosts(host) {
			routes := &networkingclientv1.VirtualServiceList{}
			if err := index.VirtualServiceHost.List(ctx, r.Reader, routes, pattern); err != nil {
				return fmt.Errorf("looking up VirtualServices of host %s: %w", pattern, err)
			}
			for _, vs := range routes.Items {
				owner, managed := ownership.OwnerFromLabels(vs.Labels)
				// Another APIRule on the very host is a host conflict, reported as such.
				if managed && (owner == in.Owner() || pattern == host) {
					continue
				}
				onIngress, err := r.bindsToIngressGateway(ctx, vs)
				if err != nil {
					return err
				}
				if !onIngress {
					continue
				}
				f := model.Fronting{Host: host, Pattern: pattern, Route: client.ObjectKeyFromObject(vs)}
				if managed {
					other := &apiv2.APIRule{}
					switch err := r.Reader.Get(ctx, owner, other); {
					case apierrors.IsNotFound(err):
						continue // an orphan its owner's deletion is removing
					case err != nil:
						return fmt.Errorf("reading APIRule %s: %w", owner, err)
					}
					f.APIRule = other
				}
				in.Fronting = append(in.Fronting, f)
			}
		}
	}
	return nil
}

// bindsToIngressGateway says whether a VirtualService is bound to a Gateway served by the
// operator's ingress gateway (the same selector), where its virtual hosts share the listener
// with the operator's mTLS servers.
func (r *Gatherer) bindsToIngressGateway(ctx context.Context, vs *networkingclientv1.VirtualService) (bool, error) {
	for _, ref := range gatewaysOf(vs) {
		gw := &networkingclientv1.Gateway{}
		switch err := r.Reader.Get(ctx, ref, gw); {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return false, fmt.Errorf("reading Gateway %s: %w", ref, err)
		}
		if len(r.Options.IngressGatewaySelector) > 0 && maps.Equal(gw.Spec.Selector, r.Options.IngressGatewaySelector) {
			return true, nil
		}
	}
	return false, nil
}

// coveredMTLSHosts finds, for a wildcard APIRule on the ingress gateway, the mTLS hosts of
// other APIRules that its wildcard hosts cover: the operator's own MUTUAL Gateways.
func (r *Gatherer) coveredMTLSHosts(ctx context.Context, in *model.Input) error {
	if in.Gateway == nil || !r.Options.IngressGatewayKnown() || !maps.Equal(in.Gateway.Selector, r.Options.IngressGatewaySelector) {
		return nil
	}
	var wildcards []string
	for _, h := range model.RoutedHosts(*in) {
		if strings.HasPrefix(h, "*") {
			wildcards = append(wildcards, h)
		}
	}
	if len(wildcards) == 0 {
		return nil
	}
	gateways := &networkingclientv1.GatewayList{}
	if err := r.Reader.List(ctx, gateways, client.InNamespace(r.Options.IngressGatewayNamespace),
		client.MatchingLabelsSelector{Selector: ownership.ManagedSelector()}); err != nil {
		return fmt.Errorf("listing the operator's Gateways: %w", err)
	}
	for _, gw := range gateways.Items {
		owner, _ := ownership.OwnerFromLabels(gw.Labels)
		if owner == in.Owner() || gw.Name != model.MTLSGatewayName(owner) {
			continue
		}
		var other *apiv2.APIRule
		for _, host := range index.ServerHosts(gw) {
			for _, pattern := range wildcards {
				if !model.GatewayServes(pattern, host) {
					continue
				}
				if other == nil {
					other = &apiv2.APIRule{}
					switch err := r.Reader.Get(ctx, owner, other); {
					case apierrors.IsNotFound(err):
						other = nil
					case err != nil:
						return fmt.Errorf("reading APIRule %s: %w", owner, err)
					}
				}
				if other != nil {
					in.Fronting = append(in.Fronting, model.Fronting{Host: host, Pattern: pattern, Route: model.RouteKey(owner), APIRule: other})
				}
			}
		}
	}
	return nil
}

// ingressPods reads the ingress gateway's Pods and their proxy config overrides. An annotation
// that does not parse counts as not set: istiod rejects it too and the mesh config applies.
func (r *Gatherer) ingressPods(ctx context.Context) ([]model.IngressPod, error) {
	selector := r.Options.IngressGatewaySelector
	if len(selector) == 0 {
		return nil, nil
	}
	pods := slim.PodMetadataList()
	if err := index.PodLabel.List(ctx, r.Reader, pods, index.FirstPair(selector), client.InNamespace(r.Options.IngressGatewayNamespace)); err != nil {
		return nil, fmt.Errorf("listing the ingress gateway Pods: %w", err)
	}
	var out []model.IngressPod
	for _, pod := range pods.Items {
		if !labels.SelectorFromSet(selector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		p := model.IngressPod{Name: pod.Name}
		if annotation, ok := pod.Annotations[meshconfig.ProxyConfigAnnotation]; ok {
			p.NumTrustedProxies, _ = meshconfig.NumTrustedProxies(annotation)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b model.IngressPod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// resolvableHosts returns the APIRule's hosts as they will be routed, leaving out those that
// cannot be resolved: the hosts whose claims matter.
func resolvableHosts(in model.Input) []string {
	var out []string
	for _, h := range model.ResolveHosts(in) {
		if h.Host != "" {
			out = append(out, h.Host)
		}
	}
	return out
}

// Admission runs the admission webhook's checks of rule (old is the APIRule before an update,
// nil on create) against what reader holds: the APIRules that claim its hosts, found through
// the host index, the mesh config, and the APIRules and routes it would conflict with across
// workloads and gateway servers. References that do not exist yet are not refused: they may
// be created after the APIRule.
func Admission(ctx context.Context, reader client.Reader, rule, old *apiv2.APIRule, opts model.Options, meshConfig types.NamespacedName) (check.Findings, error) {
	claims := map[string][]apiv2.APIRule{}
	for _, h := range rule.Spec.Hosts {
		list := &apiv2.APIRuleList{}
		if err := index.APIRuleHost.List(ctx, reader, list, index.HostKey(h)); err != nil {
			return nil, fmt.Errorf("looking up the APIRules of host %s: %w", h, err)
		}
		claims[string(h)] = list.Items
	}
	g := &Gatherer{Reader: reader, Options: opts, MeshConfig: meshConfig, SkipPods: true}
	in, err := g.Gather(ctx, rule)
	if err != nil {
		return nil, err
	}
	findings := check.Admission(in, old, claims)
	return append(findings, check.AcrossAPIRules(in)...), nil
}
