package translate_test

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	securityv1 "istio.io/api/security/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
)

// denyPolicy returns the one DENY policy of an output, failing the test otherwise.
func denyPolicy(t *testing.T, out pipeline.Result) *securityclientv1.AuthorizationPolicy {
	t.Helper()
	var found []*securityclientv1.AuthorizationPolicy
	for _, ap := range out.Objects.AuthorizationPolicies {
		if ap.Spec.Action == securityv1.AuthorizationPolicy_DENY {
			found = append(found, ap)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d DENY policies (findings: %s), want one", len(found), out.Findings.Summary())
	}
	return found[0]
}

func trusting(in model.Input, proxies uint32) model.Input {
	in.Mesh = &model.MeshConfig{NumTrustedProxies: proxies}
	return in
}

func TestAPIRuleWideIPRestriction(t *testing.T) {
	in := trusting(withMeta(input(noAuthRule("/a", "GET"), noAuthRule("/b", "POST"))), 1)
	in.APIRule.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24", "2001:db8::/32"}, Deny: []apiv2.IPBlock{"203.0.113.128/25"}}
	out := pipeline.Run(in)
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	ap := denyPolicy(t, out)
	if ap.Namespace != "istio-system" || !maps.Equal(ap.Spec.Selector.MatchLabels, ingressSelector) || len(ap.OwnerReferences) != 0 {
		t.Errorf("DENY policy %s/%s selector %v ownerReferences %v; want it on the ingress gateway", ap.Namespace, ap.Name,
			ap.Spec.Selector, ap.OwnerReferences)
	}
	if len(ap.Spec.Rules) != 2 {
		t.Fatalf("rules %v, want one for the allow list and one for the deny list", ap.Spec.Rules)
	}
	allow, deny := ap.Spec.Rules[0], ap.Spec.Rules[1]
	if !slices.Equal(allow.From[0].Source.NotRemoteIpBlocks, []string{"203.0.113.0/24", "::ffff:203.0.113.0/120", "2001:db8::/32"}) ||
		!slices.Equal(deny.From[0].Source.RemoteIpBlocks, []string{"203.0.113.128/25", "::ffff:203.0.113.128/121"}) {
		t.Errorf("sources %v / %v", allow.From[0].Source, deny.From[0].Source)
	}
	for _, r := range ap.Spec.Rules {
		op := r.To[0].Operation
		if len(r.To) != 1 || !slices.Equal(op.Hosts, []string{"api.example.com", "api.example.com:*"}) || len(op.Paths)+len(op.Methods) > 0 {
			t.Errorf("operation %v, want every request for the APIRule's hosts", op)
		}
	}
}

func TestRuleIPRestrictionFollowsRouteOrder(t *testing.T) {
	restricted := noAuthRule("/api/{**}", "GET", "POST")
	restricted.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"10.0.0.0/8"}}
	in := trusting(withMeta(input(noAuthRule("/api/public", "GET"), restricted, noAuthRule("/*", "GET"))), 2)
	in.APIRule.Spec.IPRestriction = &apiv2.IPRestriction{Deny: []apiv2.IPBlock{"192.0.2.1"}}
	out := pipeline.Run(in)
	ap := denyPolicy(t, out)
	// Rule 1 has its own restriction, rules 0 and 2 keep the APIRule's.
	if len(ap.Spec.Rules) != 3 {
		t.Fatalf("%d rules, want one per rule: %v", len(ap.Spec.Rules), ap.Spec.Rules)
	}
	type want struct {
		remote, notRemote []string
		ops               []string
	}
	describe := func(r *securityv1.Rule) want {
		var ops []string
		for _, to := range r.To {
			op := to.Operation
			ops = append(ops, strings.Join(op.Methods, "|")+" "+strings.Join(op.Paths, "|")+" -"+strings.Join(op.NotPaths, "|"))
		}
		return want{r.From[0].Source.RemoteIpBlocks, r.From[0].Source.NotRemoteIpBlocks, ops}
	}
	wants := []want{
		{remote: []string{"192.0.2.1", "::ffff:192.0.2.1"}, ops: []string{"GET /api/public -"}},
		// GET on /api/public is routed by rule 0, so rule 1's restriction excludes it for GET only.
		{notRemote: []string{"10.0.0.0/8", "::ffff:10.0.0.0/104"}, ops: []string{"GET /api/{**} -/api/public", "POST /api/{**} -"}},
		{remote: []string{"192.0.2.1", "::ffff:192.0.2.1"}, ops: []string{"GET /* -/api/public|/api/{**}"}},
	}
	for i, r := range ap.Spec.Rules {
		got := describe(r)
		if !slices.Equal(got.remote, wants[i].remote) || !slices.Equal(got.notRemote, wants[i].notRemote) || !slices.Equal(got.ops, wants[i].ops) {
			t.Errorf("rule %d = %+v, want %+v", i, got, wants[i])
		}
	}
}

func TestUnrestrictedRulesGetNoDenyRule(t *testing.T) {
	restricted := noAuthRule("/admin", "GET")
	restricted.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"10.0.0.0/8"}}
	out := pipeline.Run(trusting(withMeta(input(noAuthRule("/public", "GET"), restricted)), 1))
	ap := denyPolicy(t, out)
	if len(ap.Spec.Rules) != 1 || ap.Spec.Rules[0].To[0].Operation.Paths[0] != "/admin" {
		t.Errorf("DENY rules %v, want only /admin's", ap.Spec.Rules)
	}
	if out := pipeline.Run(trusting(withMeta(input(noAuthRule("/public", "GET"))), 1)); len(out.Objects.AuthorizationPolicies) != 1 {
		t.Errorf("%d policies without any IP restriction, want only the workload's", len(out.Objects.AuthorizationPolicies))
	}
}

func TestTrustedProxiesWarning(t *testing.T) {
	one, zero := uint32(1), uint32(0)
	cases := []struct {
		name    string
		mesh    *model.MeshConfig
		pods    []model.IngressPod
		warning string
	}{
		{"mesh trusts one proxy", &model.MeshConfig{NumTrustedProxies: 1}, nil, ""},
		{"mesh trusts none", &model.MeshConfig{}, nil, "the mesh config trusts no proxies"},
		{"mesh config unknown", nil, nil, "the mesh config trusts no proxies"},
		{"Pod annotation overrides the mesh", &model.MeshConfig{}, []model.IngressPod{{Name: "gw-1", NumTrustedProxies: &one}}, ""},
		{"one Pod trusts none", &model.MeshConfig{NumTrustedProxies: 2}, []model.IngressPod{{Name: "gw-1"}, {Name: "gw-2", NumTrustedProxies: &zero}},
			"ingress gateway Pod gw-2 trusts no proxies"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := withMeta(input(noAuthRule("/a", "GET")))
			in.APIRule.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"10.0.0.0/8"}}
			in.Mesh, in.IngressPods = c.mesh, c.pods
			out := pipeline.Run(in)
			warnings := out.Findings.Warnings()
			if c.warning == "" {
				if len(warnings) > 0 {
					t.Errorf("warnings %v, want none", warnings)
				}
				return
			}
			if len(warnings) != 1 || warnings[0].Reason != conditions.ReasonNoTrustedProxies || !strings.HasPrefix(warnings[0].Message, c.warning) ||
				warnings[0].Field.String() != "spec.ipRestriction" {
				t.Errorf("warnings %v, want one %s starting %q", warnings, conditions.ReasonNoTrustedProxies, c.warning)
			}
			denyPolicy(t, out)
		})
	}
}

// Envoy keeps an IPv4-mapped X-Forwarded-For entry (::ffff:198.51.100.7) an IPv6 address and
// matches ranges only of the same IP version: every IPv4 block is listed with its mapped
// range, every mapped block with its IPv4 range, so a deny list refuses and an allow list
// admits either spelling of a client address. Other IPv6 blocks have no other spelling.
func TestIPBlocksListBothSpellingsOfIPv4(t *testing.T) {
	in := trusting(withMeta(input(noAuthRule("/a", "GET"))), 1)
	in.APIRule.Spec.IPRestriction = &apiv2.IPRestriction{
		Allow: []apiv2.IPBlock{"203.0.113.0/24", "198.51.100.7", "::ffff:192.0.2.0/120", "192.0.2.0/24", "2001:db8::/32", "0.0.0.0/0"},
		Deny:  []apiv2.IPBlock{"::ffff:c633:6400/120"},
	}
	out := pipeline.Run(in)
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	ap := denyPolicy(t, out)
	wantAllow := []string{"203.0.113.0/24", "::ffff:203.0.113.0/120", "198.51.100.7", "::ffff:198.51.100.7",
		"::ffff:192.0.2.0/120", "192.0.2.0/24", "2001:db8::/32", "0.0.0.0/0", "::ffff:0.0.0.0/96"}
	if got := ap.Spec.Rules[0].From[0].Source.NotRemoteIpBlocks; !slices.Equal(got, wantAllow) {
		t.Errorf("notRemoteIpBlocks %v, want %v", got, wantAllow)
	}
	if got := ap.Spec.Rules[1].From[0].Source.RemoteIpBlocks; !slices.Equal(got, []string{"::ffff:c633:6400/120", "198.51.100.0/24"}) {
		t.Errorf("remoteIpBlocks %v", got)
	}
}

// The route of a /* rule is a prefix match on "/", which also takes paths a URI template does
// not match: '[' and ']' (and '*' before Envoy 1.35) pass the gateway's normalization
// unescaped and are outside the template's character class. The rule's IP restriction must
// refuse those paths too, so its DENY rule may not spell /* as the template /{**}.
func TestIPRestrictionOfCatchAllCoversEveryPath(t *testing.T) {
	catchAll := noAuthRule("/*", "GET")
	catchAll.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"203.0.113.0/24"}}
	in := trusting(withMeta(input(noAuthRule("/public", "GET"), catchAll)), 1)
	out := pipeline.Run(in)
	if out.Findings.HasErrors() {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	ap := denyPolicy(t, out)
	denied := func(path string) bool {
		req := request{host: "api.example.com", method: "GET", path: path, client: netip.MustParseAddr("198.51.100.7")}
		return slices.ContainsFunc(ap.Spec.Rules, func(r *securityv1.Rule) bool { return ruleMatches(r, req, "") })
	}
	for _, path := range []string{"/a", "/x*", "/[a]", "/a/b*", "/public/x*"} {
		if !denied(path) {
			t.Errorf("a client outside the allow list reaches /* by GET %s: the DENY policy does not match it", path)
		}
	}
	if denied("/public") {
		t.Errorf("the restriction of /* refuses GET /public, which the earlier unrestricted rule serves")
	}
}

// Envoy's URI templates match '*' (since Envoy 1.35) and '=' (not in every version)
// differently from the route's regexes. GET /api/x* is not routed by /api/{**} (its regex
// leaves out '*'), so it would reach the restricted /*, whose DENY rule excludes /api/{**},
// which on Envoy 1.35 matches /api/x*: the client would pass unrestricted. Every APIRule
// answers 400 to '*' (and '[', ']') before any rule; one whose rules are restricted on their
// own also to '='.
func TestPerRuleRestrictionRefusesTemplateAmbiguousPaths(t *testing.T) {
	catchAll := noAuthRule("/*", "GET")
	catchAll.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"10.0.0.0/8"}}
	out := pipeline.Run(trusting(withMeta(input(noAuthRule("/api/{**}", "GET"), catchAll)), 1))
	if out.Findings.HasErrors() {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	vs := out.Objects.VirtualServices[0]
	for _, path := range []string{"/api/x*", "/api/a=b", "/x*"} {
		if rule, _, _ := routeOf(vs, path, "GET"); rule != refused {
			t.Errorf("GET %s is routed by rule %d; with per-rule restrictions it must be refused before any rule", path, rule)
		}
	}
	for path, want := range map[string]int{"/api/x": 0, "/other": 1} {
		if rule, _, _ := routeOf(vs, path, "GET"); rule != want {
			t.Errorf("GET %s is routed by rule %d, want %d", path, rule, want)
		}
	}

	// Without restrictions of their own, the policy names no paths and '=' is served; '*' is
	// refused anyway: it would miss /api/{**} and reach the catch-all.
	open := pipeline.Run(trusting(withMeta(input(noAuthRule("/api/{**}", "GET"), noAuthRule("/*", "GET"))), 1))
	for path, want := range map[string]int{"/api/a=b": 0, "/api/x*": refused, "/api/[x]": refused} {
		if rule, _, _ := routeOf(open.Objects.VirtualServices[0], path, "GET"); rule != want {
			t.Errorf("GET %s is routed by rule %d without per-rule restrictions, want %d", path, rule, want)
		}
	}
}
