package translate

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networkingv1 "istio.io/api/networking/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// corsResponseHeaders are removed from every response, so the browser sees only the CORS
// policy of the APIRule and never one the workload sends on its own.
var corsResponseHeaders = []string{
	"Access-Control-Allow-Credentials",
	"Access-Control-Allow-Headers",
	"Access-Control-Allow-Methods",
	"Access-Control-Allow-Origin",
	"Access-Control-Expose-Headers",
	"Access-Control-Max-Age",
}

// virtualService builds the single VirtualService of the APIRule: one HTTP route per rule, in
// rule order, so the first matching rule routes the request.
func virtualService(in model.Input, gateway types.NamespacedName, plans []rulePlan, hosts []string) *networkingclientv1.VirtualService {
	spec := &in.APIRule.Spec
	routes := make([]*networkingv1.HTTPRoute, 0, len(plans)+1)
	routes = append(routes, ambiguousPathRoute(restrictedPerRule(spec)))
	for _, p := range plans {
		routes = append(routes, httpRoute(spec, p, hosts))
	}
	return &networkingclientv1.VirtualService{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingclientv1.SchemeGroupVersion.String(), Kind: "VirtualService"},
		ObjectMeta: objectMeta(in, model.RouteName(in.Owner()), in.APIRule.Namespace),
		Spec: networkingv1.VirtualService{
			Hosts:    hosts,
			Gateways: []string{gateway.String()},
			Http:     routes,
		},
	}
}

func httpRoute(spec *apiv2.APIRuleSpec, p rulePlan, hosts []string) *networkingv1.HTTPRoute {
	timeout := uint32(model.DefaultTimeoutSeconds)
	switch {
	case p.rule.Timeout != nil:
		timeout = uint32(*p.rule.Timeout)
	case spec.Timeout != nil:
		timeout = uint32(*spec.Timeout)
	}
	return &networkingv1.HTTPRoute{
		Name: fmt.Sprintf("rule-%d", p.index),
		Match: []*networkingv1.HTTPMatchRequest{{
			Uri:    uriMatch(p.rule.Path),
			Method: methodMatch(p.rule.Methods),
		}},
		Route: []*networkingv1.HTTPRouteDestination{{
			Destination: &networkingv1.Destination{
				Host: fmt.Sprintf("%s.%s.svc.cluster.local", p.backend.Name, p.backend.Namespace),
				Port: &networkingv1.PortSelector{Number: p.port},
			},
		}},
		Timeout: durationpb.New(durationSeconds(timeout)),
		Headers: &networkingv1.Headers{
			Request:  requestHeaderOperations(spec, p, hosts),
			Response: &networkingv1.Headers_HeaderOperations{Remove: corsResponseHeaders},
		},
		CorsPolicy: corsPolicy(spec.CorsPolicy),
	}
}

// AmbiguousPathRoute is the name of the first route of every VirtualService.
const AmbiguousPathRoute = "ambiguous-path"

// ambiguousPathRegex matches request paths that a backend may read as another path than the
// gateway routed: a doubled slash (Istio's default normalization does not merge slashes) and
// an encoded slash or backslash, in either hex case (Envoy keeps them encoded; a backend that
// decodes them sees other segments). Escapes of unreserved characters and dot segments need
// no such route: the gateway decodes and removes them before routing.
const ambiguousPathRegex = `.*(//|%2[Ff]|%5[Cc]|\\).*`

// restrictedPathRegex is ambiguousPathRegex for an APIRule whose rules carry their own IP
// restrictions, which the gateway's DENY policy scopes by path: it also refuses '*' and '='.
// Envoy's URI templates, which that policy's {*} and {**} paths become, match '*' since Envoy
// 1.35 and '=' not in every version, while the route's regexes never match '*' and always
// match '='. A path with either could be routed past one rule and yet be excluded
// from the next rule's restriction as the first rule's path, reaching the restricted rule
// unrestricted (GET /api/x* past /api/{**} to a restricted /*).
const restrictedPathRegex = `.*(//|%2[Ff]|%5[Cc]|\\|\*|=).*`

// restrictedPerRule says whether a rule has an IP restriction of its own, which makes the
// gateway's DENY policy name paths.
func restrictedPerRule(spec *apiv2.APIRuleSpec) bool {
	for _, r := range spec.Rules {
		if r.IPRestriction != nil {
			return true
		}
	}
	return false
}

// ambiguousPathRoute answers 400 to every ambiguous request path before any rule is tried, so
// no spelling of a protected path reaches a later, more open rule while the backend serves
// the protected resource.
func ambiguousPathRoute(restrictedPerRule bool) *networkingv1.HTTPRoute {
	regex, body := ambiguousPathRegex, "ambiguous request path: doubled or encoded slashes are refused\n"
	if restrictedPerRule {
		regex, body = restrictedPathRegex, "ambiguous request path: doubled or encoded slashes, '*' and '=' are refused\n"
	}
	return &networkingv1.HTTPRoute{
		Name:  AmbiguousPathRoute,
		Match: []*networkingv1.HTTPMatchRequest{{Uri: &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: regex}}}},
		DirectResponse: &networkingv1.HTTPDirectResponse{
			Status: 400,
			Body:   &networkingv1.HTTPBody{Specifier: &networkingv1.HTTPBody_String_{String_: body}},
		},
	}
}

// methodMatch matches one method exactly, several by an anchored alternation.
func methodMatch(methods []apiv2.HTTPMethod) *networkingv1.StringMatch {
	sorted := sortedMethods(methods)
	if len(sorted) == 1 {
		return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: sorted[0]}}
	}
	return &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: "^(" + strings.Join(sorted, "|") + ")$"}}
}

// requestHeaderOperations sets the forwarded request's headers. With spec.mtls it also sets
// the client identity headers from the TLS session, or removes them when the identity is not
// forwarded: either way the backend never sees a value the client wrote.
func requestHeaderOperations(spec *apiv2.APIRuleSpec, p rulePlan, hosts []string) *networkingv1.Headers_HeaderOperations {
	ops := &networkingv1.Headers_HeaderOperations{Set: requestHeaders(p.rule.Request, hosts)}
	ops.Set[model.RouteHeader] = p.token
	names := make([]string, 0, len(model.ClientIdentityHeaders))
	for name := range model.ClientIdentityHeaders {
		names = append(names, name)
	}
	sort.Strings(names)
	// The identity headers reach the backend only as the gateway saw the client certificate:
	// set from the TLS session, or removed. A route without mTLS removes them too, so a client
	// cannot forge them through it on a workload that an mTLS APIRule also serves.
	for _, name := range names {
		if spec.MTLS != nil && forwardsClientIdentity(spec.MTLS) {
			ops.Set[name] = model.ClientIdentityHeaders[name]
		} else {
			ops.Remove = append(ops.Remove, name)
		}
	}
	return ops
}

// requestHeaders returns the headers set on forwarded requests: x-forwarded-host, the rule's
// headers, and a Cookie header built from the rule's cookies in name order.
func requestHeaders(req *apiv2.Request, hosts []string) map[string]string {
	forwardedHost := "%REQ(:AUTHORITY)%"
	if len(hosts) == 1 && !strings.HasPrefix(hosts[0], "*") {
		forwardedHost = hosts[0]
	}
	set := map[string]string{"x-forwarded-host": forwardedHost}
	if req == nil {
		return set
	}
	for name, value := range req.Headers {
		set[name] = value
	}
	if len(req.Cookies) > 0 {
		names := make([]string, 0, len(req.Cookies))
		for name := range req.Cookies {
			names = append(names, name)
		}
		sort.Strings(names)
		pairs := make([]string, len(names))
		for i, name := range names {
			pairs[i] = name + "=" + req.Cookies[name]
		}
		set["Cookie"] = strings.Join(pairs, "; ")
	}
	return set
}

// corsPolicy translates the APIRule's CORS policy. Without allowOrigins there is no policy,
// as in Kyma's APIRule.
func corsPolicy(p *apiv2.CorsPolicy) *networkingv1.CorsPolicy {
	if p == nil || len(p.AllowOrigins) == 0 {
		return nil
	}
	out := &networkingv1.CorsPolicy{
		AllowMethods:  p.AllowMethods,
		AllowHeaders:  p.AllowHeaders,
		ExposeHeaders: p.ExposeHeaders,
	}
	for _, o := range p.AllowOrigins {
		switch {
		case o.Exact != nil:
			out.AllowOrigins = append(out.AllowOrigins, &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Exact{Exact: *o.Exact}})
		case o.Prefix != nil:
			out.AllowOrigins = append(out.AllowOrigins, &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Prefix{Prefix: *o.Prefix}})
		case o.Regex != nil:
			out.AllowOrigins = append(out.AllowOrigins, &networkingv1.StringMatch{MatchType: &networkingv1.StringMatch_Regex{Regex: *o.Regex}})
		}
	}
	if p.AllowCredentials != nil {
		out.AllowCredentials = wrapperspb.Bool(*p.AllowCredentials)
	}
	if p.MaxAge != nil {
		out.MaxAge = durationpb.New(durationSeconds(uint32(min(*p.MaxAge, uint64(^uint32(0))))))
	}
	return out
}

func durationSeconds(s uint32) time.Duration { return time.Duration(s) * time.Second }
