package check

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

func rule(path string, methods ...apiv2.HTTPMethod) apiv2.Rule {
	yes := true
	return apiv2.Rule{Path: path, Methods: methods, NoAuth: &yes}
}

func jwtRule(path string, methods ...apiv2.HTTPMethod) apiv2.Rule {
	uri := "https://idp.example.com/jwks"
	return apiv2.Rule{Path: path, Methods: methods, JWT: &apiv2.JWTConfig{
		Authentications: []apiv2.JWTAuthentication{{Issuer: "https://idp.example.com", JWKSURI: &uri}},
	}}
}

func apiRule(hosts []apiv2.Host, rules ...apiv2.Rule) *apiv2.APIRule {
	gw := apiv2.GatewayReference("istio-system/public")
	return &apiv2.APIRule{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
		Spec: apiv2.APIRuleSpec{
			Hosts: hosts, Gateway: &gw, Service: &apiv2.Service{Name: "api", Port: 80}, Rules: rules,
		},
	}
}

func TestShadowedRuleIsAnErrorNamingBothRules(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"},
		rule("/health", "GET"),
		jwtRule("/api/{**}", "GET"),
		rule("/other", "GET"),
		jwtRule("/api/users", "GET"))
	ps := Static(r, model.Options{})
	errs := ps.ErrorList()
	if len(errs) != 1 {
		t.Fatalf("want one error, got %v", ps)
	}
	e := errs[0]
	if e.Field != "spec.rules[3].path" {
		t.Errorf("field %s", e.Field)
	}
	for _, want := range []string{"spec.rules[3] is never reached", "for GET because spec.rules[1] (GET /api/{**}, jwt) matches first", "move it before rule 1 or narrow rule 1"} {
		if !strings.Contains(e.Detail, want) {
			t.Errorf("message %q lacks %q", e.Detail, want)
		}
	}
	if ps[0].Reason != conditions.ReasonRuleShadowed {
		t.Errorf("reason %s", ps[0].Reason)
	}
}

func TestShadowedByDifferentRulesForDifferentMethods(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"},
		jwtRule("/api/{**}", "GET"),
		jwtRule("/api/{*}", "POST"),
		jwtRule("/api/users", "GET", "POST"))
	errs := Static(r, model.Options{}).ErrorList()
	if len(errs) != 1 || !strings.Contains(errs[0].Detail, "for GET because spec.rules[0]") ||
		!strings.Contains(errs[0].Detail, "for POST because spec.rules[1]") || !strings.Contains(errs[0].Detail, "rule 0 and rule 1") {
		t.Fatalf("got %v", errs)
	}
}

func TestPartlyShadowedRuleIsAWarning(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"},
		jwtRule("/api/{**}", "GET"),
		jwtRule("/api/users", "GET", "POST"))
	ps := Static(r, model.Options{})
	if ps.HasErrors() {
		t.Fatalf("partly shadowed by an equally protected rule must not be an error: %v", ps)
	}
	w := ps.WarningLines()
	if len(w) != 1 || !strings.HasPrefix(w[0], "spec.rules[1].path: ") || !strings.Contains(w[0], "for GET because spec.rules[0]") ||
		ps[0].Reason != conditions.ReasonRulePartlyShadowed {
		t.Fatalf("got %v", w)
	}
}

// A noAuth rule that takes some methods of a later protected rule opens them: an error.
func TestPartlyShadowedByNoAuthIsAnError(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"},
		rule("/{**}", "GET"),
		jwtRule("/admin", "GET", "POST"))
	errs := Static(r, model.Options{}).ErrorList()
	if len(errs) != 1 || !strings.Contains(errs[0].Detail, "pass without authentication") {
		t.Fatalf("got %v", errs)
	}
}

func TestRulesThatDoNotShadow(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"},
		jwtRule("/api/users", "GET"),
		jwtRule("/api/{**}", "GET"),   // broader after narrower: fine
		jwtRule("/api/users", "POST"), // same path, other method
		rule("/*", "GET", "POST", "PUT"))
	if ps := Static(r, model.Options{}); len(ps) != 0 {
		t.Fatalf("got %v", ps)
	}
}

func TestHostsIstioRefuses(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com", "10.0.0.1", "api.123", "Upper.example.com", "api", "*.example.com"}, rule("/x", "GET"))
	errs := Static(r, model.Options{}).ErrorList()
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	if strings.Join(fields, " ") != "spec.hosts[1] spec.hosts[2] spec.hosts[3]" {
		t.Fatalf("refused %v: %v", fields, errs)
	}
	if !strings.Contains(errs[0].Detail, "last label is all digits") {
		t.Errorf("message %q", errs[0].Detail)
	}
}

func TestRiskyInputWarnings(t *testing.T) {
	httpURI := "http://idp.example.com/jwks"
	j := jwtRule("/api", "GET")
	j.JWT.Authentications[0].JWKSURI = &httpURI
	r := apiRule([]apiv2.Host{"*.example.com", "api.example.com"}, j, rule("/{**}", "GET"), rule("/*", "POST"), rule("/public", "PUT"))
	got := Risky(r).WarningLines()
	want := []string{
		"spec.hosts[0]: wildcard host *.example.com",
		"spec.rules[0].jwt.authentications[0].jwksUri: signing keys fetched over plain http",
		"spec.rules[1].path: noAuth on /{**} lets every GET request",
		"spec.rules[2].path: noAuth on /* lets every POST request",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d warnings: %v", len(got), got)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("warning %d = %q, want prefix %q", i, got[i], want[i])
		}
	}
}

func TestProviders(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"}, apiv2.Rule{Path: "/x", Methods: []apiv2.HTTPMethod{"GET"},
		ExtAuth: &apiv2.ExtAuth{Authorizers: []string{"oauth2-proxy", "missing", "tracer"}}})
	mesh := &model.MeshConfig{ExtensionProviders: map[string]model.ProviderKind{
		"oauth2-proxy": model.ProviderExtAuthzHTTP, "tracer": model.ProviderOther}}
	warnings := func(mesh *model.MeshConfig) Findings {
		var fs Findings
		providers(r, mesh, false, Warning, &fs)
		return fs
	}
	ps := warnings(mesh)
	if ps.HasErrors() || len(ps) != 2 {
		t.Fatalf("got %v", ps)
	}
	if ps[0].Field.String() != "spec.rules[0].extAuth.authorizers[1]" || !strings.Contains(ps[0].Message, "use one of [oauth2-proxy]") {
		t.Errorf("got %v", ps[0])
	}
	if ps[1].Reason != conditions.ReasonProviderNotExtAuthz {
		t.Errorf("got %v", ps[1])
	}
	if ps := warnings(nil); len(ps) != 1 || ps[0].Reason != conditions.ReasonMeshConfigNotFound {
		t.Errorf("without a mesh config: %v", ps)
	}
}

func TestAdmissionIncludesTheTranslatorsSpecChecks(t *testing.T) {
	a := jwtRule("/a", "GET")
	b := jwtRule("/b", "GET")
	other := "https://other.example.com/jwks"
	b.JWT.Authentications[0].JWKSURI = &other
	r := apiRule([]apiv2.Host{"api.example.com"}, a, b)
	errs := Admission(model.Input{APIRule: r}, nil, nil).ErrorList()
	if len(errs) != 1 || errs[0].Field != "spec.rules[1].jwt.authentications[0]" || !strings.Contains(errs[0].Detail, "configured differently") {
		t.Fatalf("got %v", errs)
	}
	// Missing references are not refused at admission: they may be created later.
	r.Spec.Gateway = nil
	errs = Admission(model.Input{APIRule: r, Options: model.Options{DefaultGateway: "istio-system/public"}}, nil, nil).ErrorList()
	if len(errs) != 1 {
		t.Fatalf("got %v", errs)
	}
	errs = Admission(model.Input{APIRule: r}, nil, nil).ErrorList()
	if len(errs) != 2 || errs[1].Field != "spec.gateway" {
		t.Fatalf("no gateway and no default: %v", errs)
	}
}

func TestHostConflicts(t *testing.T) {
	mine := apiRule([]apiv2.Host{"api.example.com", "short", "free.example.com"}, rule("/x", "GET"))
	theirs := *apiRule([]apiv2.Host{"api.example.com", "short"}, rule("/y", "GET"))
	theirs.Name = "theirs"
	otherGateway := theirs.DeepCopy()
	otherGateway.Name = "elsewhere"
	gw := apiv2.GatewayReference("istio-system/internal")
	otherGateway.Spec.Gateway = &gw
	otherGateway.Spec.Hosts = []apiv2.Host{"short"}
	claims := map[string][]apiv2.APIRule{
		"api.example.com": {theirs, *mine},
		"short":           {theirs, *otherGateway},
	}
	ps := HostConflicts(mine, nil, claims, model.Options{})
	errs := ps.ErrorList()
	if len(errs) != 2 || errs[0].Field != "spec.hosts[0]" || errs[1].Field != "spec.hosts[1]" {
		t.Fatalf("got %v", errs)
	}
	if !strings.Contains(errs[0].Detail, "already claimed by APIRule shop/theirs") || strings.Contains(errs[1].Detail, "elsewhere") {
		t.Errorf("got %v", errs)
	}
	// An update keeps the hosts it already had.
	if ps := HostConflicts(mine, mine, claims, model.Options{}); len(ps) != 0 {
		t.Errorf("update keeping its hosts: %v", ps)
	}
	// An APIRule being deleted no longer claims.
	now := metav1.Now()
	claims["api.example.com"][0].DeletionTimestamp = &now
	if errs := HostConflicts(mine, nil, claims, model.Options{}).ErrorList(); len(errs) != 1 || errs[0].Field != "spec.hosts[1]" {
		t.Errorf("deleting holder: %v", errs)
	}
}

func TestFullIncludesStaticFindingsFirst(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"}, jwtRule("/{**}", "GET"), jwtRule("/a", "GET"))
	in := model.Input{
		APIRule:  r,
		Gateway:  &model.Gateway{Namespace: "istio-system", Name: "public", Hosts: []string{"*.example.com"}},
		Services: map[types.NamespacedName]model.Service{{Namespace: "shop", Name: "api"}: {Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api"}, Ports: []int32{80}}},
	}
	out := Full(in).Findings
	if len(out) == 0 || out[0].Reason != conditions.ReasonRuleShadowed || out[0].Condition != conditions.Accepted || !out.HasErrors() {
		t.Errorf("findings %v", out)
	}
}

// A host conflict names the host it is about, as routed, whatever the hosts before it: an
// unserved host before it (which resolves to nothing to route) must not shift which host is
// withdrawn.
func TestConflictingHostsAreTheHostsInConflict(t *testing.T) {
	other := types.NamespacedName{Namespace: "shop", Name: "older"}
	for _, c := range []struct {
		hosts []apiv2.Host
		want  []string
	}{
		{[]apiv2.Host{"api.other.org", "b.example.com", "c.example.com"}, []string{"b.example.com"}},
		{[]apiv2.Host{"api.other.org", "b.example.com"}, []string{"b.example.com"}},
		{[]apiv2.Host{"b", "c.example.com"}, []string{"b.example.com"}},
	} {
		r := apiRule(c.hosts, rule("/a", "GET"))
		r.CreationTimestamp = metav1.Now()
		in := model.Input{
			APIRule:  r,
			Gateway:  &model.Gateway{Namespace: "istio-system", Name: "public", Hosts: []string{"*.example.com"}},
			Services: map[types.NamespacedName]model.Service{{Namespace: "shop", Name: "api"}: {Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api"}, Ports: []int32{80}}},
			HostClaims: map[string][]model.HostClaim{"b.example.com": {{
				APIRule: &other, VirtualService: model.RouteKey(other), Since: metav1.NewTime(r.CreationTimestamp.Add(-time.Hour)),
			}}},
			ServedHosts: []string{"b.example.com", "c.example.com"},
		}
		got := Full(in).Findings.ConflictingHosts()
		if !slices.Equal(got, c.want) {
			t.Errorf("hosts %v: conflicting %v, want %v", c.hosts, got, c.want)
		}
	}
}

// Headers only the gateway or the operator sets may be written neither by a rule's request
// headers nor by a token claim.
func TestReservedHeadersAreRefused(t *testing.T) {
	j := jwtRule("/a", "GET")
	j.JWT.OutputClaimToHeaders = []apiv2.ClaimToHeader{{Header: "X-Client-Cert-Subject", Claim: "sub"}, {Header: "x-user", Claim: "sub"}}
	r := rule("/b", "GET")
	r.Request = &apiv2.Request{Headers: map[string]string{"X-Forwarded-For": "1.2.3.4", "x-apirule-route": "t", "Host": "h", "x-team": "shop"}}
	errs := Static(apiRule([]apiv2.Host{"api.example.com"}, j, r), model.Options{}).ErrorList()
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	want := []string{"spec.rules[0].jwt.outputClaimToHeaders[0].header", "spec.rules[1].request.headers[Host]",
		"spec.rules[1].request.headers[X-Forwarded-For]", "spec.rules[1].request.headers[x-apirule-route]"}
	slices.Sort(fields)
	if !slices.Equal(fields, want) {
		t.Errorf("refused %v, want %v", fields, want)
	}
}

// internalTraffic never admits the ingress gateway; lists that name it are refused.
func TestInternalTrafficNamingTheGatewayIsRefused(t *testing.T) {
	opts := model.Options{IngressGatewayPrincipal: "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"}
	r := apiRule([]apiv2.Host{"api.example.com"}, rule("/a", "GET"))
	r.Spec.InternalTraffic = &apiv2.InternalTraffic{
		FromNamespaces:      []string{"batch", "istio-system"},
		FromServiceAccounts: []string{"istio-system/istio-ingressgateway-service-account", "batch/job"},
	}
	errs := Static(r, opts).ErrorList()
	if len(errs) != 2 || errs[0].Field != "spec.internalTraffic.fromNamespaces[1]" || errs[1].Field != "spec.internalTraffic.fromServiceAccounts[0]" {
		t.Errorf("got %v", errs)
	}
}

// Escapes of unreserved characters never match (the gateway decodes them); other escapes
// cannot be IP-restricted per rule.
func TestPathEscapes(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"}, rule("/%61pi/{**}", "GET"))
	if errs := Static(r, model.Options{}).ErrorList(); len(errs) != 1 || errs[0].Field != "spec.rules[0].path" || !strings.Contains(errs[0].Detail, `unreserved character 'a'`) {
		t.Errorf("unreserved escape: %v", errs)
	}
	opts := model.Options{IngressGatewayNamespace: "istio-system", IngressGatewaySelector: map[string]string{"istio": "ingressgateway"}}
	escaped := rule("/caf%C3%A9/{**}", "GET")
	escaped.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
	r = apiRule([]apiv2.Host{"api.example.com"}, escaped)
	if errs := Static(r, opts).ErrorList(); len(errs) != 1 || errs[0].Field != "spec.rules[0].path" {
		t.Errorf("escape under a rule's IP restriction: %v", errs)
	}
	r.Spec.Rules[0].IPRestriction = nil
	r.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
	if errs := Static(r, opts).ErrorList(); len(errs) != 0 {
		t.Errorf("an APIRule-wide restriction is scoped by host only: %v", errs)
	}

	// With per-rule restrictions the gateway refuses request paths with '=': a rule path with
	// it, restricted or not, could never be reached.
	restricted := rule("/admin", "GET")
	restricted.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
	r = apiRule([]apiv2.Host{"api.example.com"}, rule("/api/key=1", "GET"), restricted)
	if errs := Static(r, opts).ErrorList(); len(errs) != 1 || errs[0].Field != "spec.rules[0].path" || !strings.Contains(errs[0].Detail, "'='") {
		t.Errorf("'=' in a path with per-rule restrictions: %v", errs)
	}
	r.Spec.Rules[1].IPRestriction = nil
	r.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
	if errs := Static(r, opts).ErrorList(); len(errs) != 0 {
		t.Errorf("'=' under an APIRule-wide restriction only: %v", errs)
	}
}

// APIRules on one workload must agree on issuers and ext-authz providers; the younger is
// refused, naming the older.
func TestWorkloadPeersMustAgree(t *testing.T) {
	svc := model.Service{Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api"}, Ports: []int32{80}}
	older := apiRule([]apiv2.Host{"a.example.com"}, apiv2.Rule{Path: "/x", Methods: []apiv2.HTTPMethod{"GET"}, ExtAuth: &apiv2.ExtAuth{Authorizers: []string{"opa"}}}, jwtRule("/y", "GET"))
	older.Name, older.CreationTimestamp = "older", metav1.NewTime(time.Unix(1000, 0))
	mine := apiRule([]apiv2.Host{"b.example.com"}, apiv2.Rule{Path: "/x", Methods: []apiv2.HTTPMethod{"GET"}, ExtAuth: &apiv2.ExtAuth{Authorizers: []string{"oauth2"}}}, jwtRule("/y", "GET"))
	mine.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	mine.Spec.Rules[1].JWT.Authentications[0].FromCookies = []string{"session"}
	in := model.Input{
		APIRule:  mine,
		Services: map[types.NamespacedName]model.Service{{Namespace: "shop", Name: "api"}: svc},
		Peers:    []model.Peer{{APIRule: older, Workloads: []string{model.WorkloadKey(svc)}, Services: []types.NamespacedName{{Namespace: "shop", Name: "api"}}}},
	}
	var got []string
	for _, f := range AcrossAPIRules(in).Errors() {
		if f.Reason != conditions.ReasonWorkloadConflict || !strings.Contains(f.Message, "APIRule shop/older") {
			t.Errorf("finding %v", f)
		}
		got = append(got, f.Field.String())
	}
	if want := []string{"spec.rules[1].jwt.authentications[0]", "spec.rules"}; !slices.Equal(got, want) {
		t.Errorf("refused %v, want %v", got, want)
	}
	// The older APIRule is not refused for the younger one.
	in.APIRule, in.Peers[0].APIRule = older, mine
	if fs := AcrossAPIRules(in); len(fs) != 0 {
		t.Errorf("older refused: %v", fs)
	}
}

// A backend in another namespace is refused unless that namespace consents with a
// ReferenceGrant or the operator allows every namespace; admission decides as Full does.
func TestCrossNamespaceBackendNeedsConsent(t *testing.T) {
	other := "finance"
	r := apiRule([]apiv2.Host{"api.example.com"}, rule("/a", "GET"))
	r.Spec.Service.Namespace = &other
	consent := func(opts model.Options, grants ...model.ReferenceGrant) field.ErrorList {
		in := model.Input{APIRule: r, Options: opts, ReferenceGrants: grants}
		full := crossNamespaceErrors(Full(in).Findings)
		if admission := crossNamespaceErrors(Admission(in, nil, nil)); !reflect.DeepEqual(full, admission) {
			t.Errorf("admission decides otherwise than reconcile: %v, %v", admission, full)
		}
		return full
	}
	if errs := consent(model.Options{}); len(errs) != 1 || errs[0].Field != "spec.service.namespace" ||
		!strings.Contains(errs[0].Detail, "--allow-cross-namespace-backends") || !strings.Contains(errs[0].Detail, "no ReferenceGrant API") {
		t.Errorf("without the ReferenceGrant API: %v", errs)
	}
	if errs := consent(model.Options{CrossNamespaceBackends: true}); len(errs) != 0 {
		t.Errorf("allowed by the operator: %v", errs)
	}

	grants := model.Options{ReferenceGrants: true}
	if errs := consent(grants); len(errs) != 1 || !strings.Contains(errs[0].Detail, "kind APIRule, namespace shop to group \"\", kind Service, name api") {
		t.Errorf("no grant: %v", errs)
	}
	grant := func(mutate func(*model.ReferenceGrant)) model.ReferenceGrant {
		g := model.ReferenceGrant{
			Namespace: "finance", Name: "apirules-of-shop",
			From: []model.GrantFrom{{Group: "gateway.networking.k8s.io", Kind: "HTTPRoute", Namespace: "shop"}, {Group: apiv2.GroupVersion.Group, Kind: "APIRule", Namespace: "shop"}},
			To:   []model.GrantTo{{Group: "", Kind: "Secret"}, {Group: "", Kind: "Service", Name: "api"}},
		}
		if mutate != nil {
			mutate(&g)
		}
		return g
	}
	if errs := consent(grants, grant(nil)); len(errs) != 0 {
		t.Errorf("granted: %v", errs)
	}
	if errs := consent(grants, grant(func(g *model.ReferenceGrant) { g.To = []model.GrantTo{{Kind: "Service"}} })); len(errs) != 0 {
		t.Errorf("granted for every Service: %v", errs)
	}
	for name, mutate := range map[string]func(*model.ReferenceGrant){
		"in another namespace":    func(g *model.ReferenceGrant) { g.Namespace = "shop" },
		"from another namespace":  func(g *model.ReferenceGrant) { g.From = g.From[1:]; g.From[0].Namespace = "staging" },
		"from another kind":       func(g *model.ReferenceGrant) { g.From = g.From[:1] },
		"from another group":      func(g *model.ReferenceGrant) { g.From[1].Group = "gateway.kyma-project.io" },
		"to another Service":      func(g *model.ReferenceGrant) { g.To[1].Name = "payments" },
		"to another kind":         func(g *model.ReferenceGrant) { g.To = g.To[:1] },
		"to a Service of a group": func(g *model.ReferenceGrant) { g.To[1].Group = "example.com" },
	} {
		if errs := consent(grants, grant(mutate)); len(errs) != 1 {
			t.Errorf("a grant %s consents: %v", name, errs)
		}
	}

	// A rule's own backend elsewhere is named at its own field, once per Service.
	elsewhere := rule("/b", "GET")
	elsewhere.Service = &apiv2.Service{Name: "ledger", Namespace: &other, Port: 80}
	r.Spec.Rules = append(r.Spec.Rules, elsewhere, elsewhere)
	r.Spec.Rules[2].Path = "/c"
	if errs := consent(grants, grant(nil)); len(errs) != 1 || errs[0].Field != "spec.rules[1].service.namespace" {
		t.Errorf("a rule's backend without consent: %v", errs)
	}

	// A grant consents to routes from the gateway, not to opening the workload to the mesh.
	yes := true
	r.Spec.Rules = r.Spec.Rules[:1]
	r.Spec.InternalTraffic = &apiv2.InternalTraffic{Allow: &yes}
	if errs := consent(grants, grant(nil)); len(errs) != 1 || errs[0].Field != "spec.internalTraffic" {
		t.Errorf("internalTraffic with a granted backend elsewhere: %v", errs)
	}
	if errs := consent(model.Options{CrossNamespaceBackends: true}); len(errs) != 0 {
		t.Errorf("internalTraffic when the operator allows every namespace: %v", errs)
	}
	r.Spec.InternalTraffic = nil

	same := "shop"
	r.Spec.Service.Namespace = &same
	if errs := consent(model.Options{}); len(errs) != 0 {
		t.Errorf("the APIRule's own namespace written out: %v", errs)
	}
}

func crossNamespaceErrors(fs Findings) field.ErrorList {
	var out Findings
	for _, f := range fs {
		if f.Reason == conditions.ReasonCrossNamespaceBackend {
			out = append(out, f)
		}
	}
	return out.ErrorList()
}

// The gateway's DENY policy cannot match a wildcard host with a port, so a wildcard host
// cannot be IP-restricted; an exact host can (its port form is listed).
func TestWildcardHostCannotBeIPRestricted(t *testing.T) {
	opts := model.Options{IngressGatewayNamespace: "istio-system", IngressGatewaySelector: map[string]string{"istio": "ingressgateway"}}
	r := apiRule([]apiv2.Host{"api.example.com", "*.shop.example.com"}, rule("/a", "GET"))
	r.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
	if errs := Static(r, opts).ErrorList(); len(errs) != 1 || errs[0].Field != "spec.hosts[1]" {
		t.Errorf("APIRule-wide restriction: %v", errs)
	}
	r.Spec.IPRestriction = nil
	r.Spec.Rules[0].IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
	if errs := Static(r, opts).ErrorList(); len(errs) != 1 || errs[0].Field != "spec.hosts[1]" {
		t.Errorf("rule restriction: %v", errs)
	}
	r.Spec.Hosts = r.Spec.Hosts[:1]
	if errs := Static(r, opts).ErrorList(); len(errs) != 0 {
		t.Errorf("exact host: %v", errs)
	}
}

// The APIRule whose current spec already serves prevails, whatever its age: a new APIRule or
// an edit never takes a live configuration away from another.
func TestWorkloadPeerServingItsSpecPrevails(t *testing.T) {
	svc := model.Service{Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api"}, Ports: []int32{80}}
	programmed := func(r *apiv2.APIRule) {
		r.Generation = 3
		r.Status.Conditions = []metav1.Condition{{Type: string(conditions.Programmed), Status: metav1.ConditionTrue, ObservedGeneration: 3}}
	}
	older := apiRule([]apiv2.Host{"a.example.com"}, jwtRule("/y", "GET"))
	older.Name, older.CreationTimestamp = "older", metav1.NewTime(time.Unix(1000, 0))
	older.Spec.Rules[0].JWT.Authentications[0].FromCookies = []string{"session"}
	live := apiRule([]apiv2.Host{"b.example.com"}, jwtRule("/y", "GET"))
	live.Name, live.CreationTimestamp = "live", metav1.NewTime(time.Unix(2000, 0))
	programmed(live)
	peerOf := func(r *apiv2.APIRule) []model.Peer {
		return []model.Peer{{APIRule: r, Workloads: []string{model.WorkloadKey(svc)}, Services: []types.NamespacedName{{Namespace: "shop", Name: "api"}}}}
	}
	services := map[types.NamespacedName]model.Service{{Namespace: "shop", Name: "api"}: svc}
	// The older APIRule's edit (not programmed yet) is refused; the live younger one is not.
	if fs := AcrossAPIRules(model.Input{APIRule: older, Services: services, Peers: peerOf(live)}); !fs.Refuses(conditions.ReasonWorkloadConflict) {
		t.Errorf("the edit against a live configuration was accepted")
	}
	if fs := AcrossAPIRules(model.Input{APIRule: live, Services: services, Peers: peerOf(older)}); len(fs) != 0 {
		t.Errorf("the live configuration was refused: %v", fs)
	}
	// Both live (a race): the older prevails.
	programmed(older)
	if fs := AcrossAPIRules(model.Input{APIRule: live, Services: services, Peers: peerOf(older)}); !fs.Refuses(conditions.ReasonWorkloadConflict) {
		t.Errorf("both live: the younger was not refused")
	}
}

// A route on another server of the ingress gateway that covers an mTLS host refuses the side
// that does not prevail; a route the operator does not manage always prevails.
func TestMTLSHostCoveredByAnotherRoute(t *testing.T) {
	opts := model.Options{IngressGatewayNamespace: "istio-system", IngressGatewaySelector: map[string]string{"istio": "ingressgateway"}}
	partner := apiRule([]apiv2.Host{"b2b.example.com"}, rule("/a", "GET"))
	partner.Spec.Gateway = nil
	partner.Spec.MTLS = &apiv2.MTLS{CredentialName: "tls", CASecretRef: apiv2.SecretKeyReference{Name: "ca"}}
	partner.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
	wild := apiRule([]apiv2.Host{"*.example.com"}, rule("/a", "GET"))
	wild.Name, wild.CreationTimestamp = "wild", metav1.NewTime(time.Unix(1000, 0))
	covering := model.Fronting{Host: "b2b.example.com", Pattern: "*.example.com", Route: model.RouteKey(model.Owner(wild)), APIRule: wild}

	fs := Full(model.Input{APIRule: partner, Options: opts, Fronting: []model.Fronting{covering}}).Findings
	if !fs.Refuses(conditions.ReasonMTLSHostCovered) {
		t.Errorf("the younger mTLS APIRule is served: %v", fs)
	}
	back := model.Fronting{Host: "b2b.example.com", Pattern: "*.example.com", Route: model.RouteKey(model.Owner(partner)), APIRule: partner}
	if fs := Full(model.Input{APIRule: wild, Options: opts, Fronting: []model.Fronting{back}}).Findings; fs.Refuses(conditions.ReasonMTLSHostCovered) {
		t.Errorf("the older wildcard APIRule is refused: %v", fs)
	}
	unmanaged := model.Fronting{Host: "b2b.example.com", Pattern: "*", Route: types.NamespacedName{Namespace: "web", Name: "all"}}
	partner.CreationTimestamp = metav1.NewTime(time.Unix(1, 0))
	fs = Full(model.Input{APIRule: partner, Options: opts, Fronting: []model.Fronting{unmanaged}}).Findings
	if !fs.Refuses(conditions.ReasonMTLSHostCovered) || !strings.Contains(fs.Summary(), "VirtualService web/all, which the operator does not manage") {
		t.Errorf("an unmanaged covering route: %v", fs)
	}
}
