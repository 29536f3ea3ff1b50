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
	routes = append(routes, ambiguousPathRoute(model.RestrictedPerRule(spec)))
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
				Host: model.ServiceHost(types.NamespacedName{Namespace: p.backend.Namespace, Name: p.backend.Name}),
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
// route did. The route sees the path after the gateway's normalisation, which the mesh's
// pathNormalization chooses (see docs/security.md), so the regex refuses every spelling that
// some setting leaves in the path and that a backend may resolve otherwise:
//
//   - a doubled slash (BASE and NONE do not merge slashes; "//" even survives merging);
//   - an encoded slash or backslash in either hex case (kept unless DECODE_AND_MERGE_SLASHES),
//     and a raw backslash (kept by NONE);
//   - a "." or ".." segment: NONE keeps them all;
//   - a ';' or an encoded one, in either hex case: servlet containers and other backends cut
//     path parameters from every segment ("/api;x/orders" is "/api/orders", and a "..;"
//     written with escaped dots survives every setting to be resolved as ".."), so the
//     route and the backend would read two paths;
//   - an escape of an unreserved character (ALPHA, DIGIT, '-', '.', '_', '~'), which NONE
//     keeps and a backend decodes ("/%61pi" is "/api");
//   - a byte outside printable ASCII, which NONE keeps raw where every other setting escapes
//     it, so the rules' escaped spellings would not match it;
//   - '*', '[' and ']', which every setting keeps raw and which the rules' {*} and {**} do not
//     match (Istio's path template class): "/api/orders[1]" would miss "/api/{**}" and reach
//     a later catch-all, while a backend routing "/api/:id" serves the protected handler.
//
// Under BASE, MERGE_SLASHES and DECODE_AND_MERGE_SLASHES only slashes, semicolons, '*', '['
// and ']' can still reach the route; the others are removed by normalisation and cost nothing. Rule paths
// never need any of them: the path checks refuse each in a rule path ('=' only where it is
// refused here, with per-rule IP restrictions).
const ambiguousPathRegex = `.*(` + ambiguousSpellings + `).*`

// ambiguousSpellings is the alternation of the spellings above.
const ambiguousSpellings = `//|%2[Ff]|%5[Cc]|\\|/\.\.?(/|$)|;|%3[Bb]|\*|\[|\]|%(2[DdEe]|3[0-9]|4[1-9A-Fa-f]|5[0-9Aa]|5[Ff]|6[1-9A-Fa-f]|7[0-9Aa]|7[Ee])|[^!-~]`

// restrictedPathRegex is ambiguousPathRegex for an APIRule whose rules carry their own IP
// restrictions, which the gateway's DENY policy scopes by path: it also refuses '='.
// Envoy's URI templates, which that policy's {*} and {**} paths become, match '*' since Envoy
// 1.35 and '=' not in every version, while the route's regexes never match '*' and always
// match '='. A path with either could be routed past one rule and yet be excluded
// from the next rule's restriction as the first rule's path, reaching the restricted rule
// unrestricted (GET /api/x* past /api/{**} to a restricted /*).
const restrictedPathRegex = `.*(` + ambiguousSpellings + `|=).*`

// ambiguousPathRoute answers 400 to every ambiguous request path before any rule is tried, so
// no spelling of a protected path reaches a later, more open rule while the backend serves
// the protected resource.
func ambiguousPathRoute(perRuleRestriction bool) *networkingv1.HTTPRoute {
	regex, refused := ambiguousPathRegex, "'*', '[', ']'"
	if perRuleRestriction {
		regex, refused = restrictedPathRegex, "'*', '[', ']', '='"
	}
	body := "ambiguous request path: doubled or encoded slashes, dot segments, semicolons, " + refused + " and escapes of plain characters are refused\n"
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
