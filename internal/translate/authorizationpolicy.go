package translate

import (
	"slices"
	"strings"
	"time"

	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

func durationSeconds(s uint32) time.Duration { return time.Duration(s) * time.Second }

// workload is a backend workload: the Pods a Service selects, whose sidecar enforces the
// policies of the rules routed to it.
type workload struct {
	namespace string
	selector  map[string]string
	rules     []*securityv1.Rule
}

// authorizationPolicies builds one ALLOW policy per backend workload, with one policy rule per
// (APIRule rule, group of methods with the same exclusions).
//
// Istio ORs the rules of ALLOW policies, with no order. To keep first-match order, the policy
// rule of APIRule rule i excludes (notPaths) the paths of the earlier rules that match the same
// method, found by rule index: a request that the VirtualService routes by an earlier rule is
// never allowed by a later rule's policy.
func authorizationPolicies(in Input, plans []rulePlan, hosts []string) []*securityclientv1.AuthorizationPolicy {
	policyHosts := hostsWithPorts(hosts)
	principals := []string{in.Options.IngressGatewayPrincipal}

	workloads := map[string]*workload{}
	var order []string
	for _, p := range plans {
		key := p.backend.Namespace + "/" + selectorKey(p.backend.Selector)
		w, ok := workloads[key]
		if !ok {
			w = &workload{namespace: p.backend.Namespace, selector: p.backend.Selector}
			workloads[key] = w
			order = append(order, key)
		}
		for _, group := range methodGroups(in, p.index) {
			w.rules = append(w.rules, &securityv1.Rule{
				From: []*securityv1.Rule_From{{Source: &securityv1.Source{Principals: principals}}},
				To: []*securityv1.Rule_To{{Operation: &securityv1.Operation{
					Hosts:    policyHosts,
					Methods:  group.methods,
					Paths:    []string{policyPath(p.rule.Path)},
					NotPaths: group.notPaths,
				}}},
			})
		}
	}

	slices.Sort(order)
	out := make([]*securityclientv1.AuthorizationPolicy, 0, len(order))
	for _, key := range order {
		w := workloads[key]
		out = append(out, &securityclientv1.AuthorizationPolicy{
			TypeMeta:   metav1.TypeMeta{APIVersion: securityclientv1.SchemeGroupVersion.String(), Kind: "AuthorizationPolicy"},
			ObjectMeta: objectMeta(in, ownership.ChildName(in.Owner(), "authz", key), w.namespace),
			Spec: securityv1.AuthorizationPolicy{
				Selector: &typev1beta1.WorkloadSelector{MatchLabels: w.selector},
				Action:   securityv1.AuthorizationPolicy_ALLOW,
				Rules:    w.rules,
			},
		})
	}
	slices.SortFunc(out, func(a, b *securityclientv1.AuthorizationPolicy) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	return out
}

// methodGroup is a set of methods of one rule that share the same excluded paths.
type methodGroup struct {
	methods  []string
	notPaths []string
}

// methodGroups splits the methods of rule i by the paths of earlier rules that match each
// method. A method no earlier rule uses gets no exclusions, so a rule sharing only GET with an
// earlier rule still allows POST on the earlier rule's path, exactly as it is routed.
func methodGroups(in Input, i int) []methodGroup {
	rules := in.APIRule.Spec.Rules
	var groups []methodGroup
	for _, method := range sortedMethods(rules[i].Methods) {
		var notPaths []string
		for j := 0; j < i; j++ {
			if slices.Contains(sortedMethods(rules[j].Methods), method) {
				p := policyPath(rules[j].Path)
				if !slices.Contains(notPaths, p) {
					notPaths = append(notPaths, p)
				}
			}
		}
		if k := slices.IndexFunc(groups, func(g methodGroup) bool { return slices.Equal(g.notPaths, notPaths) }); k >= 0 {
			groups[k].methods = append(groups[k].methods, method)
			continue
		}
		groups = append(groups, methodGroup{methods: []string{method}, notPaths: notPaths})
	}
	return groups
}

// hostsWithPorts returns each host and, for non-wildcard hosts, the same host with any port:
// a Host header may carry a port, and Istio matches policy hosts against it literally.
func hostsWithPorts(hosts []string) []string {
	out := make([]string, 0, 2*len(hosts))
	for _, h := range hosts {
		out = append(out, h)
		if !strings.HasPrefix(h, "*") {
			out = append(out, h+":*")
		}
	}
	return out
}
