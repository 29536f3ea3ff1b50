package v2

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// APIRule exposes a sidecar-injected workload through an Istio ingress gateway. It lists the
// hosts, the backend Service and an ordered list of rules; each rule selects requests by path
// and method and protects them with exactly one access strategy (noAuth, jwt or extAuth).
// The operator turns it into Istio VirtualService, RequestAuthentication, AuthorizationPolicy
// and Gateway objects and reports what it did in status.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ar
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Hosts",type=string,JSONPath=`.status.hosts`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`,priority=1
// +kubebuilder:printcolumn:name="Gateway",type=string,JSONPath=`.status.gateway`,priority=1
// +kubebuilder:printcolumn:name="Description",type=string,JSONPath=`.status.description`,priority=1
// +kubebuilder:storageversion
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters: it is used as a label value on the generated objects"
type APIRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes how the workload is exposed.
	// +required
	Spec APIRuleSpec `json:"spec"`

	// status is written by the operator.
	// +optional
	Status APIRuleStatus `json:"status,omitempty"`
}

// APIRuleList is a list of APIRules.
//
// +kubebuilder:object:root=true
type APIRuleList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []APIRule `json:"items"`
}

// APIRuleSpec is the desired exposure of a workload.
//
// +kubebuilder:validation:XValidation:rule="has(self.service) || self.rules.all(r, has(r.service))",message="spec.service is required unless every rule sets its own service: add spec.service or rules[].service"
// +kubebuilder:validation:XValidation:rule="!has(self.mtls) || !has(self.gateway)",message="spec.gateway cannot be set together with spec.mtls: the operator serves mTLS hosts on a Gateway of its own in the ingress gateway namespace; remove spec.gateway"
// +kubebuilder:validation:XValidation:rule="!has(self.mtls) || self.hosts.all(h, h.contains('.'))",message="with spec.mtls every host must be fully qualified, such as partner.example.com: a short host has no Gateway domain to complete it"
// +kubebuilder:validation:XValidation:rule="!has(self.externalGateway)",message="spec.externalGateway (Kyma's ExternalGateway) is not supported: remove it and set spec.gateway to the namespace/name of an Istio Gateway that serves the hosts"
type APIRuleSpec struct {
	// hosts are the host names under which the rules are reachable (1 to 16). Each is a fully
	// qualified domain name (httpbin.example.com), a wildcard name (*.example.com) or a short
	// name (httpbin) that is completed with the domain of the Gateway's single *.domain host.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Hosts []Host `json:"hosts"`

	// gateway is the Istio Gateway that serves the hosts, as namespace/name, for example
	// istio-system/public-gateway. It may be omitted when the operator is configured with a
	// default Gateway.
	// +optional
	Gateway *GatewayReference `json:"gateway,omitempty"`

	// service is the default backend of every rule that does not set its own.
	// +optional
	Service *Service `json:"service,omitempty"`

	// timeout is the request timeout in seconds (1 to 3900) for every rule that does not set
	// its own. The default is 180.
	// +optional
	Timeout *Timeout `json:"timeout,omitempty"`

	// corsPolicy is the CORS policy applied to every rule. CORS headers sent by the workload
	// are removed so the browser sees only this policy.
	// +optional
	CorsPolicy *CorsPolicy `json:"corsPolicy,omitempty"`

	// internalTraffic says which callers inside the mesh, besides the ingress gateway, may
	// call the backend workloads directly. By default only the ingress gateway may. NEW.
	// +optional
	InternalTraffic *InternalTraffic `json:"internalTraffic,omitempty"`

	// mtls requires clients to present a certificate signed by a given CA, optionally with
	// one of the listed identities. NEW.
	// +optional
	MTLS *MTLS `json:"mtls,omitempty"`

	// ipRestriction allows or denies clients by address, taken from the X-Forwarded-For
	// chain with the gateway's number of trusted proxies. Rules may override it. NEW.
	// +optional
	IPRestriction *IPRestriction `json:"ipRestriction,omitempty"`

	// externalGateway is a field of Kyma's APIRule that this operator does not serve. The
	// schema keeps it so that an APIRule setting it is refused, even from a client that skips
	// validation, instead of the field being dropped and the APIRule served on another Gateway.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	ExternalGateway *apiextensionsv1.JSON `json:"externalGateway,omitempty"`

	// rules are matched in order; the first rule whose path and method match a request
	// decides it, for routing and for authorization alike.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	Rules []Rule `json:"rules"`
}

// Host is a fully qualified domain name, a wildcard name (*. followed by a fully qualified
// domain name) or a short name (a single DNS label), in lower case.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="self.matches('^(\\\\*\\\\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$')",message="host must be a lower-case DNS name such as api.example.com, a wildcard such as *.example.com, or a short name such as api"
// +kubebuilder:validation:XValidation:rule="!self.startsWith('*.') || self.substring(2).contains('.')",message="a wildcard host needs a domain of at least two labels, such as *.example.com"
type Host string

// GatewayReference names an Istio Gateway as namespace/name.
//
// +kubebuilder:validation:MaxLength=317
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$')",message="gateway must be namespace/name of an Istio Gateway, for example istio-system/public-gateway"
type GatewayReference string

// Timeout is a duration in seconds, from 1 to 3900.
//
// +kubebuilder:validation:Minimum=1
// +kubebuilder:validation:Maximum=3900
type Timeout uint32

// Service is a backend Kubernetes Service.
//
// +kubebuilder:validation:XValidation:rule="!has(self.external) || !self.external",message="external services are not supported: set external to false or remove it"
type Service struct {
	// name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="service name must be a DNS label: lower-case letters, digits and '-', starting with a letter"
	Name string `json:"name"`

	// namespace of the Service. Defaults to the namespace of the APIRule (for a rule's
	// service: to spec.service.namespace, then to the APIRule's namespace).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="service namespace must be a DNS label: lower-case letters, digits and '-'"
	Namespace *string `json:"namespace,omitempty"`

	// port of the Service that receives the traffic.
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port uint32 `json:"port"`

	// external is accepted for compatibility with Kyma manifests and must be false or unset.
	// +optional
	External *bool `json:"external,omitempty"`
}

// Rule selects requests by path and method and protects them with exactly one access
// strategy: noAuth, jwt or extAuth.
//
// +kubebuilder:validation:XValidation:rule="(has(self.noAuth) && self.noAuth ? 1 : 0) + (has(self.jwt) ? 1 : 0) + (has(self.extAuth) ? 1 : 0) == 1",message="set exactly one access strategy per rule: noAuth: true, jwt or extAuth"
type Rule struct {
	// path of the request. Exact (/headers), /* for every path, or a template whose segments
	// may be {*} (exactly one non-empty segment) or, as the last segment only, {**} (any rest,
	// possibly empty, including '/').
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self == '/*' || self.matches('^(/([-A-Za-z0-9._~!$&\\'()+,;=:@]|%[0-9A-Fa-f]{2})*|/\\\\{\\\\*\\\\}|/\\\\{\\\\*\\\\*\\\\})+$')",message="path must be /* or start with '/' and consist of segments made of URL path characters, {*} or {**}; '*', '{', '}', '?' and '#' are allowed only as {*}, {**} or the whole path /*"
	// +kubebuilder:validation:XValidation:rule="!self.contains('{**}') || (self.endsWith('/{**}') && self.indexOf('{**}') == self.size() - 4)",message="{**} may appear only once and only as the last segment, for example /api/{**}"
	// +kubebuilder:validation:XValidation:rule="!self.contains('//')",message="path must not contain an empty segment ('//')"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.]?(/|$)')",message="path must not contain '.' or '..' segments: the gateway normalizes them away, so such a rule would never match"
	// +kubebuilder:validation:XValidation:rule="!self.matches(';|%(3[Bb]|2[Ff]|5[Cc])')",message="path must not contain ';' or an encoded ';', '/' or '\\' (%3B, %2F, %5C): the gateway answers 400 to every request path with them, so such a rule would never match"
	Path string `json:"path"`

	// methods are the HTTP methods the rule matches.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=9
	Methods []HTTPMethod `json:"methods"`

	// service overrides spec.service for this rule.
	// +optional
	Service *Service `json:"service,omitempty"`

	// timeout overrides spec.timeout for this rule, in seconds (1 to 3900).
	// +optional
	Timeout *Timeout `json:"timeout,omitempty"`

	// request sets headers and cookies on requests forwarded to the backend.
	// +optional
	Request *Request `json:"request,omitempty"`

	// ipRestriction overrides spec.ipRestriction for this rule. NEW.
	// +optional
	IPRestriction *IPRestriction `json:"ipRestriction,omitempty"`

	// noAuth: true lets every request through the ingress gateway, without authentication.
	// +optional
	NoAuth *bool `json:"noAuth,omitempty"`

	// jwt requires a valid JSON Web Token from one of the listed issuers and, optionally,
	// claims that satisfy one of the authorizations.
	// +optional
	JWT *JWTConfig `json:"jwt,omitempty"`

	// extAuth delegates the decision to external authorizers declared as extension providers
	// in the Istio mesh config, optionally on top of JWT restrictions.
	// +optional
	ExtAuth *ExtAuth `json:"extAuth,omitempty"`
}

// HTTPMethod is an HTTP request method.
//
// +kubebuilder:validation:Enum=GET;HEAD;POST;PUT;DELETE;CONNECT;OPTIONS;TRACE;PATCH
type HTTPMethod string

// Request lists changes made to requests before they reach the backend.
type Request struct {
	// headers are set on the request, replacing any value the client sent. Values may use
	// Envoy command operators such as %REQ(:AUTHORITY)%.
	// +optional
	// +mapType=granular
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 256 && k.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$'))",message="header names must be HTTP tokens such as X-Tenant (no ':' pseudo-headers, spaces or separators)"
	// +kubebuilder:validation:XValidation:rule="self.all(k, !(k.lowerAscii() in ['host', 'x-forwarded-host']))",message="the Host and X-Forwarded-Host headers are set by the operator and cannot be overridden"
	Headers map[string]string `json:"headers,omitempty"`

	// cookies replace the Cookie header of the request with these name=value pairs.
	// +optional
	// +mapType=granular
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 256 && k.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$'))",message="cookie names must be HTTP tokens (letters, digits and !#$%&'*+.^_`|~-)"
	Cookies map[string]string `json:"cookies,omitempty"`
}

// JWTConfig requires a JSON Web Token.
type JWTConfig struct {
	// authentications are the trusted issuers; a token from any of them is accepted.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Authentications []JWTAuthentication `json:"authentications"`

	// authorizations restrict which tokens are allowed. A token is allowed when it satisfies
	// at least one entry; inside one entry every condition must hold. When empty, any valid
	// token from the issuers is allowed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	Authorizations []JWTAuthorization `json:"authorizations,omitempty"`

	// outputClaimToHeaders copies token claims into request headers for the backend. NEW.
	// +optional
	// +listType=map
	// +listMapKey=header
	// +kubebuilder:validation:MaxItems=16
	OutputClaimToHeaders []ClaimToHeader `json:"outputClaimToHeaders,omitempty"`
}

// JWTAuthentication is a trusted token issuer and where the token is found.
//
// +kubebuilder:validation:XValidation:rule="has(self.jwksUri) != has(self.jwks)",message="set exactly one of jwksUri or jwks"
type JWTAuthentication struct {
	// issuer is the token's iss claim, for example https://idp.example.com.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="!self.matches('\\\\s')",message="issuer must not contain white space"
	// +kubebuilder:validation:XValidation:rule="!self.contains('*')",message="issuer must not contain '*': Istio would read it as a wildcard and trust other issuers"
	Issuer string `json:"issuer"`

	// jwksUri is the http or https URL of the issuer's JSON Web Key Set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="jwksUri must be an absolute http or https URL, for example https://idp.example.com/.well-known/jwks.json"
	JWKSURI *string `json:"jwksUri,omitempty"`

	// jwks is the issuer's JSON Web Key Set inline, as JSON. NEW.
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=65536
	// +kubebuilder:validation:Pattern=`^\s*\{[\s\S]*\}\s*$`
	JWKS *string `json:"jwks,omitempty"`

	// fromHeaders are the request headers that may carry the token. Default: the
	// Authorization header with the prefix "Bearer ".
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	FromHeaders []JWTHeader `json:"fromHeaders,omitempty"`

	// fromParams are query parameters that may carry the token.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	FromParams []string `json:"fromParams,omitempty"`

	// fromCookies are cookies that may carry the token. NEW.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	FromCookies []string `json:"fromCookies,omitempty"`

	// forwardOriginalToken keeps the token in the request forwarded to the backend. Default:
	// true. NEW.
	// +optional
	ForwardOriginalToken *bool `json:"forwardOriginalToken,omitempty"`
}

// JWTHeader is a request header that carries a token.
type JWTHeader struct {
	// name of the header, for example X-Token.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$')",message="header name must be an HTTP token such as X-Token"
	Name string `json:"name"`

	// prefix before the token in the header value, for example "Bearer ".
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Prefix string `json:"prefix,omitempty"`
}

// JWTAuthorization is a set of conditions on a token; all of them must hold.
type JWTAuthorization struct {
	// requiredScopes must all be present in the token's scp, scope or scopes claim.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.all(v, !v.startsWith('*') && !v.endsWith('*'))",message="values must not start or end with '*': Istio would read it as a wildcard"
	RequiredScopes []string `json:"requiredScopes,omitempty"`

	// audiences must all be present in the token's aud claim.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.all(v, !v.startsWith('*') && !v.endsWith('*'))",message="values must not start or end with '*': Istio would read it as a wildcard"
	Audiences []string `json:"audiences,omitempty"`

	// claims maps a claim name to its allowed values; the token's claim must have one of
	// them. Every listed claim must match. NEW.
	// +optional
	// +mapType=granular
	// +kubebuilder:validation:MaxProperties=16
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 256 && k.matches('^[^\\\\[\\\\]\\\\s]+$'))",message="claim names must not be empty or contain '[', ']' or white space"
	Claims map[string]ClaimValues `json:"claims,omitempty"`
}

// ClaimValues are the allowed values of a claim; the claim must equal one of them.
//
// +listType=set
// +kubebuilder:validation:MinItems=1
// +kubebuilder:validation:MaxItems=32
// +kubebuilder:validation:items:MinLength=1
// +kubebuilder:validation:items:MaxLength=256
// +kubebuilder:validation:XValidation:rule="self.all(v, !v.startsWith('*') && !v.endsWith('*'))",message="values must not start or end with '*': Istio would read it as a wildcard"
type ClaimValues []string

// ClaimToHeader copies a token claim into a request header.
type ClaimToHeader struct {
	// header to set, for example X-User.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9!#$%&\\'*+.^_`|~-]+$')",message="header must be an HTTP token such as X-User"
	Header string `json:"header"`

	// claim to copy, for example sub.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Claim string `json:"claim"`
}

// ExtAuth delegates authorization to external authorizers.
type ExtAuth struct {
	// authorizers are names of extension providers in the Istio mesh config (envoyExtAuthzHttp
	// or envoyExtAuthzGrpc). Each is asked in turn; all must allow the request.
	// +required
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	Authorizers []string `json:"authorizers"`

	// restrictions additionally require a JSON Web Token, as in the jwt strategy.
	// +optional
	Restrictions *JWTConfig `json:"restrictions,omitempty"`
}

// CorsPolicy is a CORS policy.
type CorsPolicy struct {
	// allowOrigins are the origins allowed to make requests; each entry has exactly one of
	// exact, prefix or regex. Without it no CORS headers are returned.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	AllowOrigins []StringMatch `json:"allowOrigins,omitempty"`

	// allowMethods lists the methods allowed in Access-Control-Allow-Methods.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=32
	AllowMethods []string `json:"allowMethods,omitempty"`

	// allowHeaders lists the headers allowed in Access-Control-Allow-Headers.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	AllowHeaders []string `json:"allowHeaders,omitempty"`

	// exposeHeaders lists the headers in Access-Control-Expose-Headers.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	ExposeHeaders []string `json:"exposeHeaders,omitempty"`

	// allowCredentials sets Access-Control-Allow-Credentials.
	// +optional
	AllowCredentials *bool `json:"allowCredentials,omitempty"`

	// maxAge is how long, in seconds, a browser may cache the preflight response.
	// +optional
	// +kubebuilder:validation:Minimum=1
	MaxAge *uint64 `json:"maxAge,omitempty"`
}

// StringMatch matches a string in exactly one way.
//
// +kubebuilder:validation:XValidation:rule="(has(self.exact) ? 1 : 0) + (has(self.prefix) ? 1 : 0) + (has(self.regex) ? 1 : 0) == 1",message="set exactly one of exact, prefix or regex"
type StringMatch struct {
	// exact match.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Exact *string `json:"exact,omitempty"`
	// prefix match.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Prefix *string `json:"prefix,omitempty"`
	// regex match (RE2 syntax), anchored.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Regex *string `json:"regex,omitempty"`
}

// InternalTraffic says who inside the mesh, besides the ingress gateway, may call the backend
// workloads. Set allow: true for every in-mesh caller, or list the namespaces and service
// accounts that may call.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.allow) && self.allow) || (!has(self.fromNamespaces) && !has(self.fromServiceAccounts))",message="allow: true already admits every in-mesh caller; remove fromNamespaces and fromServiceAccounts, or set allow to false to admit only them"
type InternalTraffic struct {
	// allow: true lets every workload in the mesh call the backends directly.
	// +optional
	Allow *bool `json:"allow,omitempty"`

	// fromNamespaces lets workloads in these namespaces call the backends directly.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	FromNamespaces []string `json:"fromNamespaces,omitempty"`

	// fromServiceAccounts lets workloads running as these service accounts, written as
	// namespace/name, call the backends directly.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=317
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	FromServiceAccounts []string `json:"fromServiceAccounts,omitempty"`
}

// MTLS requires client certificates.
//
// +kubebuilder:validation:XValidation:rule="!has(self.forwardClientCert) || self.forwardClientCert || (!has(self.allowedSubjects) && !has(self.allowedSANs))",message="allowedSubjects and allowedSANs are enforced by the backend's sidecar on the forwarded client identity; remove forwardClientCert: false or the allowed lists"
type MTLS struct {
	// credentialName is the Secret with the server certificate and key, in the ingress
	// gateway's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	CredentialName string `json:"credentialName"`

	// caSecretRef is the Secret, in the APIRule's namespace, with the CA bundle that client
	// certificates must chain to.
	// +required
	CASecretRef SecretKeyReference `json:"caSecretRef"`

	// allowedSubjects, when set, admit only client certificates with one of these subjects,
	// for example "CN=partner-a,O=Acme".
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.all(v, !v.startsWith('*') && !v.endsWith('*'))",message="values must not start or end with '*': Istio would read it as a wildcard"
	AllowedSubjects []string `json:"allowedSubjects,omitempty"`

	// allowedSANs, when set, admit only client certificates with one of these URI SANs, for
	// example spiffe://partner/a.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.all(v, !v.startsWith('*') && !v.endsWith('*'))",message="values must not start or end with '*': Istio would read it as a wildcard"
	AllowedSANs []string `json:"allowedSANs,omitempty"`

	// forwardClientCert passes the client certificate's identity (subject, URI SAN, issuer,
	// fingerprint) to the backend in request headers, always overwriting what the client
	// sent. Default: true.
	// +optional
	ForwardClientCert *bool `json:"forwardClientCert,omitempty"`
}

// SecretKeyReference names a key of a Secret in the APIRule's namespace.
type SecretKeyReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	Name string `json:"name"`

	// key in the Secret's data. Default: ca.crt.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key *string `json:"key,omitempty"`
}

// IPRestriction allows or denies clients by address.
//
// +kubebuilder:validation:XValidation:rule="has(self.allow) || has(self.deny)",message="ipRestriction needs an allow or a deny list"
type IPRestriction struct {
	// allow admits only clients whose address is in one of these ranges.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	Allow []IPBlock `json:"allow,omitempty"`

	// deny rejects clients whose address is in one of these ranges, even if allowed above.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=256
	Deny []IPBlock `json:"deny,omitempty"`
}

// IPBlock is an IPv4 or IPv6 address or CIDR range, such as 203.0.113.7 or 2001:db8::/32.
//
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="isIP(self) || isCIDR(self)",message="must be an IPv4 or IPv6 address or CIDR range, such as 203.0.113.0/24 or 2001:db8::/32"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self) == cidr(self).masked()",message="CIDR range has bits set after its prefix length; write the network address, such as 203.0.113.0/24 instead of 203.0.113.7/24"
type IPBlock string

// State summarizes the status in one word, with the values Kyma's APIRule uses.
//
// +kubebuilder:validation:Enum=Ready;Processing;Warning;Error;Deleting
type State string

// The values of State.
const (
	StateReady      State = "Ready"
	StateProcessing State = "Processing"
	StateWarning    State = "Warning"
	StateError      State = "Error"
	StateDeleting   State = "Deleting"
)

// APIRuleStatus is the observed state of an APIRule.
type APIRuleStatus struct {
	// state summarizes the conditions: Ready, Processing, Warning, Error or Deleting.
	// +optional
	State State `json:"state,omitempty"`

	// description says in one sentence why the APIRule is in its state.
	// +optional
	Description string `json:"description,omitempty"`

	// lastProcessedTime is when the operator last changed this status.
	// +optional
	LastProcessedTime *metav1.Time `json:"lastProcessedTime,omitempty"`

	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Accepted (the spec is valid), ResolvedRefs (referenced objects exist),
	// Programmed (the Istio objects are applied) and Ready (all of them).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`

	// hosts are the hosts the APIRule's route serves now, fully qualified (a short host with
	// its Gateway's domain); empty while nothing is served. After a refused edit they are the
	// hosts of the generation that still serves.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Hosts []string `json:"hosts,omitempty"`

	// gateway is the namespace/name of the Istio Gateway the APIRule is bound to: spec.gateway,
	// the operator's default Gateway, or the Gateway the operator generates for mTLS.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Gateway string `json:"gateway,omitempty"`

	// objects are the Istio objects and Secrets the operator generated for the APIRule and that
	// serve now, in every namespace (the backends' and the ingress gateway's included).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	Objects []GeneratedObject `json:"objects,omitempty"`

	// warnings lists each problem that does not stop the APIRule from being served, with its
	// own reason and field, as the last reconcile found them. Accepted is then True with
	// reason AcceptedWithWarnings, and state is Warning.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Warnings []APIRuleWarning `json:"warnings,omitempty"`
}

// GeneratedObject names one object the operator generated for an APIRule.
type GeneratedObject struct {
	// kind is the object's kind, for example VirtualService.
	// +kubebuilder:validation:MaxLength=64
	Kind string `json:"kind"`
	// namespace is the object's namespace.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// name is the object's name.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// APIRuleWarning is one problem that does not stop an APIRule from being served.
type APIRuleWarning struct {
	// reason is the machine-readable class of the warning, for example NoPods.
	// +kubebuilder:validation:MaxLength=64
	Reason string `json:"reason"`

	// field is the path of the field the warning is about, for example spec.rules[1].path.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	Field string `json:"field,omitempty"`

	// message says what is wrong and how to fix it.
	// +kubebuilder:validation:MaxLength=2048
	Message string `json:"message"`
}
