package translate

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// Output is the result of a translation.
type Output struct {
	// Objects are the desired Istio objects. They are empty whenever Findings holds an error:
	// an APIRule that cannot be served exactly as written gets nothing new applied.
	Objects Objects
	// Findings are the problems found; errors block the output, warnings do not.
	Findings Findings
	// RecheckAt, when set, is when the findings change by the passing of time alone (a
	// certificate comes close to its expiry): translate again then.
	RecheckAt time.Time
}

// Object is a Kubernetes object with metadata, as every generated object is.
type Object interface {
	metav1.Object
	runtime.Object
}

// Objects are the desired Istio objects, each list sorted by namespace and name.
type Objects struct {
	RequestAuthentications []*securityclientv1.RequestAuthentication
	AuthorizationPolicies  []*securityclientv1.AuthorizationPolicy
	// Secrets are CA bundles copied to the ingress gateway namespace.
	Secrets []*corev1.Secret
	// Gateways are the operator's own Gateways, in the ingress gateway namespace.
	Gateways        []*networkingclientv1.Gateway
	VirtualServices []*networkingclientv1.VirtualService
}

// All lists every object, kind by kind in the order of the fields above. The order in
// which they must be written and deleted is internal/apply's kinds table.
func (o Objects) All() []Object {
	var out []Object
	out = appendObjects(out, o.RequestAuthentications)
	out = appendObjects(out, o.AuthorizationPolicies)
	out = appendObjects(out, o.Secrets)
	out = appendObjects(out, o.Gateways)
	return appendObjects(out, o.VirtualServices)
}

func appendObjects[T Object](out []Object, objects []T) []Object {
	for _, obj := range objects {
		out = append(out, obj)
	}
	return out
}

// rulePlan is one APIRule rule with its references resolved.
type rulePlan struct {
	index   int
	rule    apiv2.Rule
	backend Service
	port    uint32
}

// Translate computes the Istio objects for the input.
func Translate(in Input) Output {
	var findings Findings
	spec := &in.APIRule.Spec
	specPath := field.NewPath("spec")
	if gw := MTLSGateway(in.APIRule, in.Options); gw != nil {
		in.Gateway = gw
	}

	checkIssuers(spec, specPath, &findings)
	checkProviders(in, specPath, &findings)
	checkReservedHeaders(spec, specPath, &findings)
	gatewayRef := resolveGateway(in, specPath, &findings)
	hosts := expandHosts(spec.Hosts, in.Gateway, in.APIRule.Namespace, specPath.Child("hosts"), &findings)
	checkHostClaims(in, specPath.Child("hosts"), &findings)
	mtls := checkMTLS(in, specPath, &findings)
	checkIPRestriction(in, &findings)
	plans := resolveRules(in, specPath, &findings)
	if len(findings.Errors()) > 0 {
		return Output{Findings: findings, RecheckAt: mtls.recheckAt}
	}

	policies := buildPolicies(in, plans, hosts, &findings)
	gateways, secrets := mtlsObjects(in, mtls, hosts)
	authorizationPolicies := policies.authorizationPolicies(in)
	if deny := ipRestrictionPolicy(in, plans, hostsWithPorts(hosts)); deny != nil {
		authorizationPolicies = append(authorizationPolicies, deny)
		sortObjects(authorizationPolicies)
	}
	return Output{
		Findings:  findings,
		RecheckAt: mtls.recheckAt,
		Objects: Objects{
			RequestAuthentications: policies.requestAuthentications(in),
			AuthorizationPolicies:  authorizationPolicies,
			Secrets:                secrets,
			Gateways:               gateways,
			VirtualServices:        []*networkingclientv1.VirtualService{virtualService(in, gatewayRef, plans, hosts)},
		},
	}
}

// GatewayRef returns the Gateway the APIRule binds to: the operator's own Gateway for an mTLS
// APIRule, else spec.gateway, else the operator's default.
func GatewayRef(rule *apiv2.APIRule, opts Options) (types.NamespacedName, bool) {
	if gw := MTLSGateway(rule, opts); gw != nil {
		return types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}, gw.Namespace != ""
	}
	ref := opts.DefaultGateway
	if rule.Spec.Gateway != nil {
		ref = string(*rule.Spec.Gateway)
	}
	namespace, name, ok := strings.Cut(ref, "/")
	if !ok || namespace == "" || name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: name}, true
}

func resolveGateway(in Input, specPath *field.Path, findings *Findings) types.NamespacedName {
	ref, ok := GatewayRef(in.APIRule, in.Options)
	switch {
	case !ok:
		findings.add(conditions.Accepted, conditions.ReasonNoGateway, specPath.Child("gateway"),
			"no gateway is set and the operator has no default gateway; set spec.gateway to namespace/name of an Istio Gateway")
	case in.Gateway == nil || in.Gateway.Namespace != ref.Namespace || in.Gateway.Name != ref.Name:
		findings.add(conditions.ResolvedRefs, conditions.ReasonGatewayNotFound, specPath.Child("gateway"),
			"Gateway %s not found; create it or point spec.gateway at an existing Istio Gateway", ref)
	}
	return ref
}

// expandHosts completes short hosts with the domain of the Gateway, and requires the Gateway
// to serve every host to VirtualServices of the APIRule's namespace: otherwise the route would
// never be used and requests would fail with 404 without a word. A short host needs a Gateway
// whose servers all serve the single host *.<domain>.
func expandHosts(hosts []apiv2.Host, gw *Gateway, namespace string, hostsPath *field.Path, findings *Findings) []string {
	out := make([]string, 0, len(hosts))
	if gw == nil {
		for _, h := range hosts {
			out = append(out, string(h)) // the missing Gateway is already reported
		}
		return out
	}
	served := gatewayHosts(gw, namespace)
	for i, h := range hosts {
		host := string(h)
		if !strings.Contains(host, ".") {
			domain, ok := gatewayDomain(served)
			if !ok {
				findings.add(conditions.ResolvedRefs, conditions.ReasonHostNotResolvable, hostsPath.Index(i),
					"short host %q needs Gateway %s/%s to serve exactly one wildcard host *.<domain>, but it serves %v; use a fully qualified host",
					host, gw.Namespace, gw.Name, served)
				continue
			}
			host += "." + domain
		}
		if !slices.ContainsFunc(served, func(pattern string) bool { return gatewayServes(pattern, host) }) {
			findings.add(conditions.ResolvedRefs, conditions.ReasonHostNotServed, hostsPath.Index(i),
				"host %q is not served by Gateway %s/%s to namespace %s (it serves %v); add the host to a server of the Gateway or use a Gateway that serves it",
				host, gw.Namespace, gw.Name, namespace, served)
			continue
		}
		out = append(out, host)
	}
	return out
}

// gatewayHosts returns the hosts the Gateway offers to VirtualServices in the namespace: a
// host written namespace/host is offered to that namespace only, ./host to the Gateway's own
// namespace, */host and a plain host to every namespace.
func gatewayHosts(gw *Gateway, namespace string) []string {
	var out []string
	for _, h := range gw.Hosts {
		ns, host, scoped := strings.Cut(h, "/")
		if !scoped {
			out = append(out, h)
			continue
		}
		if ns == "*" || ns == namespace || (ns == "." && gw.Namespace == namespace) {
			out = append(out, host)
		}
	}
	return out
}

// gatewayServes says whether a Gateway host pattern covers an APIRule host: "*" covers all,
// "*.d" covers every name under d (a wildcard APIRule host too), others only themselves.
func gatewayServes(pattern, host string) bool {
	switch {
	case pattern == "*" || pattern == host:
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}

func gatewayDomain(hosts []string) (string, bool) {
	if len(hosts) == 0 {
		return "", false
	}
	for _, h := range hosts {
		if h != hosts[0] {
			return "", false
		}
	}
	domain, ok := strings.CutPrefix(hosts[0], "*.")
	if !ok || domain == "" || strings.Contains(domain, "*") {
		return "", false
	}
	return domain, true
}

// BackendRef returns the Service a rule sends its traffic to: the rule's service, else
// spec.service. The namespace falls back from the rule's service to spec.service to the
// APIRule's namespace. ok is false when neither the rule nor the spec names a service.
func BackendRef(rule *apiv2.APIRule, index int) (ref types.NamespacedName, port uint32, ok bool) {
	spec := &rule.Spec
	svc := spec.Rules[index].Service
	if svc == nil {
		svc = spec.Service
	}
	if svc == nil {
		return types.NamespacedName{}, 0, false
	}
	namespace := rule.Namespace
	switch {
	case svc.Namespace != nil:
		namespace = *svc.Namespace
	case spec.Service != nil && spec.Service.Namespace != nil:
		namespace = *spec.Service.Namespace
	}
	return types.NamespacedName{Namespace: namespace, Name: svc.Name}, svc.Port, true
}

func resolveRules(in Input, specPath *field.Path, findings *Findings) []rulePlan {
	plans := make([]rulePlan, 0, len(in.APIRule.Spec.Rules))
	reported := map[types.NamespacedName]bool{}
	for i, rule := range in.APIRule.Spec.Rules {
		rulePath := specPath.Child("rules").Index(i)
		servicePath := rulePath.Child("service")
		if rule.Service == nil {
			servicePath = specPath.Child("service")
		}
		ref, port, ok := BackendRef(in.APIRule, i)
		if !ok {
			findings.add(conditions.Accepted, conditions.ReasonInvalidSpec, servicePath,
				"no backend service: set spec.service or spec.rules[%d].service", i)
			continue
		}
		svc, found := in.Services[ref]
		switch {
		case !found:
			findings.add(conditions.ResolvedRefs, conditions.ReasonServiceNotFound, servicePath,
				"Service %s not found; create it or correct the service name and namespace", ref)
			continue
		case !slices.Contains(svc.Ports, int32(port)):
			findings.add(conditions.ResolvedRefs, conditions.ReasonPortNotFound, servicePath.Child("port"),
				"Service %s has no port %d (it has %v); use one of its ports", ref, port, svc.Ports)
			continue
		case len(svc.Selector) == 0:
			findings.add(conditions.ResolvedRefs, conditions.ReasonNoSelector, servicePath,
				"Service %s has no selector, so no workload sidecar could enforce the policies; use a Service that selects its Pods", ref)
			continue
		}
		if !checkSidecars(svc, servicePath, reported, findings) {
			continue
		}
		plans = append(plans, rulePlan{index: i, rule: rule, backend: svc, port: port})
	}
	return plans
}

// checkSidecars requires every Pod of the backend to run the istio-proxy sidecar: without it
// nothing enforces the policies, and a route to the Pod would expose it unprotected. A
// Service without Pods is only a warning: there is nothing to expose yet. Each Service is
// reported once; the result says whether the rule can be served.
func checkSidecars(svc Service, servicePath *field.Path, reported map[types.NamespacedName]bool, findings *Findings) bool {
	if !svc.PodsKnown {
		return true
	}
	key := types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}
	first := !reported[key]
	reported[key] = true
	if len(svc.Pods) == 0 {
		if first {
			findings.warn(conditions.ResolvedRefs, conditions.ReasonNoPods, servicePath,
				"Service %s selects no Pods yet; requests fail until Pods with an istio-proxy sidecar run", key)
		}
		return true
	}
	var missing []string
	for _, p := range svc.Pods {
		if !p.Sidecar {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) == 0 {
		return true
	}
	if first {
		sort.Strings(missing)
		more := ""
		if len(missing) > 3 {
			more = fmt.Sprintf(" and %d more", len(missing)-3)
			missing = missing[:3]
		}
		findings.add(conditions.ResolvedRefs, conditions.ReasonSidecarMissing, servicePath,
			"Pod %s%s selected by Service %s has no istio-proxy sidecar, so nothing would enforce the policies and the route is not "+
				"published; enable sidecar injection for the namespace (label istio-injection=enabled or istio.io/rev) and restart the Pods",
			strings.Join(missing, ", "), more, key)
	}
	return false
}

// methodOrder is the canonical order of HTTP methods in generated objects.
var methodOrder = []apiv2.HTTPMethod{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

// sortedMethods returns the rule's methods in canonical order.
func sortedMethods(methods []apiv2.HTTPMethod) []string {
	out := make([]string, 0, len(methods))
	for _, m := range methodOrder {
		if slices.Contains(methods, m) {
			out = append(out, string(m))
		}
	}
	return out
}

// objectMeta returns the metadata of a child: owner labels always, and a controller
// ownerReference when the child is in the APIRule's namespace (ownerReferences cannot cross
// namespaces) and the APIRule has a UID (it has none when rendered offline).
func objectMeta(in Input, name, namespace string) metav1.ObjectMeta {
	meta := metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: ownership.Labels(in.Owner())}
	if namespace == in.APIRule.Namespace && in.APIRule.UID != "" {
		controller, block := true, true
		meta.OwnerReferences = []metav1.OwnerReference{{
			APIVersion:         apiv2.GroupVersion.String(),
			Kind:               "APIRule",
			Name:               in.APIRule.Name,
			UID:                in.APIRule.UID,
			Controller:         &controller,
			BlockOwnerDeletion: &block,
		}}
	}
	return meta
}

// selectorKey is a canonical string form of a label selector.
func selectorKey(selector map[string]string) string {
	keys := make([]string, 0, len(selector))
	for k := range selector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(selector[k])
		b.WriteString(",")
	}
	return b.String()
}
