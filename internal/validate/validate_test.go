package validate

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/translate"
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

func TestCovers(t *testing.T) {
	cases := []struct {
		earlier, later string
		want           bool
	}{
		{"/*", "/anything/{**}", true},
		{"/*", "/*", true},
		{"/{**}", "/*", false}, // /* also matches characters outside the template class
		{"/{**}", "/", true},
		{"/{**}", "/a/{*}/b", true},
		{"/api/{**}", "/api/users", true},
		{"/api/{**}", "/api/", true},
		{"/api/{**}", "/api", false},
		{"/api/{**}", "/apis/x", false},
		{"/api/{*}", "/api/users", true},
		{"/api/{*}", "/api/{*}", true},
		{"/api/{*}", "/api/{**}", false},
		{"/api/{*}", "/api/", false}, // {*} is never empty
		{"/api/{*}", "/api/a/b", false},
		{"/{*}/b", "/a/b", true},
		{"/a/b", "/{*}/b", false},
		{"/a/b", "/a/b", true},
		{"/a/b", "/a/b/", false},
		{"/{*}/{**}", "/x/{**}", true},
		{"/x/{**}", "/{*}/{**}", false},
		{"/a%2Fb", "/a%2Fb", true},
		{"/{*}", "/a%2Fb", true},
	}
	for _, c := range cases {
		p, err := parsePath(c.earlier)
		if err != nil {
			t.Fatalf("%s: %v", c.earlier, err)
		}
		q, err := parsePath(c.later)
		if err != nil {
			t.Fatalf("%s: %v", c.later, err)
		}
		if got := p.covers(q); got != c.want {
			t.Errorf("%s covers %s = %v, want %v", c.earlier, c.later, got, c.want)
		}
	}
}

func TestParsePathRefusesWhatIstioRefuses(t *testing.T) {
	for path, want := range map[string]string{
		"api":           "must start with '/'",
		"/a//b":         "empty segment",
		"/a/{**}/b":     "only as the last segment",
		"/a/../b":       "'.' or '..'",
		"/a*":           "'*' is allowed only as",
		"/a{*}":         "'{' is allowed only as",
		"/a b":          `character ' ' is not allowed`,
		"/a%2":          "percent-encoded",
		"/a?x=1":        `character '?' is not allowed`,
		"/{**}/{**}":    "only as the last segment",
		"/caf\u00e9":    "is not allowed",
		"/a/{*}x":       "'{' is allowed only as",
		"/a/%zz":        "percent-encoded",
		"/templates/{}": "'{' is allowed only as",
	} {
		_, err := parsePath(path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want it to mention %q", path, err, want)
		}
	}
	for _, path := range []string{"/", "/*", "/{**}", "/a/", "/a/{*}/b/{**}", "/a%2Fb", "/v1:run", "/~user/x.y"} {
		if _, err := parsePath(path); err != nil {
			t.Errorf("%q refused: %v", path, err)
		}
	}
}

func TestShadowedRuleIsAnErrorNamingBothRules(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"},
		rule("/health", "GET"),
		jwtRule("/api/{**}", "GET"),
		rule("/other", "GET"),
		jwtRule("/api/users", "GET"))
	ps := Spec(r)
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
	errs := Spec(r).ErrorList()
	if len(errs) != 1 || !strings.Contains(errs[0].Detail, "for GET because spec.rules[0]") ||
		!strings.Contains(errs[0].Detail, "for POST because spec.rules[1]") || !strings.Contains(errs[0].Detail, "rule 0 and rule 1") {
		t.Fatalf("got %v", errs)
	}
}

func TestPartlyShadowedRuleIsAWarning(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"},
		jwtRule("/api/{**}", "GET"),
		jwtRule("/api/users", "GET", "POST"))
	ps := Spec(r)
	if ps.HasErrors() {
		t.Fatalf("partly shadowed by an equally protected rule must not be an error: %v", ps)
	}
	w := ps.Warnings()
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
	errs := Spec(r).ErrorList()
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
	if ps := Spec(r); len(ps) != 0 {
		t.Fatalf("got %v", ps)
	}
}

func TestHostsIstioRefuses(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com", "10.0.0.1", "api.123", "Upper.example.com", "api", "*.example.com"}, rule("/x", "GET"))
	errs := Spec(r).ErrorList()
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
	got := Risky(r).Warnings()
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
	mesh := &translate.MeshConfig{ExtensionProviders: map[string]translate.ProviderKind{
		"oauth2-proxy": translate.ProviderExtAuthzHTTP, "tracer": translate.ProviderOther}}
	ps := Providers(r, mesh)
	if ps.HasErrors() || len(ps) != 2 {
		t.Fatalf("got %v", ps)
	}
	if ps[0].Field.String() != "spec.rules[0].extAuth.authorizers[1]" || !strings.Contains(ps[0].Message, "use one of [oauth2-proxy]") {
		t.Errorf("got %v", ps[0])
	}
	if ps[1].Reason != conditions.ReasonProviderNotExtAuthz {
		t.Errorf("got %v", ps[1])
	}
	if ps := Providers(r, nil); len(ps) != 3 || ps[0].Reason != conditions.ReasonMeshConfigNotFound {
		t.Errorf("without a mesh config: %v", ps)
	}
}

func TestAdmissionIncludesTheTranslatorsSpecChecks(t *testing.T) {
	a := jwtRule("/a", "GET")
	b := jwtRule("/b", "GET")
	other := "https://other.example.com/jwks"
	b.JWT.Authentications[0].JWKSURI = &other
	r := apiRule([]apiv2.Host{"api.example.com"}, a, b)
	errs := Admission(r, translate.Options{}).ErrorList()
	if len(errs) != 1 || errs[0].Field != "spec.rules[1].jwt.authentications[0]" || !strings.Contains(errs[0].Detail, "configured differently") {
		t.Fatalf("got %v", errs)
	}
	// Missing references are not refused at admission: they may be created later.
	r.Spec.Gateway = nil
	errs = Admission(r, translate.Options{DefaultGateway: "istio-system/public"}).ErrorList()
	if len(errs) != 1 {
		t.Fatalf("got %v", errs)
	}
	errs = Admission(r, translate.Options{}).ErrorList()
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
	ps := HostConflicts(mine, nil, claims, translate.Options{})
	errs := ps.ErrorList()
	if len(errs) != 2 || errs[0].Field != "spec.hosts[0]" || errs[1].Field != "spec.hosts[1]" {
		t.Fatalf("got %v", errs)
	}
	if !strings.Contains(errs[0].Detail, "already claimed by APIRule shop/theirs") || strings.Contains(errs[1].Detail, "elsewhere") {
		t.Errorf("got %v", errs)
	}
	// An update keeps the hosts it already had.
	if ps := HostConflicts(mine, mine, claims, translate.Options{}); len(ps) != 0 {
		t.Errorf("update keeping its hosts: %v", ps)
	}
	// An APIRule being deleted no longer claims.
	now := metav1.Now()
	claims["api.example.com"][0].DeletionTimestamp = &now
	if errs := HostConflicts(mine, nil, claims, translate.Options{}).ErrorList(); len(errs) != 1 || errs[0].Field != "spec.hosts[1]" {
		t.Errorf("deleting holder: %v", errs)
	}
}

func TestTranslateAddsSpecFindingsAndWithholdsObjects(t *testing.T) {
	r := apiRule([]apiv2.Host{"api.example.com"}, jwtRule("/{**}", "GET"), jwtRule("/a", "GET"))
	in := translate.Input{
		APIRule:  r,
		Gateway:  &translate.Gateway{Namespace: "istio-system", Name: "public", Hosts: []string{"*.example.com"}},
		Services: map[types.NamespacedName]translate.Service{{Namespace: "shop", Name: "api"}: {Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api"}, Ports: []int32{80}}},
	}
	if plain := translate.Translate(in); len(plain.Objects.VirtualServices) != 1 {
		t.Fatalf("the translator alone serves it: %v", plain.Findings)
	}
	out := Translate(in)
	if len(out.Objects.All()) != 0 {
		t.Errorf("objects generated for a shadowed rule")
	}
	if len(out.Findings) == 0 || out.Findings[0].Reason != conditions.ReasonRuleShadowed || out.Findings[0].Condition != conditions.Accepted {
		t.Errorf("findings %v", out.Findings)
	}
}
