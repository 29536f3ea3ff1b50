package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// DefaultTimeoutSeconds is the request timeout of a rule when neither the rule nor the
// APIRule sets one.
const DefaultTimeoutSeconds = 180

// MTLSPort is the port of the operator's mTLS server: the HTTPS port of the ingress gateway.
const MTLSPort = 443

// CACopyKey is the key of the CA bundle in the copied Secret, one of the keys Istio reads.
const CACopyKey = "ca.crt"

// defaultCAKey is the key of spec.mtls.caSecretRef when none is given.
const defaultCAKey = "ca.crt"

// Headers that carry the client certificate's identity to the backend.
const (
	HeaderClientSubject     = "x-client-cert-subject"
	HeaderClientURISAN      = "x-client-cert-uri-san"
	HeaderClientIssuer      = "x-client-cert-issuer"
	HeaderClientFingerprint = "x-client-cert-sha256"
)

// ClientIdentityHeaders are the identity headers and the Envoy variables the route sets them
// from. Only the operator sets them: a rule's request headers may not name them.
var ClientIdentityHeaders = map[string]string{
	HeaderClientSubject:     "%DOWNSTREAM_PEER_SUBJECT%",
	HeaderClientURISAN:      "%DOWNSTREAM_PEER_URI_SAN%",
	HeaderClientIssuer:      "%DOWNSTREAM_PEER_ISSUER%",
	HeaderClientFingerprint: "%DOWNSTREAM_PEER_FINGERPRINT_256%",
}

// Owner returns the namespace/name of an APIRule.
func Owner(rule *apiv2.APIRule) types.NamespacedName {
	return types.NamespacedName{Namespace: rule.Namespace, Name: rule.Name}
}

// RouteName is the name of the one VirtualService of an APIRule, in the APIRule's namespace.
func RouteName(owner types.NamespacedName) string { return ownership.ChildName(owner, "route") }

// RouteKey is the namespace/name of the VirtualService of an APIRule.
func RouteKey(owner types.NamespacedName) types.NamespacedName {
	return types.NamespacedName{Namespace: owner.Namespace, Name: RouteName(owner)}
}

// MTLSGatewayName is the name of the operator's mTLS Gateway of an APIRule.
func MTLSGatewayName(owner types.NamespacedName) string { return ownership.ChildName(owner, "mtls") }

// CACopyName is the name of the Secret the APIRule's CA bundle is copied to.
func CACopyName(owner types.NamespacedName) string { return ownership.ChildName(owner, "mtls-ca") }

// IPRestrictionPolicyName is the name of the APIRule's DENY policy at the ingress gateway.
func IPRestrictionPolicyName(owner types.NamespacedName) string {
	return ownership.ChildName(owner, "ip")
}

// GatewayRef returns the Gateway the APIRule binds to: the operator's own Gateway for an mTLS
// APIRule, else spec.gateway, else the operator's default. ok is false when none is set or
// the reference is not namespace/name.
func GatewayRef(rule *apiv2.APIRule, opts Options) (types.NamespacedName, bool) {
	if gw := MTLSGateway(rule, opts); gw != nil {
		return types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}, gw.Namespace != ""
	}
	ref := opts.DefaultGateway
	if rule.Spec.Gateway != nil {
		ref = string(*rule.Spec.Gateway)
	}
	namespace, name, ok := strings.Cut(ref, "/")
	if !ok || namespace == "" || name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: name}, true
}

// BackendRef returns the Service a rule sends its traffic to: the rule's service, else
// spec.service. The namespace falls back from the rule's service to spec.service to the
// APIRule's namespace. ok is false when neither the rule nor the spec names a service.
func BackendRef(rule *apiv2.APIRule, index int) (ref types.NamespacedName, port uint32, ok bool) {
	spec := &rule.Spec
	svc := spec.Rules[index].Service
	if svc == nil {
		svc = spec.Service
	}
	if svc == nil {
		return types.NamespacedName{}, 0, false
	}
	namespace := rule.Namespace
	switch {
	case svc.Namespace != nil:
		namespace = *svc.Namespace
	case spec.Service != nil && spec.Service.Namespace != nil:
		namespace = *spec.Service.Namespace
	}
	return types.NamespacedName{Namespace: namespace, Name: svc.Name}, svc.Port, true
}

// BackendRefs returns every Service the APIRule's rules send traffic to, once each, in rule
// order.
func BackendRefs(rule *apiv2.APIRule) []types.NamespacedName {
	var out []types.NamespacedName
	for i := range rule.Spec.Rules {
		if ref, _, ok := BackendRef(rule, i); ok && !containsRef(out, ref) {
			out = append(out, ref)
		}
	}
	return out
}

func containsRef(refs []types.NamespacedName, ref types.NamespacedName) bool {
	for _, r := range refs {
		if r == ref {
			return true
		}
	}
	return false
}

// CASecretRef returns the CA Secret of an mTLS APIRule and the key that holds the bundle.
func CASecretRef(rule *apiv2.APIRule) (types.NamespacedName, string) {
	ref := rule.Spec.MTLS.CASecretRef
	key := defaultCAKey
	if ref.Key != nil {
		key = *ref.Key
	}
	return types.NamespacedName{Namespace: rule.Namespace, Name: ref.Name}, key
}

// MTLSSecretRefs names the Secrets an mTLS APIRule reads: the server certificate and the CA
// copy in the ingress gateway namespace, and the CA bundle in the APIRule's namespace.
func MTLSSecretRefs(rule *apiv2.APIRule, opts Options) (credential, ca, caCopy types.NamespacedName) {
	ca, _ = CASecretRef(rule)
	return types.NamespacedName{Namespace: opts.IngressGatewayNamespace, Name: rule.Spec.MTLS.CredentialName}, ca,
		types.NamespacedName{Namespace: opts.IngressGatewayNamespace, Name: CACopyName(Owner(rule))}
}

// MTLSGateway returns what the checks and the translation need of the operator's own Gateway
// of an mTLS APIRule, or nil for an APIRule without spec.mtls. It serves exactly the
// APIRule's hosts.
func MTLSGateway(rule *apiv2.APIRule, opts Options) *Gateway {
	if rule.Spec.MTLS == nil {
		return nil
	}
	hosts := make([]string, len(rule.Spec.Hosts))
	for i, h := range rule.Spec.Hosts {
		hosts[i] = string(h)
	}
	return &Gateway{
		Namespace: opts.IngressGatewayNamespace,
		Name:      MTLSGatewayName(Owner(rule)),
		Hosts:     hosts,
		Selector:  opts.IngressGatewaySelector,
		Servers:   []GatewayServer{{Port: MTLSPort, Hosts: hosts}},
	}
}

// Restriction returns the IP restriction in force for rule i, its own or else the APIRule's,
// with its field path; nil when the rule is not restricted.
func Restriction(spec *apiv2.APIRuleSpec, i int) (*apiv2.IPRestriction, *field.Path) {
	specPath := field.NewPath("spec")
	if r := spec.Rules[i].IPRestriction; r != nil {
		return r, specPath.Child("rules").Index(i).Child("ipRestriction")
	}
	if spec.IPRestriction != nil {
		return spec.IPRestriction, specPath.Child("ipRestriction")
	}
	return nil, nil
}

// RestrictedPerRule says whether a rule has an IP restriction of its own. The gateway's DENY
// policy then scopes the restrictions by path, and the paths its templates and the routes'
// regexes could read differently ('=', '*', escapes in another hex case) are refused.
func RestrictedPerRule(spec *apiv2.APIRuleSpec) bool {
	return slices.ContainsFunc(spec.Rules, func(r apiv2.Rule) bool { return r.IPRestriction != nil })
}

// FirstRestriction names the first IP restriction in force; nil when no rule is restricted.
func FirstRestriction(spec *apiv2.APIRuleSpec) *field.Path {
	for i := range spec.Rules {
		if r, path := Restriction(spec, i); r != nil {
			return path
		}
	}
	return nil
}

// UsesIPRestriction says whether any rule of the APIRule is IP-restricted.
func UsesIPRestriction(rule *apiv2.APIRule) bool {
	return FirstRestriction(&rule.Spec) != nil
}

// UsesExtAuth says whether any rule of the APIRule is an extAuth rule.
func UsesExtAuth(rule *apiv2.APIRule) bool {
	for _, r := range rule.Spec.Rules {
		if r.ExtAuth != nil {
			return true
		}
	}
	return false
}

// ReadsMeshConfig says whether the APIRule depends on the mesh config: for its ext-authz
// providers or its gateways' number of trusted proxies.
func ReadsMeshConfig(rule *apiv2.APIRule) bool {
	return UsesExtAuth(rule) || UsesIPRestriction(rule)
}

// JWTConfigAt is a rule's token configuration with its field path.
type JWTConfigAt struct {
	Config *apiv2.JWTConfig
	Path   *field.Path
}

// JWTConfig returns the token configuration of rule i, from jwt or from extAuth.restrictions;
// ok is false when the rule validates no token.
func JWTConfig(r apiv2.Rule, rulePath *field.Path) (JWTConfigAt, bool) {
	switch {
	case r.JWT != nil:
		return JWTConfigAt{r.JWT, rulePath.Child("jwt")}, true
	case r.ExtAuth != nil && r.ExtAuth.Restrictions != nil:
		return JWTConfigAt{r.ExtAuth.Restrictions, rulePath.Child("extAuth", "restrictions")}, true
	}
	return JWTConfigAt{}, false
}

// ServerHost strips the namespace/ prefix of a Gateway server host.
func ServerHost(h string) string {
	if _, host, scoped := strings.Cut(h, "/"); scoped {
		return host
	}
	return h
}

// SelectorKey is a canonical string form of a label selector: key=value pairs sorted, each
// followed by a comma.
func SelectorKey(selector map[string]string) string {
	keys := make([]string, 0, len(selector))
	for k := range selector {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(selector[k])
		b.WriteString(",")
	}
	return b.String()
}

// WorkloadKey identifies the workload a backend Service selects: its namespace and selector.
// Policies are generated per workload.
func WorkloadKey(svc Service) string { return svc.Namespace + "/" + SelectorKey(svc.Selector) }

// OwnedBy says whether labels mark an object as a child of the owner.
func OwnedBy(labels map[string]string, owner types.NamespacedName) bool {
	for k, v := range ownership.Labels(owner) {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// RouteHeader carries, from the ingress gateway to the backend, which rule of which APIRule
// routed the request. Every generated route sets it, overwriting what the client sent, and
// every ALLOW rule for gateway traffic requires its own value: a policy is satisfiable only by
// requests the gateway routed through its rule, so rule order lives in the route alone and
// other APIRules' routes on the same workload cannot borrow a rule's access.
const RouteHeader = "x-apirule-route"

// RouteToken is the value of RouteHeader for rule i of the APIRule. It is derived from the
// APIRule's UID (random, known only to those who may read the APIRule), its identity, the
// rule's index and the rule's whole content: an outside client cannot know it, and a changed
// rule gets a new value, so a route of the previous generation still live during an update
// matches no rule of the new policies (denied, never decided by another rule). Offline, where
// an APIRule has no UID, the value is derived from the rest alone and differs from the
// cluster's.
func RouteToken(rule *apiv2.APIRule, i int) string {
	content, _ := json.Marshal(rule.Spec.Rules[i]) // a struct of plain fields: cannot fail
	h := sha256.New()
	for _, part := range []string{string(rule.UID), rule.Namespace, rule.Name, strconv.Itoa(i), string(content)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// ReservedHeader says whether a request header name is set only by the gateway or the
// operator, so that neither a rule's request headers nor a token claim may write it: the
// client identity headers, the route binding, Host and the X-Forwarded-* family.
func ReservedHeader(name string) bool {
	name = strings.ToLower(name)
	_, identity := ClientIdentityHeaders[name]
	return identity || name == RouteHeader || name == "host" || name == ":authority" || strings.HasPrefix(name, "x-forwarded-") ||
		strings.HasPrefix(name, "x-envoy-") || strings.HasPrefix(name, "x-client-cert")
}

// Default token location: with none given, a token is read from the Authorization header with
// the Bearer prefix only. Envoy's own default would also read the access_token query
// parameter, which puts tokens into access logs and links.
const (
	DefaultTokenHeader = "Authorization"
	DefaultTokenPrefix = "Bearer "
)

// TokenHeaders returns where an authentication reads its token from headers: its own header
// locations, or the default when it names no location at all.
func TokenHeaders(a apiv2.JWTAuthentication) []apiv2.JWTHeader {
	if len(a.FromHeaders) == 0 && len(a.FromParams) == 0 && len(a.FromCookies) == 0 {
		return []apiv2.JWTHeader{{Name: DefaultTokenHeader, Prefix: DefaultTokenPrefix}}
	}
	return a.FromHeaders
}

// ServiceAccountPrincipal is the mesh identity of a namespace/name service account, in the
// trust domain of the ingress gateway's principal.
func ServiceAccountPrincipal(opts Options, serviceAccount string) string {
	trustDomain, _, _ := strings.Cut(opts.IngressGatewayPrincipal, "/ns/")
	namespace, name, _ := strings.Cut(serviceAccount, "/")
	return Principal(trustDomain, namespace, name)
}

// Principal is the mTLS principal of a service account: <trust-domain>/ns/<namespace>/sa/<name>.
func Principal(trustDomain, namespace, serviceAccount string) string {
	return trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// ParsePrincipal splits a principal <trust-domain>/ns/<namespace>/sa/<service-account>; ok is
// false for any other form (an empty part, a '/' inside the namespace or the service
// account, a ':' in the trust domain).
func ParsePrincipal(principal string) (trustDomain, namespace, serviceAccount string, ok bool) {
	trustDomain, rest, ok1 := strings.Cut(principal, "/ns/")
	namespace, serviceAccount, ok2 := strings.Cut(rest, "/sa/")
	if !ok1 || !ok2 || trustDomain == "" || strings.Contains(trustDomain, ":") || namespace == "" || serviceAccount == "" ||
		strings.Contains(namespace, "/") || strings.Contains(serviceAccount, "/") {
		return "", "", "", false
	}
	return trustDomain, namespace, serviceAccount, true
}

// GatewayIdentity returns the namespace and service account of the ingress gateway's
// principal (cluster.local/ns/<namespace>/sa/<name>); ok is false when it has another form.
func GatewayIdentity(opts Options) (namespace, serviceAccount string, ok bool) {
	_, namespace, serviceAccount, ok = ParsePrincipal(opts.IngressGatewayPrincipal)
	return namespace, serviceAccount, ok
}

// SelectorsOverlap says whether one Pod could be selected by both selectors: same namespace,
// and no label required with two different values. The check errs towards overlap: it only
// makes APIRules on possibly shared workloads agree with each other.
func SelectorsOverlap(a, b Service) bool {
	if a.Namespace != b.Namespace || len(a.Selector) == 0 || len(b.Selector) == 0 {
		return false
	}
	for k, v := range a.Selector {
		if w, ok := b.Selector[k]; ok && w != v {
			return false
		}
	}
	return true
}

// ServiceHost is the cluster-local name a route sends a backend's requests to.
func ServiceHost(ref types.NamespacedName) string {
	return ref.Name + "." + ref.Namespace + ".svc.cluster.local"
}

// ServiceFromHost reads a backend back from ServiceHost's form.
func ServiceFromHost(host string) (types.NamespacedName, bool) {
	rest, ok := strings.CutSuffix(host, ".svc.cluster.local")
	name, namespace, found := strings.Cut(rest, ".")
	if !ok || !found || name == "" || namespace == "" || strings.Contains(namespace, ".") {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: name}, true
}
