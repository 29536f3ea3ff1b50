package translate_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

const principal = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"

func noAuthRule(path string, methods ...apiv2.HTTPMethod) apiv2.Rule {
	yes := true
	return apiv2.Rule{Path: path, Methods: methods, NoAuth: &yes}
}

func input(rules ...apiv2.Rule) model.Input {
	gateway := apiv2.GatewayReference("istio-system/public")
	return model.Input{
		APIRule: &apiv2.APIRule{
			Spec: apiv2.APIRuleSpec{
				Hosts:   []apiv2.Host{"api.example.com"},
				Gateway: &gateway,
				Service: &apiv2.Service{Name: "api", Port: 8000},
				Rules:   rules,
			},
		},
		Gateway: &model.Gateway{Namespace: "istio-system", Name: "public", Hosts: []string{"*.example.com"}, Selector: ingressSelector},
		Services: map[types.NamespacedName]model.Service{
			{Namespace: "shop", Name: "api"}: {Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api", "tier": "web"}, Ports: []int32{8000}},
		},
		Options: model.Options{IngressGatewayPrincipal: principal, IngressGatewayNamespace: "istio-system", IngressGatewaySelector: ingressSelector},
	}
}

var ingressSelector = map[string]string{"istio": "ingressgateway"}

func withMeta(in model.Input) model.Input {
	in.APIRule.Namespace, in.APIRule.Name, in.APIRule.UID = "shop", "api", "uid-1"
	return in
}

func renderYAML(t *testing.T, out pipeline.Result) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, ap := range out.Objects.AuthorizationPolicies {
		raw, err := yaml.Marshal(ap)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
	}
	for _, vs := range out.Objects.VirtualServices {
		raw, err := yaml.Marshal(vs)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
	}
	return b.Bytes()
}

func TestTranslateIsDeterministic(t *testing.T) {
	rule := noAuthRule("/*", "POST", "GET")
	rule.Request = &apiv2.Request{
		Headers: map[string]string{"X-B": "2", "X-A": "1", "X-C": "3"},
		Cookies: map[string]string{"z": "1", "a": "2", "m": "3"},
	}
	first := renderYAML(t, pipeline.Run(withMeta(input(noAuthRule("/a", "GET"), rule))))
	if len(first) == 0 {
		t.Fatal("nothing rendered")
	}
	for i := 0; i < 50; i++ {
		if again := renderYAML(t, pipeline.Run(withMeta(input(noAuthRule("/a", "GET"), rule)))); !bytes.Equal(first, again) {
			t.Fatalf("translation %d differs:\n%s\nvs\n%s", i, first, again)
		}
	}
	if !strings.Contains(string(first), "Cookie: a=2; m=3; z=1") {
		t.Errorf("cookies are not joined in name order:\n%s", first)
	}
}

// Kyma's predecessor found "earlier rules" by comparing path strings: with an earlier rule on
// the same path for another method, a later noAuth rule lost the exclusion of a jwt path in
// between. Exclusions here go by rule index and by method.
// Every ALLOW rule for gateway traffic is bound to its route: it requires the gateway's
// principal and the token that route, and only that route, sets. Rule order lives in the
// route; the policy names no paths, methods or hosts.
func TestEveryRuleIsBoundToItsRoute(t *testing.T) {
	in := withMeta(input(
		noAuthRule("/a/{*}", "POST"),
		noAuthRule("/a/b", "GET"),
		noAuthRule("/a/{*}", "GET"),
		noAuthRule("/*", "GET", "POST", "PUT"),
	))
	out := pipeline.Run(in)
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	routes := out.Objects.VirtualServices[0].Spec.Http
	if routes[0].Name != translate.AmbiguousPathRoute || routes[0].DirectResponse.GetStatus() != 400 {
		t.Fatalf("first route %v, want the ambiguous-path refusal", routes[0])
	}
	tokens := map[string]int{}
	for i, route := range routes[1:] {
		token := route.Headers.Request.Set[model.RouteHeader]
		if token != model.RouteToken(in.APIRule, i) {
			t.Errorf("route %d sets %s=%q, want the token of rule %d", i, model.RouteHeader, token, i)
		}
		tokens[token] = i
	}
	if len(tokens) != len(in.APIRule.Spec.Rules) {
		t.Fatalf("tokens %v are not distinct", tokens)
	}
	rules := out.Objects.AuthorizationPolicies[0].Spec.Rules
	if len(rules) != len(in.APIRule.Spec.Rules) {
		t.Fatalf("%d policy rules, want one per APIRule rule", len(rules))
	}
	for i, r := range rules {
		if len(r.From) != 1 || !slices.Equal(r.From[0].Source.Principals, []string{principal}) {
			t.Errorf("policy rule %d does not require the ingress gateway principal: %v", i, r)
		}
		if len(r.To) != 0 {
			t.Errorf("policy rule %d names operations %v: the route decides them", i, r.To)
		}
		if len(r.When) != 1 || r.When[0].Key != "request.headers["+model.RouteHeader+"]" || len(r.When[0].Values) != 1 || tokens[r.When[0].Values[0]] != i {
			t.Errorf("policy rule %d is not bound to route %d: %v", i, i, r.When)
		}
	}
	// A changed rule gets a new token: a route still live from the previous generation
	// matches no rule of the new policies.
	changed := in.APIRule.DeepCopy()
	changed.Spec.Rules[1].Methods = []apiv2.HTTPMethod{"GET", "HEAD"}
	if model.RouteToken(changed, 1) == model.RouteToken(in.APIRule, 1) || model.RouteToken(changed, 0) != model.RouteToken(in.APIRule, 0) {
		t.Errorf("tokens do not follow the rules' content")
	}
}

func TestOneVirtualServiceRouteAndOnePolicyPerWorkload(t *testing.T) {
	in := withMeta(input(noAuthRule("/a", "GET"), noAuthRule("/b", "GET")))
	other := apiv2.Service{Name: "other", Port: 9000}
	in.APIRule.Spec.Rules[1].Service = &other
	in.Services[types.NamespacedName{Namespace: "shop", Name: "other"}] = model.Service{Namespace: "shop", Name: "other", Selector: map[string]string{"app": "other"}, Ports: []int32{9000}}
	out := pipeline.Run(in)
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	if n := len(out.Objects.VirtualServices); n != 1 {
		t.Fatalf("%d VirtualServices, want 1", n)
	}
	vs := out.Objects.VirtualServices[0]
	if got := vs.Spec.Http[2].Route[0].Destination.Host; got != "other.shop.svc.cluster.local" {
		t.Errorf("rule 1 routes to %q", got)
	}
	aps := out.Objects.AuthorizationPolicies
	if len(aps) != 2 {
		t.Fatalf("%d AuthorizationPolicies, want one per workload", len(aps))
	}
	if aps[0].Name >= aps[1].Name {
		t.Errorf("policies not sorted by name: %s, %s", aps[0].Name, aps[1].Name)
	}
	for _, ap := range aps {
		if len(ap.OwnerReferences) != 1 || ap.OwnerReferences[0].UID != "uid-1" {
			t.Errorf("policy %s has ownerReferences %v", ap.Name, ap.OwnerReferences)
		}
	}
}

func TestNoOwnerReferenceAcrossNamespaces(t *testing.T) {
	in := withMeta(input(noAuthRule("/a", "GET")))
	in.APIRule.Namespace = "gateway-team"
	ns := "shop"
	in.APIRule.Spec.Service.Namespace = &ns
	in.Options.CrossNamespaceBackends = true
	out := pipeline.Run(in)
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	ap := out.Objects.AuthorizationPolicies[0]
	if ap.Namespace != "shop" || len(ap.OwnerReferences) != 0 {
		t.Errorf("policy in %s with ownerReferences %v; want namespace shop and none", ap.Namespace, ap.OwnerReferences)
	}
	if vs := out.Objects.VirtualServices[0]; vs.Namespace != "gateway-team" || len(vs.OwnerReferences) != 1 {
		t.Errorf("VirtualService in %s with ownerReferences %v", vs.Namespace, vs.OwnerReferences)
	}
}

func TestFindingsBlockEveryObject(t *testing.T) {
	cases := []struct {
		name      string
		change    func(*model.Input)
		condition conditions.Type
		reason    conditions.Reason
		field     string
	}{
		{"no gateway and no default", func(in *model.Input) { in.APIRule.Spec.Gateway = nil },
			conditions.Accepted, conditions.ReasonNoGateway, "spec.gateway"},
		{"gateway missing", func(in *model.Input) { in.Gateway = nil },
			conditions.ResolvedRefs, conditions.ReasonGatewayNotFound, "spec.gateway"},
		{"service missing", func(in *model.Input) { in.Services = nil },
			conditions.ResolvedRefs, conditions.ReasonServiceNotFound, "spec.service"},
		{"port missing", func(in *model.Input) { in.APIRule.Spec.Service.Port = 1 },
			conditions.ResolvedRefs, conditions.ReasonPortNotFound, "spec.service.port"},
		{"service without selector", func(in *model.Input) {
			in.Services[types.NamespacedName{Namespace: "shop", Name: "api"}] = model.Service{Namespace: "shop", Name: "api", Ports: []int32{8000}}
		}, conditions.ResolvedRefs, conditions.ReasonNoSelector, "spec.service"},
		{"short host on a gateway without a single wildcard", func(in *model.Input) {
			in.APIRule.Spec.Hosts = []apiv2.Host{"api"}
			in.Gateway.Hosts = []string{"*.example.com", "other.example.org"}
		}, conditions.ResolvedRefs, conditions.ReasonHostNotResolvable, "spec.hosts[0]"},
		{"ipRestriction on a Gateway of another ingress gateway", func(in *model.Input) {
			in.APIRule.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
			in.Gateway.Selector = map[string]string{"istio": "partner-gateway"}
		}, conditions.Accepted, conditions.ReasonNotIngressGateway, "spec.ipRestriction"},
		{"ipRestriction without an ingress gateway selector", func(in *model.Input) {
			in.APIRule.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
			in.Options.IngressGatewaySelector, in.Gateway.Selector = nil, nil
		}, conditions.Accepted, conditions.ReasonInvalidSpec, "spec.ipRestriction"},
		{"reserved identity header", func(in *model.Input) {
			in.APIRule.Spec.Rules[0].Request = &apiv2.Request{Headers: map[string]string{"X-Client-Cert-Subject": "CN=admin"}}
		}, conditions.Accepted, conditions.ReasonInvalidSpec, "spec.rules[0].request.headers[X-Client-Cert-Subject]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := withMeta(input(noAuthRule("/a", "GET")))
			c.change(&in)
			out := pipeline.Run(in)
			if len(out.Objects.AuthorizationPolicies)+len(out.Objects.VirtualServices) > 0 {
				t.Errorf("objects generated despite findings")
			}
			if len(out.Findings) != 1 {
				t.Fatalf("findings %v, want exactly one", out.Findings)
			}
			f := out.Findings[0]
			if f.Condition != c.condition || f.Reason != c.reason || f.Field.String() != c.field {
				t.Errorf("finding %+v, want %s/%s on %s", f, c.condition, c.reason, c.field)
			}
		})
	}
}

func TestShortHostAndDefaultGateway(t *testing.T) {
	in := withMeta(input(noAuthRule("/a", "GET")))
	in.APIRule.Spec.Gateway = nil
	in.Options.DefaultGateway = "istio-system/public"
	in.APIRule.Spec.Hosts = []apiv2.Host{"api", "*.api.example.com"}
	out := pipeline.Run(in)
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	vs := out.Objects.VirtualServices[0]
	if got := strings.Join(vs.Spec.Hosts, ","); got != "api.example.com,*.api.example.com" {
		t.Errorf("hosts %s", got)
	}
	if got := vs.Spec.Http[1].Headers.Request.Set["x-forwarded-host"]; got != "%REQ(:AUTHORITY)%" {
		t.Errorf("x-forwarded-host with several hosts = %q", got)
	}
}

func TestHostClaims(t *testing.T) {
	other := types.NamespacedName{Namespace: "shop", Name: "other"}
	earlier := metav1.NewTime(time.Unix(1000, 0))
	later := metav1.NewTime(time.Unix(3000, 0))
	cases := []struct {
		name     string
		served   []string
		claim    model.HostClaim
		severity check.Severity
		reason   conditions.Reason
	}{
		{"another APIRule serves the host", nil,
			model.HostClaim{APIRule: &other, Since: later}, check.Error, conditions.ReasonHostConflict},
		{"both serve it; the older one wins", []string{"api.example.com"},
			model.HostClaim{APIRule: &other, Since: earlier}, check.Error, conditions.ReasonHostConflict},
		{"both serve it; this one is older", []string{"api.example.com"},
			model.HostClaim{APIRule: &other, Since: later}, "", ""},
		{"an unmanaged route serves the host", nil,
			model.HostClaim{VirtualService: other, Since: later}, check.Error, conditions.ReasonHostConflict},
		{"an unmanaged route came later", []string{"api.example.com"},
			model.HostClaim{VirtualService: other, Since: later}, check.Warning, conditions.ReasonHostShared},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := withMeta(input(noAuthRule("/a", "GET")))
			in.APIRule.CreationTimestamp = metav1.NewTime(time.Unix(2000, 0))
			in.ServedHosts = c.served
			in.HostClaims = map[string][]model.HostClaim{"api.example.com": {c.claim}}
			out := pipeline.Run(in)
			if c.severity == "" {
				if len(out.Findings) > 0 {
					t.Fatalf("unexpected findings: %s", out.Findings.Summary())
				}
				return
			}
			if len(out.Findings) != 1 || out.Findings[0].Severity != c.severity || out.Findings[0].Reason != c.reason ||
				out.Findings[0].Field.String() != "spec.hosts[0]" {
				t.Fatalf("findings %+v, want one %s %s on spec.hosts[0]", out.Findings, c.severity, c.reason)
			}
			if (c.severity == check.Error) != (len(out.Objects.VirtualServices) == 0) {
				t.Errorf("objects generated: %d VirtualServices", len(out.Objects.VirtualServices))
			}
		})
	}
}
