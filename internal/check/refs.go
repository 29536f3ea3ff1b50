package check

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// checkMeshConfig reports a mesh config that exists but does not parse, for an APIRule that
// depends on it: guessing its providers or trusted proxies could send requests to the wrong
// authorizer or let a forged client address through.
func checkMeshConfig(in model.Input, specPath *field.Path, fs *Findings) {
	if in.MeshError == nil || !model.ReadsMeshConfig(in.APIRule) {
		return
	}
	path := specPath.Child("rules")
	if p := model.FirstRestriction(&in.APIRule.Spec); p != nil && !model.UsesExtAuth(in.APIRule) {
		path = p
	}
	fs.add(conditions.ResolvedRefs, conditions.ReasonMeshConfigInvalid, path, "",
		"the Istio mesh config does not parse, so this APIRule's %s cannot be resolved: %v; fix the mesh config ConfigMap",
		meshUse(in.APIRule), in.MeshError)
}

func meshUse(rule *apiv2.APIRule) string {
	switch {
	case model.UsesExtAuth(rule) && model.UsesIPRestriction(rule):
		return "extension providers and trusted proxies"
	case model.UsesExtAuth(rule):
		return "extension providers"
	}
	return "trusted proxies"
}

// providers requires every authorizer to be an ext-authz provider of the mesh config. The
// reconciler reports a missing one as an error: the rule is not served until it exists. The
// webhook reports it as a warning: the mesh config may be updated after the APIRule. mesh is
// nil when the mesh config was not found; meshInvalid says it exists but does not parse, which
// checkMeshConfig reports.
func providers(rule *apiv2.APIRule, mesh *model.MeshConfig, meshInvalid bool, severity Severity, fs *Findings) {
	if meshInvalid {
		return
	}
	report := fs.add
	if severity == Warning {
		report = fs.warn
	}
	missingMesh := false
	for i, r := range rule.Spec.Rules {
		if r.ExtAuth == nil {
			continue
		}
		for j, name := range r.ExtAuth.Authorizers {
			path := field.NewPath("spec", "rules").Index(i).Child("extAuth", "authorizers").Index(j)
			if mesh == nil {
				if !missingMesh {
					report(conditions.ResolvedRefs, conditions.ReasonMeshConfigNotFound, path, name,
						"the Istio mesh config was not found, so extension provider %q cannot be resolved and the rule is not served; "+
							"check the operator's --istio-namespace and --istio-revision", name)
					missingMesh = true
				}
				continue
			}
			switch kind, ok := mesh.ExtensionProviders[name]; {
			case !ok:
				report(conditions.ResolvedRefs, conditions.ReasonProviderNotFound, path, name,
					"extension provider %q is not declared in the Istio mesh config (meshConfig.extensionProviders), so the rule is not served "+
						"until it is; declare it or use one of %s", name, providerNames(mesh))
			case kind != model.ProviderExtAuthzHTTP && kind != model.ProviderExtAuthzGRPC:
				report(conditions.ResolvedRefs, conditions.ReasonProviderNotExtAuthz, path, name,
					"extension provider %q is not an ext-authz provider (envoyExtAuthzHttp or envoyExtAuthzGrpc); use one of %s",
					name, providerNames(mesh))
			}
		}
	}
}

func providerNames(mesh *model.MeshConfig) string {
	var names []string
	for name, kind := range mesh.ExtensionProviders {
		if kind == model.ProviderExtAuthzHTTP || kind == model.ProviderExtAuthzGRPC {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "none (the mesh config declares no ext-authz provider)"
	}
	sort.Strings(names)
	return "[" + strings.Join(names, ", ") + "]"
}

// checkGateway requires the APIRule's Gateway to exist.
func checkGateway(in model.Input, specPath *field.Path, fs *Findings) {
	ref, ok := model.GatewayRef(in.APIRule, in.Options)
	if !ok {
		return // Static reports it
	}
	if in.Gateway == nil || in.Gateway.Namespace != ref.Namespace || in.Gateway.Name != ref.Name {
		fs.add(conditions.ResolvedRefs, conditions.ReasonGatewayNotFound, specPath.Child("gateway"), ref.String(),
			"Gateway %s not found; create it or point spec.gateway at an existing Istio Gateway", ref)
	}
}

// checkGatewayCredentials warns about a server of the Gateway, for one of the APIRule's hosts,
// whose certificate Secret does not exist: Istio leaves such a server without a certificate,
// so HTTPS requests for the host fail. A warning: nothing is exposed, and the Secret may be
// on its way (cert-manager issues it after the Gateway exists).
func checkGatewayCredentials(in model.Input, specPath *field.Path, fs *Findings) {
	for _, name := range in.MissingCredentials {
		fs.warn(conditions.ResolvedRefs, conditions.ReasonGatewayCredentialNotFound, specPath.Child("gateway"), name,
			"Gateway %s/%s serves the hosts with the certificate Secret %s/%s, which does not exist, so HTTPS requests fail; "+
				"create the TLS Secret there (kubectl create secret tls %s -n %s --cert=... --key=...)",
			in.Gateway.Namespace, in.Gateway.Name, in.Options.IngressGatewayNamespace, name, name, in.Options.IngressGatewayNamespace)
	}
}

// checkResolvedHosts requires the Gateway to serve every host to VirtualServices of the
// APIRule's namespace: otherwise the route would never be used and requests would fail with
// 404 without a word.
func checkResolvedHosts(in model.Input, hostsPath *field.Path, fs *Findings) {
	if in.Gateway == nil {
		return // the missing Gateway is reported
	}
	served := model.GatewayHosts(in.Gateway, in.APIRule.Namespace)
	for _, h := range model.ResolveHosts(in) {
		switch h.Problem {
		case model.HostNotResolvable:
			fs.add(conditions.ResolvedRefs, conditions.ReasonHostNotResolvable, hostsPath.Index(h.Index), h.Written,
				"short host %q needs Gateway %s/%s to serve exactly one wildcard host *.<domain>, but it serves %v; use a fully qualified host",
				h.Written, in.Gateway.Namespace, in.Gateway.Name, served)
		case model.HostNotServed:
			fs.add(conditions.ResolvedRefs, conditions.ReasonHostNotServed, hostsPath.Index(h.Index), h.Host,
				"host %q is not served by Gateway %s/%s to namespace %s (it serves %v); add the host to a server of the Gateway or use a Gateway that serves it",
				h.Host, in.Gateway.Namespace, in.Gateway.Name, in.APIRule.Namespace, served)
		}
	}
}

// checkHostClaims keeps one host from being routed by two owners. The owner that already
// routes a host keeps it: an APIRule asking for a host that another APIRule or an unmanaged
// VirtualService routes is refused, so two APIRules never widen each other's access. When both
// already route it (left over from a race or an older version), the older claim wins. An
// unmanaged VirtualService cannot be refused: when it arrives after the APIRule, the APIRule
// stays served with a warning, because Istio merges both into one route table. Each finding's
// Value is the host as routed, which the reconciler withdraws.
func checkHostClaims(in model.Input, hostsPath *field.Path, fs *Findings) {
	if len(in.HostClaims) == 0 || in.Gateway == nil {
		return
	}
	mine := in.APIRule.CreationTimestamp
	self := in.Owner().String()
	for _, h := range model.ResolveHosts(in) {
		if h.Host == "" {
			continue
		}
		host := h.Host
		for _, claim := range in.HostClaims[host] {
			claimKey := claim.VirtualService.String()
			if claim.APIRule != nil {
				claimKey = claim.APIRule.String()
			}
			if claimKey == self {
				continue
			}
			older := !slices.Contains(in.ServedHosts, host) || claim.Since.Before(&mine) || (claim.Since.Equal(&mine) && claimKey < self)
			switch {
			case claim.APIRule != nil && older:
				fs.add(conditions.Accepted, conditions.ReasonHostConflict, hostsPath.Index(h.Index), host,
					"host %q is already served by APIRule %s; remove the host from one of the two APIRules", host, claimKey)
			case claim.APIRule == nil && older:
				fs.add(conditions.Accepted, conditions.ReasonHostConflict, hostsPath.Index(h.Index), host,
					"host %q is already routed through this Gateway by VirtualService %s, which the operator does not manage; "+
						"remove the host from it or choose another host", host, claimKey)
			case claim.APIRule == nil:
				fs.warn(conditions.Accepted, conditions.ReasonHostShared, hostsPath.Index(h.Index), host,
					"VirtualService %s, which the operator does not manage, also routes host %q through this Gateway; Istio merges "+
						"both, so a request may not follow this APIRule; remove the host from that VirtualService", claimKey, host)
			}
		}
	}
}

// HostConflicts refuses hosts that another APIRule already claims, at admission. claims holds,
// by host as written in rule, the other APIRules that list the same host (the caller finds
// them through the operator's host index). A short host (one label) is completed with the
// domain of the Gateway, so it conflicts only with an APIRule on the same Gateway; a host with
// a domain conflicts whatever the Gateway, because the policies of two APIRules for one host
// would widen each other's access.
//
// On update (old is not nil), only hosts the update adds are checked: an APIRule keeps the
// hosts it already has, and for claims older than this check (or made in a race) the
// reconciler decides by age who serves the host.
func HostConflicts(rule, old *apiv2.APIRule, claims map[string][]apiv2.APIRule, opts model.Options) Findings {
	var fs Findings
	self := model.Owner(rule)
	gateway, _ := model.GatewayRef(rule, opts)
	hostsPath := field.NewPath("spec", "hosts")
	for i, h := range rule.Spec.Hosts {
		if old != nil && slices.Contains(old.Spec.Hosts, h) {
			continue
		}
		short := !strings.Contains(string(h), ".")
		var holders []string
		for _, other := range claims[string(h)] {
			key := model.Owner(&other)
			if key == self || !other.DeletionTimestamp.IsZero() || !slices.Contains(other.Spec.Hosts, h) {
				continue
			}
			if short {
				if theirs, ok := model.GatewayRef(&other, opts); !ok || theirs != gateway {
					continue
				}
			}
			holders = append(holders, key.String())
		}
		if len(holders) == 0 {
			continue
		}
		slices.Sort(holders)
		fs.add(conditions.Accepted, conditions.ReasonHostConflict, hostsPath.Index(i), string(h),
			"host %q is already claimed by APIRule %s; one host is served by one APIRule, so that the policies of one never open the other's paths: "+
				"remove the host here, or add these rules to %s", h, strings.Join(holders, ", "), holders[0])
	}
	return fs
}

// checkBackends requires every rule's Service to exist with the rule's port and a selector,
// and every Pod it selects to run the istio-proxy sidecar. Each Service is reported once, at
// the first rule that uses it. It also warns when one workload would need several ext-authz
// providers that istiod does not run together.
func checkBackends(in model.Input, specPath *field.Path, fs *Findings) {
	reported := map[types.NamespacedName]bool{}
	type workload struct {
		namespace string
		selector  map[string]string
		providers []string
		path      *field.Path
	}
	workloads := map[string]*workload{}
	var workloadOrder []string
	for i, rule := range in.APIRule.Spec.Rules {
		servicePath := specPath.Child("rules").Index(i).Child("service")
		if rule.Service == nil {
			servicePath = specPath.Child("service")
		}
		ref, port, ok := model.BackendRef(in.APIRule, i)
		if !ok {
			continue // Static reports it
		}
		svc, found := in.Services[ref]
		first := !reported[ref]
		reported[ref] = true
		switch {
		case !found:
			if first {
				fs.add(conditions.ResolvedRefs, conditions.ReasonServiceNotFound, servicePath, ref.String(),
					"Service %s not found; create it or correct the service name and namespace", ref)
			}
			continue
		case !slices.Contains(svc.Ports, int32(port)):
			fs.add(conditions.ResolvedRefs, conditions.ReasonPortNotFound, servicePath.Child("port"), port,
				"Service %s has no port %d (it has %v); use one of its ports", ref, port, svc.Ports)
			continue
		case len(svc.Selector) == 0:
			if first {
				fs.add(conditions.ResolvedRefs, conditions.ReasonNoSelector, servicePath, ref.String(),
					"Service %s has no selector, so no workload sidecar could enforce the policies; use a Service that selects its Pods", ref)
			}
			continue
		}
		if first {
			checkSidecars(svc, servicePath, fs)
		}
		if rule.ExtAuth == nil {
			continue
		}
		key := model.WorkloadKey(svc)
		w, ok := workloads[key]
		if !ok {
			w = &workload{namespace: svc.Namespace, selector: svc.Selector}
			workloads[key] = w
			workloadOrder = append(workloadOrder, key)
		}
		for _, p := range rule.ExtAuth.Authorizers {
			if !slices.Contains(w.providers, p) {
				w.providers = append(w.providers, p)
			}
		}
		if len(w.providers) > 1 && w.path == nil {
			w.path = specPath.Child("rules").Index(i).Child("extAuth", "authorizers")
		}
	}
	if in.Options.MultipleCustomProviders {
		return
	}
	for _, key := range workloadOrder {
		w := workloads[key]
		if len(w.providers) < 2 {
			continue
		}
		fs.warn(conditions.Accepted, conditions.ReasonMultipleAuthzProviders, w.path, w.providers,
			"workload %s {%s} would use %d ext-authz providers (%s), but Istio enforces one per workload unless istiod runs with "+
				"PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS=true; without it istiod drops these CUSTOM policies and every extAuth rule of this workload is denied. Use one provider "+
				"per backend, or enable the flag in istiod and start the operator with --multiple-custom-authz-providers",
			w.namespace, strings.TrimSuffix(model.SelectorKey(w.selector), ","), len(w.providers), strings.Join(w.providers, ", "))
	}
}

// checkSidecars requires every Pod of the backend to run the istio-proxy sidecar: without it
// nothing enforces the policies, and a route to the Pod would expose it unprotected. A
// Service without Pods is only a warning: there is nothing to expose yet.
func checkSidecars(svc model.Service, servicePath *field.Path, fs *Findings) {
	if !svc.PodsKnown {
		return
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	if len(svc.Pods) == 0 {
		fs.warn(conditions.ResolvedRefs, conditions.ReasonNoPods, servicePath, key.String(),
			"Service %s selects no Pods yet; requests fail until Pods with an istio-proxy sidecar run", key)
		return
	}
	var missing []string
	for _, p := range svc.Pods {
		if !p.Sidecar {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) == 0 {
		return
	}
	sort.Strings(missing)
	more := ""
	if len(missing) > 3 {
		more = fmt.Sprintf(" and %d more", len(missing)-3)
		missing = missing[:3]
	}
	fs.add(conditions.ResolvedRefs, conditions.ReasonSidecarMissing, servicePath, key.String(),
		"Pod %s%s selected by Service %s has no istio-proxy sidecar, so nothing would enforce the policies and the route is not "+
			"published; enable sidecar injection for the namespace (label istio-injection=enabled or istio.io/rev) and restart the Pods",
		strings.Join(missing, ", "), more, key)
}
