package translate

import (
	"slices"
	"sort"
	"strings"

	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// Authorization is enforced at the backend workload's sidecar, so the gateway cannot be
// bypassed from inside the mesh. Each workload gets:
//   - one ALLOW policy with a rule per APIRule rule: noAuth and extAuth rules require the
//     ingress gateway's principal; jwt rules (and extAuth restrictions) also require a request
//     principal from the listed issuers and the authorization conditions;
//   - one CUSTOM policy per ext-authz provider, naming the routes of the rules that use it
//     (Istio rejects principals and JWT conditions in CUSTOM policies, so they stay in ALLOW);
//   - one RequestAuthentication per set of issuers that a rule accepts.
//
// Istio ORs the rules of every ALLOW policy of a workload, with no order, whichever APIRule
// wrote them. Each rule for gateway traffic is therefore bound to its route: the route of
// APIRule rule i sets the route header (model.RouteHeader) to rule i's token, overwriting what
// the client sent, and the policy rule requires that value together with the gateway's
// principal. A request is decided by exactly the rule whose route the gateway chose: first-match
// order, hosts, methods and path spellings live in the route alone, and another APIRule's rule
// on the same workload (a wildcard host, a catch-all path) can never admit it.

const (
	claimScp    = "request.auth.claims[scp]"
	claimScope  = "request.auth.claims[scope]"
	claimScopes = "request.auth.claims[scopes]"
	claimAud    = "request.auth.claims[aud]"
	claimIss    = "request.auth.claims[iss]"
)

// workloadPolicies collects what one backend workload gets.
type workloadPolicies struct {
	key       string
	namespace string
	selector  map[string]string
	allow     []*securityv1.Rule
	// custom holds the rules of each ext-authz provider, in order of first use.
	custom        map[string][]*securityv1.Rule
	customOrder   []string
	issuerSets    map[string][]*securityv1.JWTRule
	issuerSetKeys []string
}

// policySet is the authorization of one APIRule, by workload.
type policySet struct {
	workloads map[string]*workloadPolicies
	keys      []string
}

func (ps *policySet) workload(svc model.Service) *workloadPolicies {
	key := model.WorkloadKey(svc)
	if w, ok := ps.workloads[key]; ok {
		return w
	}
	w := &workloadPolicies{key: key, namespace: svc.Namespace, selector: svc.Selector,
		custom: map[string][]*securityv1.Rule{}, issuerSets: map[string][]*securityv1.JWTRule{}}
	ps.workloads[key] = w
	ps.keys = append(ps.keys, key)
	return w
}

func buildPolicies(in model.Input, plans []rulePlan) *policySet {
	ps := &policySet{workloads: map[string]*workloadPolicies{}}
	gateway := gatewaySource{principal: in.Options.IngressGatewayPrincipal, when: clientIdentityConditions(&in.APIRule.Spec)}

	for _, p := range plans {
		w := ps.workload(p.backend)
		// Bound to the route: the rule matches only requests the gateway routed through
		// rule p, so it needs no operations of its own.
		token := p.token
		bound := gateway.boundTo(token)
		switch {
		case p.rule.JWT != nil:
			w.allow = append(w.allow, tokenRules(bound, p.rule.JWT)...)
			w.addIssuers(p.rule.JWT)
		case p.rule.ExtAuth != nil:
			for _, provider := range p.rule.ExtAuth.Authorizers {
				if _, used := w.custom[provider]; !used {
					w.customOrder = append(w.customOrder, provider)
					w.custom[provider] = []*securityv1.Rule{{When: []*securityv1.Condition{routeCondition()}}}
				}
				// One CUSTOM rule per provider, listing the routes that ask it.
				cond := w.custom[provider][0].When[0]
				cond.Values = append(cond.Values, token)
			}
			if restrictions := p.rule.ExtAuth.Restrictions; restrictions != nil {
				w.allow = append(w.allow, tokenRules(bound, restrictions)...)
				w.addIssuers(restrictions)
			} else {
				w.allow = append(w.allow, gatewayRule(bound))
			}
		default:
			w.allow = append(w.allow, gatewayRule(bound))
		}
	}

	internal := internalTrafficRule(in)
	for _, key := range ps.keys {
		w := ps.workloads[key]
		if internal != nil {
			w.allow = append(w.allow, internal)
		}
	}
	return ps
}

// operations returns the policy operations of rule i: one per group of methods that share
// the same excluded paths.
func operations(in model.Input, i int, hosts []string) []*securityv1.Rule_To {
	rule := in.APIRule.Spec.Rules[i]
	var out []*securityv1.Rule_To
	for _, group := range methodGroups(in, i) {
		out = append(out, &securityv1.Rule_To{Operation: &securityv1.Operation{
			Hosts:    hosts,
			Methods:  group.methods,
			Paths:    []string{policyPath(rule.Path)},
			NotPaths: group.notPaths,
		}})
	}
	return out
}

// gatewaySource is how requests through the ingress gateway are recognized: its principal,
// and for an mTLS APIRule with allowed identities, the identity headers it set.
type gatewaySource struct {
	principal string
	when      []*securityv1.Condition
}

// boundTo is the gateway source of requests routed by the rule whose route token is given.
func (g gatewaySource) boundTo(token string) gatewaySource {
	cond := routeCondition()
	cond.Values = []string{token}
	return gatewaySource{principal: g.principal, when: append([]*securityv1.Condition{cond}, g.when...)}
}

// routeCondition is the condition on the route binding header, without values.
func routeCondition() *securityv1.Condition {
	return &securityv1.Condition{Key: "request.headers[" + model.RouteHeader + "]"}
}

// gatewayRule allows requests that came through the ingress gateway and the bound route.
func gatewayRule(gateway gatewaySource) *securityv1.Rule {
	return &securityv1.Rule{
		From: []*securityv1.Rule_From{{Source: &securityv1.Source{Principals: []string{gateway.principal}}}},
		When: gateway.when,
	}
}

// tokenRules allows the operations to requests through the ingress gateway that carry a valid
// token from one of the issuers and satisfy one of the authorizations. Policy rules are ORed,
// so each authorization (and each claim that may hold the scopes) becomes its own rule; the
// conditions inside one rule are ANDed.
//
// Istio matches a request principal "<iss>/<sub>" against "<issuer>/*" by prefix, so a token
// of an issuer whose name extends a trusted one ("https://idp.example.com/tenant" for
// "https://idp.example.com") would match when another rule on the workload trusts it. Every
// rule therefore also requires the iss claim to equal one of the issuers exactly.
func tokenRules(gateway gatewaySource, cfg *apiv2.JWTConfig) []*securityv1.Rule {
	var requestPrincipals, issuers []string
	for _, a := range cfg.Authentications {
		if !slices.Contains(issuers, a.Issuer) {
			issuers = append(issuers, a.Issuer)
			requestPrincipals = append(requestPrincipals, a.Issuer+"/*")
		}
	}
	from := []*securityv1.Rule_From{{Source: &securityv1.Source{
		Principals:        []string{gateway.principal},
		RequestPrincipals: requestPrincipals,
	}}}
	common := append([]*securityv1.Condition{{Key: claimIss, Values: issuers}}, gateway.when...)
	if len(cfg.Authorizations) == 0 {
		return []*securityv1.Rule{{From: from, When: common}}
	}
	var out []*securityv1.Rule
	for _, authz := range cfg.Authorizations {
		for _, when := range authorizationConditions(authz) {
			out = append(out, &securityv1.Rule{From: from, When: append(slices.Clone(common), when...)})
		}
	}
	return out
}

// authorizationConditions returns the alternatives of one authorization, each a list of
// conditions that must all hold. Required scopes may be in the scp, scope or scopes claim,
// which makes three alternatives.
func authorizationConditions(authz apiv2.JWTAuthorization) [][]*securityv1.Condition {
	var common []*securityv1.Condition
	for _, aud := range authz.Audiences {
		common = append(common, &securityv1.Condition{Key: claimAud, Values: []string{aud}})
	}
	names := make([]string, 0, len(authz.Claims))
	for name := range authz.Claims {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		common = append(common, &securityv1.Condition{Key: "request.auth.claims[" + name + "]", Values: authz.Claims[name]})
	}
	if len(authz.RequiredScopes) == 0 {
		return [][]*securityv1.Condition{common}
	}
	var out [][]*securityv1.Condition
	for _, key := range []string{claimScp, claimScope, claimScopes} {
		var when []*securityv1.Condition
		for _, scope := range authz.RequiredScopes {
			when = append(when, &securityv1.Condition{Key: key, Values: []string{scope}})
		}
		out = append(out, append(when, common...))
	}
	return out
}

// internalTrafficRule returns the rule that lets in-mesh callers other than the ingress
// gateway call the workload directly, or nil when the APIRule does not allow them. Every form
// requires an authenticated mesh peer (a principal, which a caller without a sidecar does not
// have under PERMISSIVE mTLS) and excludes the gateway's own identity: through the gateway,
// only the bound route rules decide.
func internalTrafficRule(in model.Input) *securityv1.Rule {
	it := in.APIRule.Spec.InternalTraffic
	if it == nil {
		return nil
	}
	notGateway := []string{in.Options.IngressGatewayPrincipal}
	if it.Allow != nil && *it.Allow {
		return &securityv1.Rule{From: []*securityv1.Rule_From{{Source: &securityv1.Source{
			Principals: []string{"*"}, NotPrincipals: notGateway,
		}}}}
	}
	var from []*securityv1.Rule_From
	if len(it.FromNamespaces) > 0 {
		namespaces := slices.Clone(it.FromNamespaces)
		slices.Sort(namespaces)
		from = append(from, &securityv1.Rule_From{Source: &securityv1.Source{
			Namespaces: namespaces, Principals: []string{"*"}, NotPrincipals: notGateway,
		}})
	}
	if len(it.FromServiceAccounts) > 0 {
		var principals []string
		for _, sa := range it.FromServiceAccounts {
			principals = append(principals, model.ServiceAccountPrincipal(in.Options, sa))
		}
		slices.Sort(principals)
		from = append(from, &securityv1.Rule_From{Source: &securityv1.Source{Principals: principals, NotPrincipals: notGateway}})
	}
	if len(from) == 0 {
		return nil
	}
	return &securityv1.Rule{From: from}
}

// addIssuers records the set of issuers a rule accepts, once per set.
func (w *workloadPolicies) addIssuers(cfg *apiv2.JWTConfig) {
	var jwtRules []*securityv1.JWTRule
	for _, a := range cfg.Authentications {
		if !slices.ContainsFunc(jwtRules, func(r *securityv1.JWTRule) bool { return r.Issuer == a.Issuer }) {
			jwtRules = append(jwtRules, jwtRule(a, cfg.OutputClaimToHeaders))
		}
	}
	slices.SortFunc(jwtRules, func(a, b *securityv1.JWTRule) int { return strings.Compare(a.Issuer, b.Issuer) })
	issuers := make([]string, len(jwtRules))
	for i, r := range jwtRules {
		issuers[i] = r.Issuer
	}
	key := strings.Join(issuers, "\n")
	if _, ok := w.issuerSets[key]; !ok {
		w.issuerSets[key] = jwtRules
		w.issuerSetKeys = append(w.issuerSetKeys, key)
	}
}

// jwtRule is how Istio validates tokens of one issuer.
func jwtRule(a apiv2.JWTAuthentication, claimsToHeaders []apiv2.ClaimToHeader) *securityv1.JWTRule {
	r := &securityv1.JWTRule{
		Issuer:               a.Issuer,
		FromParams:           a.FromParams,
		FromCookies:          a.FromCookies,
		ForwardOriginalToken: a.ForwardOriginalToken == nil || *a.ForwardOriginalToken,
	}
	if a.JWKSURI != nil {
		r.JwksUri = *a.JWKSURI
	}
	if a.JWKS != nil {
		r.Jwks = *a.JWKS
	}
	for _, h := range model.TokenHeaders(a) {
		r.FromHeaders = append(r.FromHeaders, &securityv1.JWTHeader{Name: h.Name, Prefix: h.Prefix})
	}
	for _, c := range claimsToHeaders {
		r.OutputClaimToHeaders = append(r.OutputClaimToHeaders, &securityv1.ClaimToHeader{Header: c.Header, Claim: c.Claim})
	}
	return r
}

// authorizationPolicies returns the ALLOW and CUSTOM policies of every workload, sorted.
func (ps *policySet) authorizationPolicies(in model.Input) []*securityclientv1.AuthorizationPolicy {
	var out []*securityclientv1.AuthorizationPolicy
	for _, key := range ps.keys {
		w := ps.workloads[key]
		if len(w.allow) > 0 {
			out = append(out, authorizationPolicy(in, w, ownership.ChildName(in.Owner(), "authz", key),
				securityv1.AuthorizationPolicy_ALLOW, "", w.allow))
		}
		for _, provider := range w.customOrder {
			out = append(out, authorizationPolicy(in, w, ownership.ChildName(in.Owner(), "extauth", key, provider),
				securityv1.AuthorizationPolicy_CUSTOM, provider, w.custom[provider]))
		}
	}
	sortObjects(out)
	return out
}

// authorizationPolicy builds a policy on the workload with the given action and rules.
func authorizationPolicy(in model.Input, w *workloadPolicies, name string, action securityv1.AuthorizationPolicy_Action,
	provider string, rules []*securityv1.Rule) *securityclientv1.AuthorizationPolicy {
	ap := &securityclientv1.AuthorizationPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: securityclientv1.SchemeGroupVersion.String(), Kind: "AuthorizationPolicy"},
		ObjectMeta: objectMeta(in, name, w.namespace),
	}
	ap.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: w.selector}
	ap.Spec.Action = action
	ap.Spec.Rules = rules
	if provider != "" {
		ap.Spec.ActionDetail = &securityv1.AuthorizationPolicy_Provider{Provider: &securityv1.AuthorizationPolicy_ExtensionProvider{Name: provider}}
	}
	return ap
}

// requestAuthentications returns one RequestAuthentication per workload and issuer set.
func (ps *policySet) requestAuthentications(in model.Input) []*securityclientv1.RequestAuthentication {
	var out []*securityclientv1.RequestAuthentication
	for _, key := range ps.keys {
		w := ps.workloads[key]
		for _, set := range w.issuerSetKeys {
			out = append(out, &securityclientv1.RequestAuthentication{
				TypeMeta:   metav1.TypeMeta{APIVersion: securityclientv1.SchemeGroupVersion.String(), Kind: "RequestAuthentication"},
				ObjectMeta: objectMeta(in, ownership.ChildName(in.Owner(), "jwt", key, set), w.namespace),
				Spec: securityv1.RequestAuthentication{
					Selector: &typev1beta1.WorkloadSelector{MatchLabels: w.selector},
					JwtRules: w.issuerSets[set],
				},
			})
		}
	}
	sortObjects(out)
	return out
}

// sortObjects sorts objects by namespace and name.
func sortObjects[T metav1.Object](objects []T) {
	slices.SortFunc(objects, func(a, b T) int {
		return strings.Compare(a.GetNamespace()+"/"+a.GetName(), b.GetNamespace()+"/"+b.GetName())
	})
}

// methodGroup is a set of methods of one rule that share the same excluded paths.
type methodGroup struct {
	methods  []string
	notPaths []string
}

// methodGroups splits the methods of rule i by the paths of earlier rules that match each
// method. A method no earlier rule uses gets no exclusions, so a rule sharing only GET with an
// earlier rule still allows POST on the earlier rule's path, exactly as it is routed.
func methodGroups(in model.Input, i int) []methodGroup {
	rules := in.APIRule.Spec.Rules
	var groups []methodGroup
	for _, method := range sortedMethods(rules[i].Methods) {
		var notPaths []string
		for j := 0; j < i; j++ {
			if slices.Contains(rules[j].Methods, apiv2.HTTPMethod(method)) {
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
// a Host header may carry a port, and Istio matches policy hosts against it literally. Istio
// cannot express a wildcard host with a port, so such requests are denied (fail closed).
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
