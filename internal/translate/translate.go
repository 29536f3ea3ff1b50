package translate

import (
	"fmt"
	"slices"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

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
	backend model.Service
	port    uint32
	// token is the value of the route binding header its route sets (model.RouteToken).
	token string
}

// Translate builds the Istio objects of an APIRule from an input that check.Full found
// without errors. It refuses, rather than guesses, an input that breaks that contract: a rule
// whose backend is missing or that has no access strategy, or an APIRule with no routed host
// or no Gateway, gets an error and no objects, so a policy is never generated open.
func Translate(in model.Input) (Objects, error) {
	if gw := model.MTLSGateway(in.APIRule, in.Options); gw != nil {
		in.Gateway = gw
	}
	gatewayRef, ok := model.GatewayRef(in.APIRule, in.Options)
	if !ok || in.Gateway == nil {
		return Objects{}, fmt.Errorf("APIRule %s: no Gateway resolved; check the input first", in.Owner())
	}
	hosts := model.RoutedHosts(in)
	if len(hosts) != len(in.APIRule.Spec.Hosts) {
		return Objects{}, fmt.Errorf("APIRule %s: %d of %d hosts are routed; check the input first", in.Owner(), len(hosts), len(in.APIRule.Spec.Hosts))
	}
	plans, err := rulePlans(in)
	if err != nil {
		return Objects{}, err
	}

	policies := buildPolicies(in, plans)
	gateways, secrets := mtlsObjects(in, hosts)
	authorizationPolicies := policies.authorizationPolicies(in)
	if deny := ipRestrictionPolicy(in, plans, hostsWithPorts(hosts)); deny != nil {
		authorizationPolicies = append(authorizationPolicies, deny)
		sortObjects(authorizationPolicies)
	}
	return Objects{
		RequestAuthentications: policies.requestAuthentications(in),
		AuthorizationPolicies:  authorizationPolicies,
		Secrets:                secrets,
		Gateways:               gateways,
		VirtualServices:        []*networkingclientv1.VirtualService{virtualService(in, gatewayRef, plans, hosts)},
	}, nil
}

// rulePlans resolves every rule's backend.
func rulePlans(in model.Input) ([]rulePlan, error) {
	plans := make([]rulePlan, 0, len(in.APIRule.Spec.Rules))
	for i, rule := range in.APIRule.Spec.Rules {
		if n := strategyCount(rule); n != 1 {
			return nil, fmt.Errorf("APIRule %s: spec.rules[%d] has %d access strategies, not exactly one; check the input first", in.Owner(), i, n)
		}
		ref, port, ok := model.BackendRef(in.APIRule, i)
		svc, found := in.Services[ref]
		if !ok || !found || len(svc.Selector) == 0 {
			return nil, fmt.Errorf("APIRule %s: spec.rules[%d] has no resolved backend with a selector; check the input first", in.Owner(), i)
		}
		plans = append(plans, rulePlan{index: i, rule: rule, backend: svc, port: port, token: model.RouteToken(in.APIRule, i)})
	}
	return plans, nil
}

// strategyCount counts the access strategies a rule sets; noAuth counts only when true, and
// noAuth: false alone is no strategy.
func strategyCount(rule apiv2.Rule) int {
	n := 0
	for _, set := range []bool{rule.JWT != nil, rule.ExtAuth != nil, rule.NoAuth != nil && *rule.NoAuth} {
		if set {
			n++
		}
	}
	return n
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
func objectMeta(in model.Input, name, namespace string) metav1.ObjectMeta {
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
