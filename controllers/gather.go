package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// gather reads everything the translation needs from the cache. It is the only phase that
// reads the cluster; a missing object is left out of the input, for the translator to report.
func (r *APIRuleReconciler) gather(ctx context.Context, rule *apiv2.APIRule) (translate.Input, error) {
	in := translate.Input{
		APIRule:  rule,
		Services: map[types.NamespacedName]translate.Service{},
		Options:  r.Options,
		Now:      time.Now(),
	}

	if gw := translate.MTLSGateway(rule, r.Options); gw != nil {
		in.Gateway = gw
		if err := r.gatherMTLS(ctx, &in); err != nil {
			return in, err
		}
	} else if ref, ok := translate.GatewayRef(rule, r.Options); ok {
		gw := &networkingclientv1.Gateway{}
		switch err := r.Client.Get(ctx, ref, gw); {
		case err == nil:
			in.Gateway = translate.GatewayFromIstio(gw)
		case !apierrors.IsNotFound(err):
			return in, fmt.Errorf("reading Gateway %s: %w", ref, err)
		}
	}

	served, err := r.servedHosts(ctx, rule)
	if err != nil {
		return in, err
	}
	in.ServedHosts = served
	r.registry().set(ownerOf(rule), served)
	if in.Gateway != nil {
		claims, err := r.hostClaims(ctx, in)
		if err != nil {
			return in, err
		}
		in.HostClaims = claims
	}

	if readsMeshConfig(rule) {
		mesh, err := r.meshConfig(ctx)
		if err != nil {
			return in, err
		}
		in.Mesh = mesh
	}
	if translate.UsesIPRestriction(rule) {
		if in.IngressPods, err = r.ingressPods(ctx); err != nil {
			return in, err
		}
	}

	for i := range rule.Spec.Rules {
		ref, _, ok := translate.BackendRef(rule, i)
		if !ok {
			continue
		}
		if _, seen := in.Services[ref]; seen {
			continue
		}
		svc := &corev1.Service{}
		switch err := r.Client.Get(ctx, ref, svc); {
		case err == nil:
			backend := translate.ServiceFromCore(svc)
			if backend.Pods, err = r.backendPods(ctx, svc); err != nil {
				return in, err
			}
			backend.PodsKnown = true
			in.Services[ref] = backend
		case !apierrors.IsNotFound(err):
			return in, fmt.Errorf("reading Service %s: %w", ref, err)
		}
	}
	return in, nil
}

// readsMeshConfig says whether the translation of the APIRule reads the mesh config: for its
// ext-authz providers or its gateways' number of trusted proxies.
func readsMeshConfig(rule *apiv2.APIRule) bool {
	return usesExtAuth(rule) || translate.UsesIPRestriction(rule)
}

func usesExtAuth(rule *apiv2.APIRule) bool {
	for _, r := range rule.Spec.Rules {
		if r.ExtAuth != nil {
			return true
		}
	}
	return false
}

// meshConfig reads the extension providers of the Istio mesh config, or nil when the
// ConfigMap does not exist. A mesh config that does not parse is an error: guessing could
// route requests to the wrong authorizer.
func (r *APIRuleReconciler) meshConfig(ctx context.Context) (*translate.MeshConfig, error) {
	key := r.MeshConfig
	cm := &corev1.ConfigMap{}
	switch err := r.Client.Get(ctx, key, cm); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading the mesh config %s: %w", key, err)
	}
	mesh, err := meshconfig.Parse(cm.Data[meshconfig.Key])
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s: %w", key, err)
	}
	return mesh, nil
}

// backendPods reads the Pods a Service selects, and whether each runs the Istio sidecar.
func (r *APIRuleReconciler) backendPods(ctx context.Context, svc *corev1.Service) ([]translate.Pod, error) {
	if len(svc.Spec.Selector) == 0 {
		return nil, nil
	}
	// Look up by one selector pair through the index, then keep the Pods the whole selector
	// matches: a label selector alone would scan every Pod of the namespace.
	pairs := labelPairs(svc.Spec.Selector)
	slices.Sort(pairs)
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingFields{podLabelIndex: pairs[0]}); err != nil {
		return nil, fmt.Errorf("listing the Pods of Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	selector := labels.SelectorFromSet(svc.Spec.Selector)
	out := make([]translate.Pod, 0, len(pods.Items))
	for i := range pods.Items {
		if selector.Matches(labels.Set(pods.Items[i].Labels)) {
			out = append(out, translate.Pod{Name: pods.Items[i].Name, Sidecar: hasSidecar(&pods.Items[i])})
		}
	}
	return out, nil
}

// sidecarContainer is the name of the Istio proxy container that sidecar injection adds, as
// a container or, in native sidecar mode, as an init container.
const sidecarContainer = "istio-proxy"

func hasSidecar(pod *corev1.Pod) bool {
	for _, containers := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for _, c := range containers {
			if c.Name == sidecarContainer {
				return true
			}
		}
	}
	return false
}

// servedHosts returns the hosts the APIRule's VirtualService routes now.
func (r *APIRuleReconciler) servedHosts(ctx context.Context, rule *apiv2.APIRule) ([]string, error) {
	vs := &networkingclientv1.VirtualService{}
	key := types.NamespacedName{Namespace: rule.Namespace, Name: ownership.ChildName(ownerOf(rule), "route")}
	switch err := r.Client.Get(ctx, key, vs); {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading VirtualService %s: %w", key, err)
	}
	return vs.Spec.Hosts, nil
}

// hostClaims finds who else routes one of the APIRule's hosts: other APIRules (from the cache,
// and from the claims this process made that the cache may not show yet), and unmanaged
// VirtualServices bound to the same Gateway.
func (r *APIRuleReconciler) hostClaims(ctx context.Context, in translate.Input) (map[string][]translate.HostClaim, error) {
	gateway, _ := translate.GatewayRef(in.APIRule, r.Options)
	self := ownerOf(in.APIRule)
	claims := map[string][]translate.HostClaim{}
	claimedBy := func(host string, owner types.NamespacedName, vs types.NamespacedName) error {
		for _, c := range claims[host] {
			if c.APIRule != nil && *c.APIRule == owner {
				return nil
			}
		}
		other := &apiv2.APIRule{}
		if err := r.Client.Get(ctx, owner, other); apierrors.IsNotFound(err) {
			return nil // an orphan its owner's deletion is removing
		} else if err != nil {
			return fmt.Errorf("reading APIRule %s: %w", owner, err)
		}
		claims[host] = append(claims[host], translate.HostClaim{APIRule: &owner, VirtualService: vs, Since: other.CreationTimestamp})
		return nil
	}
	for _, host := range translate.ResolvedHosts(in) {
		routes := &networkingclientv1.VirtualServiceList{}
		if err := r.Client.List(ctx, routes, client.MatchingFields{virtualServiceHostIndex: host}); err != nil {
			return nil, fmt.Errorf("looking up VirtualServices of host %s: %w", host, err)
		}
		for _, vs := range routes.Items {
			owner, managed := ownerFromLabels(vs)
			switch {
			case managed && owner == self:
				continue
			case managed:
				if err := claimedBy(host, owner, client.ObjectKeyFromObject(vs)); err != nil {
					return nil, err
				}
			case bindsTo(vs, gateway):
				claims[host] = append(claims[host], translate.HostClaim{
					VirtualService: client.ObjectKeyFromObject(vs), Since: vs.CreationTimestamp,
				})
			}
		}
		if owner, held := r.registry().holder(host, self); held {
			vs := types.NamespacedName{Namespace: owner.Namespace, Name: ownership.ChildName(owner, "route")}
			if err := claimedBy(host, owner, vs); err != nil {
				return nil, err
			}
		}
	}
	return claims, nil
}

// bindsTo says whether a VirtualService is bound to the Gateway (written namespace/name, or
// name alone for a Gateway in the VirtualService's namespace).
func bindsTo(vs *networkingclientv1.VirtualService, gateway types.NamespacedName) bool {
	for _, g := range vs.Spec.Gateways {
		if g == gateway.String() || (g == gateway.Name && vs.Namespace == gateway.Namespace) {
			return true
		}
	}
	return false
}

// gatherMTLS reads the Secrets of an mTLS APIRule and the other Gateways that serve its hosts.
func (r *APIRuleReconciler) gatherMTLS(ctx context.Context, in *translate.Input) error {
	credential, ca, caCopy := translate.MTLSSecretRefs(in.APIRule, r.Options)
	in.MTLS = &translate.MTLSSecrets{}
	for _, s := range []struct {
		key  types.NamespacedName
		into **translate.Secret
	}{{credential, &in.MTLS.Credential}, {ca, &in.MTLS.CA}, {caCopy, &in.MTLS.CACopy}} {
		secret := &corev1.Secret{}
		switch err := r.Client.Get(ctx, s.key, secret); {
		case err == nil:
			*s.into = translate.SecretFromCore(secret)
		case !apierrors.IsNotFound(err):
			return fmt.Errorf("reading Secret %s: %w", s.key, err)
		}
	}
	seen := map[types.NamespacedName]bool{}
	for _, host := range in.APIRule.Spec.Hosts {
		gateways := &networkingclientv1.GatewayList{}
		if err := r.Client.List(ctx, gateways, client.MatchingFields{gatewayServerHostIndex: string(host)}); err != nil {
			return fmt.Errorf("looking up Gateways of host %s: %w", host, err)
		}
		for _, gw := range gateways.Items {
			key := client.ObjectKeyFromObject(gw)
			if owner, managed := ownerFromLabels(gw); seen[key] || (managed && owner == ownerOf(in.APIRule)) {
				continue
			}
			seen[key] = true
			in.OtherGateways = append(in.OtherGateways, *translate.GatewayFromIstio(gw))
		}
	}
	slices.SortFunc(in.OtherGateways, func(a, b translate.Gateway) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return nil
}

// ingressPods reads the ingress gateway's Pods and their proxy config overrides. An annotation
// that does not parse counts as not set: istiod rejects it too and the mesh config applies.
func (r *APIRuleReconciler) ingressPods(ctx context.Context) ([]translate.IngressPod, error) {
	selector := r.Options.IngressGatewaySelector
	if len(selector) == 0 {
		return nil, nil
	}
	pairs := labelPairs(selector)
	slices.Sort(pairs)
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(r.Options.IngressGatewayNamespace), client.MatchingFields{podLabelIndex: pairs[0]}); err != nil {
		return nil, fmt.Errorf("listing the ingress gateway Pods: %w", err)
	}
	var out []translate.IngressPod
	for _, pod := range pods.Items {
		if !labels.SelectorFromSet(selector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		p := translate.IngressPod{Name: pod.Name}
		if annotation, ok := pod.Annotations[meshconfig.ProxyConfigAnnotation]; ok {
			p.NumTrustedProxies, _ = meshconfig.NumTrustedProxies(annotation)
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b translate.IngressPod) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
