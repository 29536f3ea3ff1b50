// Package validate holds the semantic checks of an APIRule that the admission webhook, the
// reconciler and apirulectl validate share: rule shadowing, paths and hosts Istio would
// reject, hosts claimed by another APIRule, and warnings about risky but legal input. It is
// pure: it reads nothing from the cluster; callers pass in what they read.
//
// Every problem names the field it is about and says how to fix it.
package validate

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// Problem is one finding of validation, tied to the field that causes it.
type Problem struct {
	// Severity is Error (the APIRule is refused) or Warning (accepted, but worth a look).
	Severity translate.Severity
	Reason   conditions.Reason
	Field    *field.Path
	// Value is the offending value, shown in the admission error.
	Value any
	// Message says what is wrong and how to fix it.
	Message string
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s", p.Field, p.Message) }

// Problems is the result of a validation.
type Problems []Problem

func (ps *Problems) fail(reason conditions.Reason, path *field.Path, value any, format string, args ...any) {
	*ps = append(*ps, Problem{Severity: translate.Error, Reason: reason, Field: path, Value: value, Message: fmt.Sprintf(format, args...)})
}

func (ps *Problems) warn(reason conditions.Reason, path *field.Path, value any, format string, args ...any) {
	*ps = append(*ps, Problem{Severity: translate.Warning, Reason: reason, Field: path, Value: value, Message: fmt.Sprintf(format, args...)})
}

// HasErrors says whether any problem refuses the APIRule.
func (ps Problems) HasErrors() bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return p.Severity == translate.Error })
}

// ErrorList returns the errors as a field.ErrorList, the form the API server reports them in.
func (ps Problems) ErrorList() field.ErrorList {
	var out field.ErrorList
	for _, p := range ps {
		if p.Severity == translate.Error {
			out = append(out, field.Invalid(p.Field, p.Value, p.Message))
		}
	}
	return out
}

// Warnings returns the warnings, each prefixed with its field path.
func (ps Problems) Warnings() []string {
	var out []string
	for _, p := range ps {
		if p.Severity == translate.Warning {
			out = append(out, p.String())
		}
	}
	return out
}

// Findings returns the problems as translation findings on the Accepted condition, so the
// reconciler and apirulectl report them like the translator's own.
func (ps Problems) Findings() translate.Findings {
	out := make(translate.Findings, 0, len(ps))
	for _, p := range ps {
		out = append(out, translate.Finding{Severity: p.Severity, Condition: conditions.Accepted, Reason: p.Reason, Field: p.Field, Message: p.Message})
	}
	return out
}

// Spec checks what the spec alone decides and the translator does not already check: rule
// shadowing, and paths and hosts Istio would reject. The reconciler and the webhook both run
// it.
func Spec(rule *apiv2.APIRule) Problems {
	var ps Problems
	specPath := field.NewPath("spec")
	checkHosts(rule.Spec.Hosts, specPath.Child("hosts"), &ps)
	patterns := checkPaths(rule.Spec.Rules, specPath.Child("rules"), &ps)
	checkShadowing(rule.Spec.Rules, patterns, specPath.Child("rules"), &ps)
	return ps
}

// Translate is translate.Translate with Spec's checks added: an APIRule that fails them gets no
// objects, exactly as if the translator had refused it. The reconciler and apirulectl call
// it, so both report what the webhook would have refused.
func Translate(in translate.Input) translate.Output {
	out := translate.Translate(in)
	ps := Spec(in.APIRule)
	if len(ps) == 0 {
		return out
	}
	if ps.HasErrors() {
		out.Objects = translate.Objects{}
	}
	// Spec's findings go first: they are about the spec itself, and the Accepted condition
	// takes its reason from the first finding.
	out.Findings = append(ps.Findings(), out.Findings...)
	return out
}

// Admission is everything the webhook checks that depends on the APIRule and the operator
// options alone: Spec, the translator's checks of the spec (issuer configured differently,
// unsupported fields, no gateway), and the warnings about risky input. Host claims and
// extension providers need the cluster; see HostConflicts and Providers.
func Admission(rule *apiv2.APIRule, opts translate.Options) Problems {
	ps := Spec(rule)
	ps = append(ps, specFindings(rule, opts)...)
	ps = append(ps, Risky(rule)...)
	return ps
}

// specFindings runs the translator with nothing resolved and keeps what it says about the
// Accepted condition: those findings depend on the spec and the options only. Findings
// about references (ResolvedRefs) are left to the reconciler: the referenced objects may be
// created after the APIRule.
func specFindings(rule *apiv2.APIRule, opts translate.Options) Problems {
	out := translate.Translate(translate.Input{APIRule: rule, Options: opts})
	var ps Problems
	for _, f := range out.Findings {
		if f.Condition != conditions.Accepted {
			continue
		}
		ps = append(ps, Problem{Severity: f.Severity, Reason: f.Reason, Field: f.Field, Value: valueAt(rule, f.Field), Message: f.Message})
	}
	return ps
}

// valueAt returns a short form of the value the translator's finding points at; the field
// path and message carry the detail.
func valueAt(rule *apiv2.APIRule, path *field.Path) any {
	s := path.String()
	for i, h := range rule.Spec.Hosts {
		if s == fmt.Sprintf("spec.hosts[%d]", i) {
			return string(h)
		}
	}
	if s == "spec.gateway" && rule.Spec.Gateway != nil {
		return string(*rule.Spec.Gateway)
	}
	return ""
}

// checkHosts refuses hosts that Istio's VirtualService validation refuses and the CRD schema
// lets through: a top-level label made of digits only (Istio reads it as an IP address and
// refuses it as a domain), and names longer than 255 characters. It repeats the schema's
// shape check so that apirulectl, which runs without an API server, refuses the same hosts.
func checkHosts(hosts []apiv2.Host, hostsPath *field.Path, ps *Problems) {
	for i, h := range hosts {
		host := string(h)
		path := hostsPath.Index(i)
		name, wildcard := strings.CutPrefix(host, "*.")
		labels := strings.Split(name, ".")
		var bad string
		for _, l := range labels {
			if !isDNSLabel(l) {
				bad = l
				break
			}
		}
		switch {
		case len(host) > 255:
			ps.fail(conditions.ReasonInvalidHost, path, host, "host is %d characters long; Istio accepts at most 255", len(host))
		case bad != "" || (wildcard && len(labels) < 2):
			ps.fail(conditions.ReasonInvalidHost, path, host,
				"host must be a lower-case DNS name such as api.example.com, a wildcard such as *.example.com, or a short name such as api; label %q is not a DNS label", bad)
		case len(labels) > 1 && allDigits(labels[len(labels)-1]):
			ps.fail(conditions.ReasonInvalidHost, path, host,
				"Istio refuses a host whose last label is all digits (%q): it is not a domain name; use a DNS name, IP addresses cannot be APIRule hosts",
				labels[len(labels)-1])
		}
	}
}

func isDNSLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !('a' <= c && c <= 'z') && !('0' <= c && c <= '9') && c != '-' {
			return false
		}
	}
	return true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// checkPaths parses every rule path; a path that does not parse is refused, and its pattern is
// left out (nil) of the shadowing check.
func checkPaths(rules []apiv2.Rule, rulesPath *field.Path, ps *Problems) []*pathPattern {
	out := make([]*pathPattern, len(rules))
	for i, r := range rules {
		p, err := parsePath(r.Path)
		if err != nil {
			ps.fail(conditions.ReasonInvalidPath, rulesPath.Index(i).Child("path"), r.Path, "path %s", err)
			continue
		}
		out[i] = &p
	}
	return out
}

// checkShadowing finds rules that an earlier rule hides. Rules are matched in order, first
// match wins, for routing and for authorization alike; rule j is shadowed for method m when an
// earlier rule with m matches every path j matches. A rule shadowed for all its methods is
// never reached: an error. A rule shadowed for some methods still serves the others, so that
// is a warning; except when the earlier rule is noAuth and the later one is not, because then
// requests the author meant to protect are let through without authentication: an error.
func checkShadowing(rules []apiv2.Rule, patterns []*pathPattern, rulesPath *field.Path, ps *Problems) {
	for j, later := range rules {
		if patterns[j] == nil {
			continue
		}
		type hidden struct {
			method apiv2.HTTPMethod
			by     int
		}
		var shadowed []hidden
		opened := false
		for _, m := range later.Methods {
			for i := 0; i < j; i++ {
				if patterns[i] == nil || !slices.Contains(rules[i].Methods, m) || !patterns[i].covers(*patterns[j]) {
					continue
				}
				shadowed = append(shadowed, hidden{method: m, by: i})
				if rules[i].Strategy() == "noAuth" && later.Strategy() != "noAuth" {
					opened = true
				}
				break
			}
		}
		if len(shadowed) == 0 {
			continue
		}
		// Group the methods by the rule that hides them, in rule order, for one message.
		byRule := map[int][]string{}
		var earlier []int
		for _, s := range shadowed {
			if _, ok := byRule[s.by]; !ok {
				earlier = append(earlier, s.by)
			}
			byRule[s.by] = append(byRule[s.by], string(s.method))
		}
		slices.Sort(earlier)
		var because, names, methods []string
		for _, i := range earlier {
			because = append(because, fmt.Sprintf("for %s because spec.rules[%d] (%s %s, %s) matches first",
				strings.Join(byRule[i], ","), i, strings.Join(methodStrings(rules[i].Methods), ","), rules[i].Path, rules[i].Strategy()))
			names = append(names, fmt.Sprintf("rule %d", i))
			methods = append(methods, byRule[i]...)
		}
		path := rulesPath.Index(j).Child("path")
		fix := fmt.Sprintf("move it before %s or narrow %s", strings.Join(names, " and "), strings.Join(names, " and "))
		switch {
		case len(shadowed) == len(later.Methods):
			ps.fail(conditions.ReasonRuleShadowed, path, later.Path, "spec.rules[%d] is never reached %s; %s",
				j, strings.Join(because, "; "), fix)
		case opened:
			ps.fail(conditions.ReasonRuleShadowed, path, later.Path,
				"spec.rules[%d] (%s) is never reached %s, so those requests pass without authentication; remove %s here, %s",
				j, later.Strategy(), strings.Join(because, "; "), strings.Join(methods, ","), fix)
		default:
			ps.warn(conditions.ReasonRulePartlyShadowed, path, later.Path,
				"spec.rules[%d] is never reached %s; remove %s here, %s", j, strings.Join(because, "; "), strings.Join(methods, ","), fix)
		}
	}
}

func methodStrings(methods []apiv2.HTTPMethod) []string {
	out := make([]string, len(methods))
	for i, m := range methods {
		out[i] = string(m)
	}
	return out
}

// Risky returns warnings about input that is legal but often a mistake: noAuth on a path that
// matches everything, a JWKS fetched over plain http, and wildcard hosts.
func Risky(rule *apiv2.APIRule) Problems {
	var ps Problems
	specPath := field.NewPath("spec")
	for i, h := range rule.Spec.Hosts {
		if strings.HasPrefix(string(h), "*.") {
			ps.warn(conditions.ReasonWildcardHost, specPath.Child("hosts").Index(i), string(h),
				"wildcard host %s exposes these rules on every name under %s; list the hosts unless that is intended",
				h, strings.TrimPrefix(string(h), "*."))
		}
	}
	for i, r := range rule.Spec.Rules {
		rulePath := specPath.Child("rules").Index(i)
		if r.NoAuth != nil && *r.NoAuth {
			if p, err := parsePath(r.Path); err == nil && p.matchesEverything() {
				ps.warn(conditions.ReasonUnauthenticatedCatchAll, rulePath.Child("path"), r.Path,
					"noAuth on %s lets every %s request through without authentication, also to paths added later; list the public paths instead",
					r.Path, strings.Join(methodStrings(r.Methods), ","))
			}
		}
		for _, c := range jwtConfigs(r, rulePath) {
			for j, a := range c.cfg.Authentications {
				if a.JWKSURI != nil && strings.HasPrefix(strings.ToLower(*a.JWKSURI), "http://") {
					ps.warn(conditions.ReasonInsecureJWKSURI, c.path.Child("authentications").Index(j).Child("jwksUri"), *a.JWKSURI,
						"signing keys fetched over plain http can be replaced on the way, letting anyone forge tokens; use https")
				}
			}
		}
	}
	return ps
}

type jwtAt struct {
	cfg  *apiv2.JWTConfig
	path *field.Path
}

func jwtConfigs(r apiv2.Rule, rulePath *field.Path) []jwtAt {
	switch {
	case r.JWT != nil:
		return []jwtAt{{r.JWT, rulePath.Child("jwt")}}
	case r.ExtAuth != nil && r.ExtAuth.Restrictions != nil:
		return []jwtAt{{r.ExtAuth.Restrictions, rulePath.Child("extAuth", "restrictions")}}
	}
	return nil
}

// Providers warns about extAuth authorizers that the mesh config does not declare as ext-authz
// providers. It is a warning at admission, not an error: the mesh config may be updated after
// the APIRule; until then the reconciler reports ExtensionProviderNotFound and serves nothing
// new. mesh is nil when the mesh config was not found.
func Providers(rule *apiv2.APIRule, mesh *translate.MeshConfig) Problems {
	var ps Problems
	for i, r := range rule.Spec.Rules {
		if r.ExtAuth == nil {
			continue
		}
		for j, name := range r.ExtAuth.Authorizers {
			path := field.NewPath("spec", "rules").Index(i).Child("extAuth", "authorizers").Index(j)
			kind, ok := translate.ProviderKind(""), false
			if mesh != nil {
				kind, ok = mesh.ExtensionProviders[name]
			}
			switch {
			case mesh == nil:
				ps.warn(conditions.ReasonMeshConfigNotFound, path, name,
					"the Istio mesh config was not found, so provider %q cannot be checked; the rule is not served until the mesh config declares it", name)
			case !ok:
				ps.warn(conditions.ReasonProviderNotFound, path, name,
					"extension provider %q is not in the mesh config, so the rule is not served until it is; declare it or use one of %s",
					name, extAuthzNames(mesh))
			case kind != translate.ProviderExtAuthzHTTP && kind != translate.ProviderExtAuthzGRPC:
				ps.warn(conditions.ReasonProviderNotExtAuthz, path, name,
					"extension provider %q is not envoyExtAuthzHttp or envoyExtAuthzGrpc; use one of %s", name, extAuthzNames(mesh))
			}
		}
	}
	return ps
}

func extAuthzNames(mesh *translate.MeshConfig) string {
	var names []string
	for name, kind := range mesh.ExtensionProviders {
		if kind == translate.ProviderExtAuthzHTTP || kind == translate.ProviderExtAuthzGRPC {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return "none (the mesh config declares no ext-authz provider)"
	}
	slices.Sort(names)
	return "[" + strings.Join(names, ", ") + "]"
}
