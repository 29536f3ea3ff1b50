package envoyeval

import (
	"fmt"
	"sort"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// RBACFilterName is the dynamic-metadata namespace the RBAC filter writes its shadow results to.
const RBACFilterName = "envoy.filters.http.rbac"

// RBACDecision is the outcome of one RBAC filter.
type RBACDecision struct {
	// Denied is true when the enforced rules reject the request (403).
	Denied bool
	// Policy is the first enforced policy (in name order) that matched, if any.
	Policy string
	// ShadowPolicy is the first shadow policy that matched, if any.
	ShadowPolicy string
}

// EvalRBACFilter runs an envoy.filters.http.rbac filter: the enforced rules decide, the shadow
// rules only write dynamic metadata (Istio gates ext_authz on that metadata).
func EvalRBACFilter(cfg *rbacfilterv3.RBAC, s *Stream) (RBACDecision, error) {
	var d RBACDecision
	if cfg.GetMatcher() != nil || cfg.GetShadowMatcher() != nil {
		return d, fmt.Errorf("RBAC matcher trees are not modelled")
	}
	if sh := cfg.GetShadowRules(); sh != nil {
		matched, policy, err := evalRBAC(sh, s)
		if err != nil {
			return d, fmt.Errorf("shadow rules: %w", err)
		}
		d.ShadowPolicy = policy
		result := "allowed"
		if (sh.GetAction() == rbacv3.RBAC_ALLOW && !matched) || (sh.GetAction() == rbacv3.RBAC_DENY && matched) {
			result = "denied"
		}
		prefix := cfg.GetShadowRulesStatPrefix()
		if policy != "" {
			s.SetMetadata(RBACFilterName, prefix+"shadow_effective_policy_id", structpb.NewStringValue(policy))
		}
		s.SetMetadata(RBACFilterName, prefix+"shadow_engine_result", structpb.NewStringValue(result))
	}
	rules := cfg.GetRules()
	if rules == nil {
		return d, nil
	}
	matched, policy, err := evalRBAC(rules, s)
	if err != nil {
		return d, err
	}
	d.Policy = policy
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		d.Denied = !matched
	case rbacv3.RBAC_DENY:
		d.Denied = matched
	case rbacv3.RBAC_LOG:
	default:
		return d, fmt.Errorf("RBAC action %v is not modelled", rules.GetAction())
	}
	return d, nil
}

// evalRBAC reports whether any policy matches and the first matching policy by name (Envoy
// keeps policies in an ordered map).
func evalRBAC(r *rbacv3.RBAC, s *Stream) (bool, string, error) {
	names := make([]string, 0, len(r.GetPolicies()))
	for n := range r.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ok, err := MatchPolicy(r.GetPolicies()[n], s)
		if err != nil {
			return false, "", fmt.Errorf("policy %s: %w", n, err)
		}
		if ok {
			return true, n, nil
		}
	}
	return false, "", nil
}

// MatchPolicy: some permission and some principal must match.
func MatchPolicy(p *rbacv3.Policy, s *Stream) (bool, error) {
	if p.GetCondition() != nil || p.GetCheckedCondition() != nil {
		return false, fmt.Errorf("CEL conditions are not modelled")
	}
	perm, err := anyOf(p.GetPermissions(), func(x *rbacv3.Permission) (bool, error) { return MatchPermission(x, s) })
	if err != nil || !perm {
		return false, err
	}
	return anyOf(p.GetPrincipals(), func(x *rbacv3.Principal) (bool, error) { return MatchPrincipal(x, s) })
}

func anyOf[T any](xs []T, f func(T) (bool, error)) (bool, error) {
	for _, x := range xs {
		ok, err := f(x)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func allOf[T any](xs []T, f func(T) (bool, error)) (bool, error) {
	for _, x := range xs {
		ok, err := f(x)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// MatchPermission evaluates the request-side half of a policy.
func MatchPermission(p *rbacv3.Permission, s *Stream) (bool, error) {
	self := func(x *rbacv3.Permission) (bool, error) { return MatchPermission(x, s) }
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return r.Any, nil
	case *rbacv3.Permission_AndRules:
		return allOf(r.AndRules.GetRules(), self)
	case *rbacv3.Permission_OrRules:
		return anyOf(r.OrRules.GetRules(), self)
	case *rbacv3.Permission_NotRule:
		ok, err := MatchPermission(r.NotRule, s)
		return !ok, err
	case *rbacv3.Permission_Header:
		return MatchHeader(r.Header, s.Headers)
	case *rbacv3.Permission_UrlPath:
		if r.UrlPath.GetPath() == nil {
			return false, fmt.Errorf("url_path without a string matcher")
		}
		return MatchString(r.UrlPath.GetPath(), s.PathWithoutQuery())
	case *rbacv3.Permission_DestinationPort:
		return int(r.DestinationPort) == s.Port, nil
	case *rbacv3.Permission_DestinationPortRange:
		return int32(s.Port) >= r.DestinationPortRange.GetStart() && int32(s.Port) < r.DestinationPortRange.GetEnd(), nil
	case *rbacv3.Permission_RequestedServerName:
		return MatchString(r.RequestedServerName, s.SNI)
	case *rbacv3.Permission_Metadata:
		return MatchMetadata(r.Metadata, s.Metadata)
	case *rbacv3.Permission_UriTemplate:
		var cfg uritemplatev3.UriTemplateMatchConfig
		if err := r.UriTemplate.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			return false, fmt.Errorf("uri_template %s: %w", r.UriTemplate.GetName(), err)
		}
		re, err := URITemplateRegex(cfg.GetPathTemplate())
		if err != nil {
			return false, err
		}
		return fullMatch(re, s.PathWithoutQuery())
	default:
		return false, fmt.Errorf("permission %T is not modelled", r)
	}
}

// MatchPrincipal evaluates the caller-side half of a policy.
func MatchPrincipal(p *rbacv3.Principal, s *Stream) (bool, error) {
	self := func(x *rbacv3.Principal) (bool, error) { return MatchPrincipal(x, s) }
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return r.Any, nil
	case *rbacv3.Principal_AndIds:
		return allOf(r.AndIds.GetIds(), self)
	case *rbacv3.Principal_OrIds:
		return anyOf(r.OrIds.GetIds(), self)
	case *rbacv3.Principal_NotId:
		ok, err := MatchPrincipal(r.NotId, s)
		return !ok, err
	case *rbacv3.Principal_Authenticated_:
		// Envoy matches the URI SAN of the peer certificate, or its subject when it has none;
		// without a certificate nothing matches, not even an empty matcher.
		peer := peerName(s)
		if peer == "" {
			return false, nil
		}
		if r.Authenticated.GetPrincipalName() == nil {
			return true, nil
		}
		return MatchString(r.Authenticated.GetPrincipalName(), peer)
	case *rbacv3.Principal_DirectRemoteIp:
		return MatchCIDR(r.DirectRemoteIp, s.DirectRemoteIP)
	case *rbacv3.Principal_SourceIp:
		return MatchCIDR(r.SourceIp, s.DirectRemoteIP)
	case *rbacv3.Principal_RemoteIp:
		return MatchCIDR(r.RemoteIp, s.RemoteIP)
	case *rbacv3.Principal_Header:
		return MatchHeader(r.Header, s.Headers)
	case *rbacv3.Principal_UrlPath:
		return MatchString(r.UrlPath.GetPath(), s.PathWithoutQuery())
	case *rbacv3.Principal_Metadata:
		return MatchMetadata(r.Metadata, s.Metadata)
	case *rbacv3.Principal_FilterState:
		v, ok := s.FilterState[r.FilterState.GetKey()]
		if !ok {
			return false, nil
		}
		sm, isString := r.FilterState.GetMatcher().(*matcherv3.FilterStateMatcher_StringMatch)
		if !isString {
			return false, fmt.Errorf("filter_state matcher %T is not modelled", r.FilterState.GetMatcher())
		}
		return MatchString(sm.StringMatch, v)
	default:
		return false, fmt.Errorf("principal %T is not modelled", r)
	}
}

// peerName is what Envoy's "authenticated" principal compares: the peer certificate's URI
// SAN (spiffe://...), else its subject.
func peerName(s *Stream) string {
	if s.PeerPrincipal != "" {
		return "spiffe://" + s.PeerPrincipal
	}
	if c := s.PeerCert; c != nil {
		if c.URISAN != "" {
			return c.URISAN
		}
		return c.Subject
	}
	return ""
}

// uriLiteral is the character set Envoy's uri_template library lets a glob match: RFC 3986
// unreserved, pct-encoded, sub-delims, ':' and '@', with '=' and (since Envoy 1.34, runtime
// guard uri_template_match_on_asterisk, on by default) '*'.
const uriLiteral = `a-zA-Z0-9\-._~%!$&'()+,;:@=*`

// URITemplateRegex converts an Envoy uri_template path template to the regex Envoy matches
// the path (without query) against: '*' is one non-empty segment, '**' any rest including
// '/', literals match themselves. Named variables are not used by Istio and are refused.
func URITemplateRegex(tmpl string) (string, error) {
	if !strings.HasPrefix(tmpl, "/") {
		return "", fmt.Errorf("uri template %q does not start with /", tmpl)
	}
	var b strings.Builder
	rest := tmpl
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "**"):
			b.WriteString("[" + uriLiteral + "/]*")
			rest = rest[2:]
		case strings.HasPrefix(rest, "*"):
			b.WriteString("[" + uriLiteral + "]+")
			rest = rest[1:]
		case strings.HasPrefix(rest, "{"):
			return "", fmt.Errorf("uri template %q: variables are not modelled", tmpl)
		default:
			b.WriteString(regexpQuote(rest[:1]))
			rest = rest[1:]
		}
	}
	return b.String(), nil
}

func regexpQuote(s string) string {
	if strings.ContainsAny(s, `\.+*?()|[]{}^$`) {
		return `\` + s
	}
	return s
}
