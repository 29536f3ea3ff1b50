package crd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/apirule-operator/apirule-operator/internal/schema"
)

type object = map[string]any

const nameTooLong = "metadata.name must be at most 63 characters: it is used as a label value on the generated objects"

// celMessages returns the message of every CEL rule in the schema.
func celMessages(schema *apiextensionsv1.JSONSchemaProps) []string {
	if schema == nil {
		return nil
	}
	var out []string
	for _, v := range schema.XValidations {
		out = append(out, v.Message)
	}
	for _, p := range schema.Properties {
		out = append(out, celMessages(&p)...)
	}
	if schema.Items != nil {
		out = append(out, celMessages(schema.Items.Schema)...)
	}
	if schema.AdditionalProperties != nil {
		out = append(out, celMessages(schema.AdditionalProperties.Schema)...)
	}
	return out
}

// baseSpec is a valid noAuth APIRule spec; each case changes one thing in it.
func baseSpec() object {
	return object{
		"hosts":   []any{"httpbin.example.com"},
		"gateway": "istio-system/public",
		"service": object{"name": "httpbin", "port": int64(8000)},
		"rules": []any{
			object{"path": "/headers", "methods": []any{"GET"}, "noAuth": true},
		},
	}
}

func jwtConfig() object {
	return object{"authentications": []any{object{
		"issuer":  "https://idp.example.com",
		"jwksUri": "https://idp.example.com/.well-known/jwks.json",
	}}}
}

func rule0(spec object) object { return spec["rules"].([]any)[0].(object) }
func jwtRule0(spec object) object {
	r := rule0(spec)
	delete(r, "noAuth")
	r["jwt"] = jwtConfig()
	return r
}
func auth0(spec object) object {
	return jwtRule0(spec)["jwt"].(object)["authentications"].([]any)[0].(object)
}
func authz0(spec object) object {
	authz := object{}
	jwtRule0(spec)["jwt"].(object)["authorizations"] = []any{authz}
	return authz
}

func apiRule(name string, spec object) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: object{
		"apiVersion": "gateway.apirule.io/v2",
		"kind":       "APIRule",
		"metadata":   object{"name": name, "namespace": "default"},
		"spec":       spec,
	}}
	return u
}

func strings17() []any {
	out := make([]any, 17)
	for i := range out {
		out[i] = fmt.Sprintf("h%d.example.com", i)
	}
	return out
}

func manyRules(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = object{"path": fmt.Sprintf("/r%d", i), "methods": []any{"GET"}, "noAuth": true}
	}
	return out
}

func manyEntries(n int) object {
	out := object{}
	for i := 0; i < n; i++ {
		out[fmt.Sprintf("X-H%d", i)] = "v"
	}
	return out
}

// createDryRun submits the APIRule for validation without storing it; see submit.
func createDryRun(name string, spec object) error {
	return submit(apiRule(name, spec))
}

// submit validates the APIRule twice, offline with internal/schema (what apirulectl validate
// applies) and with a dry-run create on the API server, with the strict field validation
// kubectl asks for by default, and fails unless both give the same verdict with the same causes: every
// field path, type and message, in order. It returns the server's error for the case's own
// assertions, so that each case of the tables below checks both ways.
func submit(rule *unstructured.Unstructured) error {
	GinkgoHelper()
	// Offline first: a successful create writes the server's answer into rule.Object.
	_, errs := schema.Validate(rule.Object)
	offline := offlineVerdict(errs)
	err := k8s.Create(ctx, rule, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict))
	Expect(offline).To(Equal(serverVerdict(err)), "offline validation (first) differs from the API server's (second)")
	return err
}

// verdict is what an APIRule create answers: nothing, the causes of an Invalid error, or the
// message of a Bad Request (unknown fields under strict field validation).
type verdict struct {
	Causes     []cause
	BadRequest string
}

type cause struct{ Type, Field, Message string }

func serverVerdict(err error) verdict {
	if err == nil {
		return verdict{}
	}
	status, ok := err.(apierrors.APIStatus)
	Expect(ok).To(BeTrue(), "not an API status: %v", err)
	switch {
	case apierrors.IsInvalid(err):
		var v verdict
		for _, c := range status.Status().Details.Causes {
			v.Causes = append(v.Causes, cause{string(c.Type), c.Field, c.Message})
		}
		return v
	case apierrors.IsBadRequest(err):
		return verdict{BadRequest: status.Status().Message}
	}
	Fail(fmt.Sprintf("unexpected error kind: %v", err))
	return verdict{}
}

// offlineVerdict turns the errors of schema.Validate into the server's answer: a cause per
// error (apierrors.NewInvalid's), or, for unknown fields, the server's strict decoding message.
func offlineVerdict(errs field.ErrorList) verdict {
	if len(errs) == 0 {
		return verdict{}
	}
	var unknown []string
	var v verdict
	for _, e := range errs {
		if e.Type == field.ErrorTypeForbidden && e.Detail == schema.UnknownField {
			unknown = append(unknown, fmt.Sprintf("unknown field %q", e.Field))
		}
		v.Causes = append(v.Causes, cause{string(e.Type), e.Field, e.ErrorBody()})
	}
	if len(unknown) > 0 {
		Expect(unknown).To(HaveLen(len(errs)), "unknown fields are reported alone, as the server refuses them before validating: %v", errs)
		return verdict{BadRequest: `APIRule in version "v2" cannot be handled as a APIRule: strict decoding error: ` + strings.Join(unknown, ", ")}
	}
	return v
}

// asserted collects the messages the rejection table asserts, for the coverage check below.
var asserted []string

// reject is a table entry for an invalid APIRule.
func reject(description string, r rejection) TableEntry {
	asserted = append(asserted, r.message)
	return Entry(description, r)
}

type rejection struct {
	mutate  func(spec object)
	field   string
	message string
}

// expectRejected asserts that the API server rejects the object with a cause on exactly the
// given field whose message contains the given text.
func expectRejected(err error, field, message string) {
	ExpectWithOffset(1, err).To(HaveOccurred(), "the API server accepted an invalid APIRule")
	ExpectWithOffset(1, apierrors.IsInvalid(err)).To(BeTrue(), "unexpected error kind: %v", err)
	status := err.(apierrors.APIStatus).Status()
	var causes []string
	for _, c := range status.Details.Causes {
		causes = append(causes, fmt.Sprintf("%s => %s", c.Field, c.Message))
		if c.Field == field && strings.Contains(c.Message, message) {
			return
		}
	}
	Fail(fmt.Sprintf("no cause on %s containing %q; causes:\n  %s", field, message, strings.Join(causes, "\n  ")), 1)
}

var _ = Describe("APIRule validation by the API server, and offline the same", func() {
	DescribeTable("rejects invalid APIRules with a message naming the field and the fix",
		func(c rejection) {
			spec := baseSpec()
			c.mutate(spec)
			expectRejected(createDryRun("invalid", spec), c.field, c.message)
		},

		// spec
		reject("no service anywhere", rejection{func(s object) { delete(s, "service") }, "spec",
			"spec.service is required unless every rule sets its own service: add spec.service or rules[].service"}),

		// hosts
		reject("no hosts", rejection{func(s object) { s["hosts"] = []any{} }, "spec.hosts", "should have at least 1 items"}),
		reject("Kyma's externalGateway", rejection{func(s object) { s["externalGateway"] = object{"name": "shop-gateway"} }, "spec",
			"spec.externalGateway (Kyma's ExternalGateway) is not supported: remove it and set spec.gateway to the namespace/name of an Istio Gateway that serves the hosts"}),
		reject("17 hosts", rejection{func(s object) { s["hosts"] = strings17() }, "spec.hosts", "must have at most 16 items"}),
		reject("duplicate host", rejection{func(s object) { s["hosts"] = []any{"a.example.com", "a.example.com"} }, "spec.hosts[1]", "Duplicate value"}),
		reject("upper-case host", rejection{func(s object) { s["hosts"] = []any{"Httpbin.example.com"} }, "spec.hosts[0]",
			"host must be a lower-case DNS name such as api.example.com, a wildcard such as *.example.com, or a short name such as api"}),
		reject("host with a path", rejection{func(s object) { s["hosts"] = []any{"example.com/x"} }, "spec.hosts[0]", "host must be a lower-case DNS name"}),
		reject("wildcard in the middle", rejection{func(s object) { s["hosts"] = []any{"a.*.example.com"} }, "spec.hosts[0]", "host must be a lower-case DNS name"}),
		reject("wildcard over a top-level domain", rejection{func(s object) { s["hosts"] = []any{"*.com"} }, "spec.hosts[0]",
			"a wildcard host needs a domain of at least two labels, such as *.example.com"}),
		reject("empty host", rejection{func(s object) { s["hosts"] = []any{""} }, "spec.hosts[0]", "should be at least 1 chars long"}),
		reject("host longer than 253", rejection{func(s object) { s["hosts"] = []any{strings.Repeat("a.", 127) + "io"} }, "spec.hosts[0]", "may not be more than 253 bytes"}),

		// types: the user's YAML is validated before it is decoded into the Go type, so a value
		// of the wrong type gets the server's message, not a Go decoding error.
		reject("hosts as a string", rejection{func(s object) { s["hosts"] = "httpbin.example.com" }, "spec.hosts", "must be of type array"}),
		reject("port as a string", rejection{func(s object) { s["service"].(object)["port"] = "8000" }, "spec.service.port", "must be of type integer"}),
		reject("port with a fraction", rejection{func(s object) { s["service"].(object)["port"] = 80.5 }, "spec.service.port", "must be of type"}),
		reject("noAuth as a string", rejection{func(s object) { rule0(s)["noAuth"] = "true" }, "spec.rules[0].noAuth", "must be of type boolean"}),
		reject("header value as a number", rejection{func(s object) { rule0(s)["request"] = object{"headers": object{"X-Tenant": int64(1)}} },
			"spec.rules[0].request.headers.X-Tenant", "must be of type string"}),

		// gateway
		reject("gateway without namespace", rejection{func(s object) { s["gateway"] = "public" }, "spec.gateway",
			"gateway must be namespace/name of an Istio Gateway, for example istio-system/public-gateway"}),
		reject("gateway too long", rejection{func(s object) { s["gateway"] = "a/" + strings.Repeat("b", 320) }, "spec.gateway", "may not be more than 317 bytes"}),

		// service
		reject("service name not a DNS label", rejection{func(s object) { s["service"].(object)["name"] = "Http_bin" }, "spec.service.name",
			"service name must be a DNS label: lower-case letters, digits and '-', starting with a letter"}),
		reject("empty service name", rejection{func(s object) { s["service"].(object)["name"] = "" }, "spec.service.name", "should be at least 1 chars long"}),
		reject("service name too long", rejection{func(s object) { s["service"].(object)["name"] = strings.Repeat("a", 64) }, "spec.service.name", "may not be more than 63 bytes"}),
		reject("service namespace not a DNS label", rejection{func(s object) { s["service"].(object)["namespace"] = "Shop" }, "spec.service.namespace",
			"service namespace must be a DNS label"}),
		reject("service port 0", rejection{func(s object) { s["service"].(object)["port"] = int64(0) }, "spec.service.port", "should be greater than or equal to 1"}),
		reject("service port 65536", rejection{func(s object) { s["service"].(object)["port"] = int64(65536) }, "spec.service.port", "should be less than or equal to 65535"}),
		reject("service without port", rejection{func(s object) { delete(s["service"].(object), "port") }, "spec.service.port", "Required value"}),
		reject("external service", rejection{func(s object) { s["service"].(object)["external"] = true }, "spec.service",
			"external services are not supported: set external to false or remove it"}),

		// timeout
		reject("timeout 0", rejection{func(s object) { s["timeout"] = int64(0) }, "spec.timeout", "should be greater than or equal to 1"}),
		reject("timeout 3901", rejection{func(s object) { s["timeout"] = int64(3901) }, "spec.timeout", "should be less than or equal to 3900"}),
		reject("rule timeout 3901", rejection{func(s object) { rule0(s)["timeout"] = int64(3901) }, "spec.rules[0].timeout", "should be less than or equal to 3900"}),

		// rules
		reject("no rules", rejection{func(s object) { s["rules"] = []any{} }, "spec.rules", "should have at least 1 items"}),
		reject("129 rules", rejection{func(s object) { s["rules"] = manyRules(129) }, "spec.rules", "must have at most 128 items"}),
		reject("no access strategy", rejection{func(s object) { delete(rule0(s), "noAuth") }, "spec.rules[0]",
			"set exactly one access strategy per rule: noAuth: true, jwt or extAuth"}),
		reject("noAuth: false alone", rejection{func(s object) { rule0(s)["noAuth"] = false }, "spec.rules[0]", "set exactly one access strategy per rule"}),
		reject("noAuth and jwt", rejection{func(s object) { rule0(s)["jwt"] = jwtConfig() }, "spec.rules[0]", "set exactly one access strategy per rule"}),
		reject("jwt and extAuth", rejection{func(s object) {
			r := jwtRule0(s)
			r["extAuth"] = object{"authorizers": []any{"oauth2-proxy"}}
		}, "spec.rules[0]", "set exactly one access strategy per rule"}),

		// paths
		reject("relative path", rejection{func(s object) { rule0(s)["path"] = "headers" }, "spec.rules[0].path",
			"path must be /* or start with '/' and consist of segments made of URL path characters, {*} or {**}"}),
		reject("star inside a path", rejection{func(s object) { rule0(s)["path"] = "/api/*" }, "spec.rules[0].path", "path must be /* or start with '/'"}),
		reject("brace template other than {*} and {**}", rejection{func(s object) { rule0(s)["path"] = "/api/{id}" }, "spec.rules[0].path", "path must be /* or start with '/'"}),
		reject("operator inside a segment", rejection{func(s object) { rule0(s)["path"] = "/api/v{*}" }, "spec.rules[0].path", "path must be /* or start with '/'"}),
		reject("query in a path", rejection{func(s object) { rule0(s)["path"] = "/api?x=1" }, "spec.rules[0].path", "path must be /* or start with '/'"}),
		reject("bad percent encoding", rejection{func(s object) { rule0(s)["path"] = "/a%2" }, "spec.rules[0].path", "path must be /* or start with '/'"}),
		reject("{**} before the last segment", rejection{func(s object) { rule0(s)["path"] = "/a/{**}/b" }, "spec.rules[0].path",
			"{**} may appear only once and only as the last segment, for example /api/{**}"}),
		reject("two {**}", rejection{func(s object) { rule0(s)["path"] = "/a/{**}/{**}" }, "spec.rules[0].path", "{**} may appear only once and only as the last segment"}),
		reject("empty segment", rejection{func(s object) { rule0(s)["path"] = "/a//b" }, "spec.rules[0].path", "path must not contain an empty segment ('//')"}),
		reject("dot-dot segment", rejection{func(s object) { rule0(s)["path"] = "/a/../b" }, "spec.rules[0].path",
			"path must not contain '.' or '..' segments: the gateway normalizes them away, so such a rule would never match"}),
		reject("dot segment at the end", rejection{func(s object) { rule0(s)["path"] = "/a/." }, "spec.rules[0].path", "path must not contain '.' or '..' segments"}),
		reject("dot-dot segment with parameters", rejection{func(s object) { rule0(s)["path"] = "/a/..;x=1/b" }, "spec.rules[0].path", "path must not contain ';'"}),
		reject("path parameters", rejection{func(s object) { rule0(s)["path"] = "/api;v=1/orders" }, "spec.rules[0].path",
			"path must not contain ';' or an encoded ';', '/' or '\\' (%3B, %2F, %5C): the gateway answers 400 to every request path with them, so such a rule would never match"}),
		reject("encoded semicolon", rejection{func(s object) { rule0(s)["path"] = "/api%3bv=1" }, "spec.rules[0].path", "path must not contain ';'"}),
		reject("encoded slash", rejection{func(s object) { rule0(s)["path"] = "/a%2Fb" }, "spec.rules[0].path", "path must not contain ';'"}),
		reject("encoded backslash", rejection{func(s object) { rule0(s)["path"] = "/a%5cb" }, "spec.rules[0].path", "path must not contain ';'"}),
		reject("empty path", rejection{func(s object) { rule0(s)["path"] = "" }, "spec.rules[0].path", "should be at least 1 chars long"}),
		reject("path longer than 1024", rejection{func(s object) { rule0(s)["path"] = "/" + strings.Repeat("a", 1024) }, "spec.rules[0].path", "may not be more than 1024 bytes"}),

		// methods
		reject("no methods", rejection{func(s object) { rule0(s)["methods"] = []any{} }, "spec.rules[0].methods", "should have at least 1 items"}),
		reject("unknown method", rejection{func(s object) { rule0(s)["methods"] = []any{"FETCH"} }, "spec.rules[0].methods[0]", "Unsupported value: \"FETCH\""}),
		reject("lower-case method", rejection{func(s object) { rule0(s)["methods"] = []any{"get"} }, "spec.rules[0].methods[0]", "Unsupported value: \"get\""}),
		reject("duplicate method", rejection{func(s object) { rule0(s)["methods"] = []any{"GET", "GET"} }, "spec.rules[0].methods[1]", "Duplicate value"}),
		reject("10 methods", rejection{func(s object) {
			rule0(s)["methods"] = []any{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "GET"}
		}, "spec.rules[0].methods", "must have at most 9 items"}),

		// rule service
		reject("rule service without name", rejection{func(s object) { rule0(s)["service"] = object{"port": int64(80)} }, "spec.rules[0].service.name", "Required value"}),

		// request
		reject("header name with a space", rejection{func(s object) { rule0(s)["request"] = object{"headers": object{"X Tenant": "a"}} }, "spec.rules[0].request.headers",
			"header names must be HTTP tokens such as X-Tenant (no ':' pseudo-headers, spaces or separators)"}),
		reject("pseudo-header", rejection{func(s object) { rule0(s)["request"] = object{"headers": object{":path": "/x"}} }, "spec.rules[0].request.headers",
			"header names must be HTTP tokens"}),
		reject("Host header", rejection{func(s object) { rule0(s)["request"] = object{"headers": object{"Host": "evil.example.com"}} }, "spec.rules[0].request.headers",
			"the Host and X-Forwarded-Host headers are set by the operator and cannot be overridden"}),
		reject("33 headers", rejection{func(s object) { rule0(s)["request"] = object{"headers": manyEntries(33)} }, "spec.rules[0].request.headers", "must have at most 32 items"}),
		reject("cookie name with '='", rejection{func(s object) { rule0(s)["request"] = object{"cookies": object{"a=b": "c"}} }, "spec.rules[0].request.cookies",
			"cookie names must be HTTP tokens"}),
		reject("33 cookies", rejection{func(s object) { rule0(s)["request"] = object{"cookies": manyEntries(33)} }, "spec.rules[0].request.cookies", "must have at most 32 items"}),

		// jwt
		reject("jwt without authentications", rejection{func(s object) { jwtRule0(s)["jwt"] = object{} }, "spec.rules[0].jwt.authentications", "Required value"}),
		reject("jwt with empty authentications", rejection{func(s object) { jwtRule0(s)["jwt"] = object{"authentications": []any{}} },
			"spec.rules[0].jwt.authentications", "should have at least 1 items"}),
		reject("neither jwksUri nor jwks", rejection{func(s object) { delete(auth0(s), "jwksUri") }, "spec.rules[0].jwt.authentications[0]",
			"set exactly one of jwksUri or jwks"}),
		reject("both jwksUri and jwks", rejection{func(s object) { auth0(s)["jwks"] = `{"keys":[]}` }, "spec.rules[0].jwt.authentications[0]",
			"set exactly one of jwksUri or jwks"}),
		reject("jwksUri with another scheme", rejection{func(s object) { auth0(s)["jwksUri"] = "ftp://idp.example.com/jwks" }, "spec.rules[0].jwt.authentications[0].jwksUri",
			"jwksUri must be an absolute http or https URL, for example https://idp.example.com/.well-known/jwks.json"}),
		reject("relative jwksUri", rejection{func(s object) { auth0(s)["jwksUri"] = "/jwks" }, "spec.rules[0].jwt.authentications[0].jwksUri", "jwksUri must be an absolute http or https URL"}),
		reject("jwks that is not a JSON object", rejection{func(s object) {
			a := auth0(s)
			delete(a, "jwksUri")
			a["jwks"] = "keys"
		}, "spec.rules[0].jwt.authentications[0].jwks", `should match '^\s*\{[\s\S]*\}\s*$'`}),
		reject("empty issuer", rejection{func(s object) { auth0(s)["issuer"] = "" }, "spec.rules[0].jwt.authentications[0].issuer", "should be at least 1 chars long"}),
		reject("issuer with white space", rejection{func(s object) { auth0(s)["issuer"] = "https://idp example" }, "spec.rules[0].jwt.authentications[0].issuer",
			"issuer must not contain white space"}),
		reject("issuer with a wildcard", rejection{func(s object) { auth0(s)["issuer"] = "https://idp.example.com/*" }, "spec.rules[0].jwt.authentications[0].issuer",
			"issuer must not contain '*': Istio would read it as a wildcard and trust other issuers"}),
		reject("scope with a wildcard", rejection{func(s object) { authz0(s)["requiredScopes"] = []any{"orders.*"} },
			"spec.rules[0].jwt.authorizations[0].requiredScopes", "values must not start or end with '*': Istio would read it as a wildcard"}),
		reject("audience with a wildcard", rejection{func(s object) { authz0(s)["audiences"] = []any{"*"} },
			"spec.rules[0].jwt.authorizations[0].audiences", "values must not start or end with '*'"}),
		reject("claim value with a wildcard", rejection{func(s object) { authz0(s)["claims"] = object{"tenant": []any{"*-prod"}} },
			"spec.rules[0].jwt.authorizations[0].claims[tenant]", "values must not start or end with '*'"}),
		reject("token header that is not a token", rejection{func(s object) { auth0(s)["fromHeaders"] = []any{object{"name": "X Token"}} },
			"spec.rules[0].jwt.authentications[0].fromHeaders[0].name", "header name must be an HTTP token such as X-Token"}),
		reject("token header listed twice", rejection{func(s object) {
			auth0(s)["fromHeaders"] = []any{object{"name": "X-Token"}, object{"name": "X-Token", "prefix": "Bearer "}}
		}, "spec.rules[0].jwt.authentications[0].fromHeaders[1]", "Duplicate value"}),
		reject("empty token parameter", rejection{func(s object) { auth0(s)["fromParams"] = []any{""} }, "spec.rules[0].jwt.authentications[0].fromParams[0]",
			"should be at least 1 chars long"}),
		reject("token cookie listed twice", rejection{func(s object) { auth0(s)["fromCookies"] = []any{"session", "session"} },
			"spec.rules[0].jwt.authentications[0].fromCookies[1]", "Duplicate value"}),
		reject("empty required scope", rejection{func(s object) { authz0(s)["requiredScopes"] = []any{""} }, "spec.rules[0].jwt.authorizations[0].requiredScopes[0]",
			"should be at least 1 chars long"}),
		reject("empty audience", rejection{func(s object) { authz0(s)["audiences"] = []any{""} }, "spec.rules[0].jwt.authorizations[0].audiences[0]",
			"should be at least 1 chars long"}),
		reject("claim name with brackets", rejection{func(s object) { authz0(s)["claims"] = object{"groups[0]": []any{"a"}} },
			"spec.rules[0].jwt.authorizations[0].claims", "claim names must not be empty or contain '[', ']' or white space"}),
		reject("claim without values", rejection{func(s object) { authz0(s)["claims"] = object{"tenant": []any{}} },
			"spec.rules[0].jwt.authorizations[0].claims.tenant", "should have at least 1 items"}),
		reject("claim-to-header with a bad header", rejection{func(s object) {
			jwtRule0(s)["jwt"].(object)["outputClaimToHeaders"] = []any{object{"header": "X User", "claim": "sub"}}
		}, "spec.rules[0].jwt.outputClaimToHeaders[0].header", "header must be an HTTP token such as X-User"}),
		reject("claim-to-header without claim", rejection{func(s object) {
			jwtRule0(s)["jwt"].(object)["outputClaimToHeaders"] = []any{object{"header": "X-User"}}
		}, "spec.rules[0].jwt.outputClaimToHeaders[0].claim", "Required value"}),

		// extAuth
		reject("extAuth without authorizers", rejection{func(s object) {
			r := rule0(s)
			delete(r, "noAuth")
			r["extAuth"] = object{"authorizers": []any{}}
		}, "spec.rules[0].extAuth.authorizers", "should have at least 1 items"}),
		reject("extAuth restrictions without authentications", rejection{func(s object) {
			r := rule0(s)
			delete(r, "noAuth")
			r["extAuth"] = object{"authorizers": []any{"oauth2-proxy"}, "restrictions": object{}}
		}, "spec.rules[0].extAuth.restrictions.authentications", "Required value"}),

		// CORS
		reject("origin with two match kinds", rejection{func(s object) {
			s["corsPolicy"] = object{"allowOrigins": []any{object{"exact": "https://a.example", "prefix": "https://"}}}
		}, "spec.corsPolicy.allowOrigins[0]", "set exactly one of exact, prefix or regex"}),
		reject("empty origin", rejection{func(s object) { s["corsPolicy"] = object{"allowOrigins": []any{object{}}} }, "spec.corsPolicy.allowOrigins[0]",
			"set exactly one of exact, prefix or regex"}),
		reject("maxAge 0", rejection{func(s object) { s["corsPolicy"] = object{"maxAge": int64(0)} }, "spec.corsPolicy.maxAge", "should be greater than or equal to 1"}),

		// internalTraffic
		reject("allow with a namespace list", rejection{func(s object) {
			s["internalTraffic"] = object{"allow": true, "fromNamespaces": []any{"monitoring"}}
		}, "spec.internalTraffic", "allow: true already admits every in-mesh caller; remove fromNamespaces and fromServiceAccounts, or set allow to false to admit only them"}),
		reject("namespace that is not a DNS label", rejection{func(s object) { s["internalTraffic"] = object{"fromNamespaces": []any{"Monitoring"}} },
			"spec.internalTraffic.fromNamespaces[0]", "should match"}),
		reject("service account without namespace", rejection{func(s object) { s["internalTraffic"] = object{"fromServiceAccounts": []any{"prometheus"}} },
			"spec.internalTraffic.fromServiceAccounts[0]", "should match"}),

		// mtls
		reject("mtls without credentialName", rejection{func(s object) { s["mtls"] = object{"caSecretRef": object{"name": "partner-ca"}} },
			"spec.mtls.credentialName", "Required value"}),
		reject("mtls without caSecretRef", rejection{func(s object) { s["mtls"] = object{"credentialName": "partner-tls"} }, "spec.mtls.caSecretRef", "Required value"}),
		reject("CA secret name not a DNS name", rejection{func(s object) {
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "Partner_CA"}}
		}, "spec.mtls.caSecretRef.name", "should match"}),
		reject("CA key with a slash", rejection{func(s object) {
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca", "key": "a/b"}}
		}, "spec.mtls.caSecretRef.key", "should match"}),
		reject("empty allowed subject", rejection{func(s object) {
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca"}, "allowedSubjects": []any{""}}
		}, "spec.mtls.allowedSubjects[0]", "should be at least 1 chars long"}),
		reject("mtls together with gateway", rejection{func(s object) {
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca"}}
		}, "spec", "spec.gateway cannot be set together with spec.mtls: the operator serves mTLS hosts on a Gateway of its own in the ingress gateway namespace; remove spec.gateway"}),
		reject("mtls with a short host", rejection{func(s object) {
			delete(s, "gateway")
			s["hosts"] = []any{"partner"}
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca"}}
		}, "spec", "with spec.mtls every host must be fully qualified, such as partner.example.com: a short host has no Gateway domain to complete it"}),
		reject("allowed subjects without forwarding the identity", rejection{func(s object) {
			delete(s, "gateway")
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca"},
				"allowedSubjects": []any{"CN=partner-a"}, "forwardClientCert": false}
		}, "spec.mtls", "allowedSubjects and allowedSANs are enforced by the backend's sidecar on the forwarded client identity; remove forwardClientCert: false or the allowed lists"}),
		reject("wildcard allowed subject", rejection{func(s object) {
			delete(s, "gateway")
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca"}, "allowedSubjects": []any{"CN=partner-*"}}
		}, "spec.mtls.allowedSubjects", "values must not start or end with '*': Istio would read it as a wildcard"}),
		reject("wildcard allowed SAN", rejection{func(s object) {
			delete(s, "gateway")
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca"}, "allowedSANs": []any{"*.partner.example"}}
		}, "spec.mtls.allowedSANs", "values must not start or end with '*'"}),

		// ipRestriction
		reject("ipRestriction without lists", rejection{func(s object) { s["ipRestriction"] = object{} }, "spec.ipRestriction",
			"ipRestriction needs an allow or a deny list"}),
		reject("empty allow list", rejection{func(s object) { s["ipRestriction"] = object{"allow": []any{}} }, "spec.ipRestriction.allow", "should have at least 1 items"}),
		reject("invalid IPv4 address", rejection{func(s object) { s["ipRestriction"] = object{"allow": []any{"300.1.1.1"}} }, "spec.ipRestriction.allow[0]",
			"must be an IPv4 or IPv6 address or CIDR range, such as 203.0.113.0/24 or 2001:db8::/32"}),
		reject("prefix length out of range", rejection{func(s object) { s["ipRestriction"] = object{"deny": []any{"10.0.0.0/33"}} }, "spec.ipRestriction.deny[0]",
			"must be an IPv4 or IPv6 address or CIDR range"}),
		reject("host bits set in an IPv4 CIDR", rejection{func(s object) { s["ipRestriction"] = object{"allow": []any{"203.0.113.7/24"}} }, "spec.ipRestriction.allow[0]",
			"CIDR range has bits set after its prefix length; write the network address, such as 203.0.113.0/24 instead of 203.0.113.7/24"}),
		reject("host bits set in an IPv6 CIDR", rejection{func(s object) { s["ipRestriction"] = object{"allow": []any{"2001:db8::1/32"}} }, "spec.ipRestriction.allow[0]",
			"CIDR range has bits set after its prefix length"}),
		reject("IPv4-mapped IPv6 address", rejection{func(s object) { s["ipRestriction"] = object{"allow": []any{"::ffff:1.2.3.4"}} }, "spec.ipRestriction.allow[0]",
			"must be an IPv4 or IPv6 address or CIDR range"}),
		reject("duplicate range", rejection{func(s object) { s["ipRestriction"] = object{"deny": []any{"10.0.0.0/8", "10.0.0.0/8"}} }, "spec.ipRestriction.deny[1]", "Duplicate value"}),
		reject("rule-level invalid range", rejection{func(s object) { rule0(s)["ipRestriction"] = object{"allow": []any{"10.0.0.0/8x"}} }, "spec.rules[0].ipRestriction.allow[0]",
			"must be an IPv4 or IPv6 address or CIDR range"}),
	)

	It("rejects a name longer than 63 characters", func() {
		err := createDryRun(strings.Repeat("a", 64), baseSpec())
		expectRejected(err, "<nil>", nameTooLong)
	})

	DescribeTable("rejects invalid metadata",
		func(mutate func(meta object), field, message string) {
			rule := apiRule("invalid", baseSpec())
			mutate(rule.Object["metadata"].(object))
			expectRejected(submit(rule), field, message)
		},
		Entry("a name that is not a DNS subdomain", func(m object) { m["name"] = "Httpbin" }, "metadata.name", "a lowercase RFC 1123 subdomain"),
		Entry("a label value with a space", func(m object) { m["labels"] = object{"team": "a b"} }, "metadata.labels", "a valid label must be"),
		Entry("an annotation key with two slashes", func(m object) { m["annotations"] = object{"a/b/c": "x"} }, "metadata.annotations", "a valid label key must consist of"),
	)

	// Strict field validation (kubectl's default) refuses unknown fields with a Bad Request
	// before any other check; without it the server would drop them and warn.
	DescribeTable("rejects unknown fields",
		func(mutate func(o object), paths ...string) {
			rule := apiRule("invalid", baseSpec())
			mutate(rule.Object)
			err := submit(rule)
			Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "unexpected error: %v", err)
			for _, p := range paths {
				Expect(err.Error()).To(ContainSubstring("unknown field %q", p))
			}
		},
		Entry("in spec", func(o object) { o["spec"].(object)["host"] = "a.example.com" }, "spec.host"),
		Entry("in a rule, with a CEL error the server never reaches", func(o object) {
			r := rule0(o["spec"].(object))
			r["noAuth"] = false
			r["method"] = "GET"
		}, "spec.rules[0].method"),
		Entry("in metadata, spec and status", func(o object) {
			o["metadata"].(object)["label"] = "x"
			o["spec"].(object)["service"].(object)["ports"] = []any{int64(80)}
			o["status"] = object{"phase": "Ready"}
		}, "metadata.label", "spec.service.ports", "status.phase"),
		Entry("at the root", func(o object) { o["specs"] = object{} }, "specs"),
		// A rule where the schema wants a list of rules: pruning walks it with the list's
		// schema, which has no properties, so its fields are unknown and decoding refuses it
		// before the type check could.
		Entry("in an object given for a list", func(o object) {
			s := o["spec"].(object)
			s["rules"] = rule0(s)
		}, "spec.rules.methods", "spec.rules.noAuth", "spec.rules.path"),
	)

	It("has a failing case for every CEL rule of the CRD", func() {
		raw, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "gateway.apirule.io_apirules.yaml"))
		Expect(err).NotTo(HaveOccurred())
		crd := &apiextensionsv1.CustomResourceDefinition{}
		Expect(yaml.UnmarshalStrict(raw, crd)).To(Succeed())
		messages := celMessages(crd.Spec.Versions[0].Schema.OpenAPIV3Schema)
		Expect(messages).NotTo(BeEmpty())
		for _, message := range messages {
			Expect(slices.ContainsFunc(append(asserted, nameTooLong), func(a string) bool {
				return len(a) >= 15 && strings.Contains(message, a)
			})).To(BeTrue(), "no rejection case asserts the CEL message %q", message)
		}
	})

	DescribeTable("accepts valid APIRules",
		func(mutate func(spec object)) {
			spec := baseSpec()
			mutate(spec)
			Expect(createDryRun("valid", spec)).To(Succeed())
		},
		Entry("the base rule", func(object) {}),
		// The server drops a null it has no default for; so does the offline validation.
		Entry("null optional fields", func(s object) {
			s["timeout"] = nil
			rule0(s)["request"] = nil
		}),
		Entry("wildcard, short and 16 hosts", func(s object) {
			hosts := strings17()[:14]
			s["hosts"] = append(hosts, "*.example.com", "httpbin")
		}),
		Entry("every path form", func(s object) {
			s["rules"] = []any{
				object{"path": "/", "methods": []any{"GET"}, "noAuth": true},
				object{"path": "/a.b/$(c)+/%C3%A9~", "methods": []any{"GET"}, "noAuth": true},
				object{"path": "/api/{*}/items/{**}", "methods": []any{"GET", "POST"}, "noAuth": true},
				object{"path": "/trailing/", "methods": []any{"GET"}, "noAuth": true},
				object{"path": "/*", "methods": []any{"GET"}, "noAuth": true},
			}
		}),
		Entry("a Kyma manifest with external: false and no gateway", func(s object) {
			delete(s, "gateway")
			s["service"].(object)["external"] = false
			s["timeout"] = int64(3900)
		}),
		Entry("rules that each set their service", func(s object) {
			delete(s, "service")
			rule0(s)["service"] = object{"name": "httpbin", "namespace": "shop", "port": int64(8000)}
		}),
		Entry("jwt with every option", func(s object) {
			r := jwtRule0(s)
			r["jwt"] = object{
				"authentications": []any{
					object{"issuer": "https://idp.example.com", "jwksUri": "https://idp.example.com/jwks",
						"fromHeaders": []any{object{"name": "X-Token", "prefix": "Bearer "}}, "fromParams": []any{"token"},
						"fromCookies": []any{"session"}, "forwardOriginalToken": false},
					object{"issuer": "urn:other", "jwks": `{"keys": []}`},
				},
				"authorizations": []any{
					object{"requiredScopes": []any{"read"}, "audiences": []any{"shop"}, "claims": object{"tenant": []any{"a", "b"}}},
				},
				"outputClaimToHeaders": []any{object{"header": "X-User", "claim": "sub"}},
			}
		}),
		Entry("extAuth with restrictions", func(s object) {
			r := rule0(s)
			delete(r, "noAuth")
			r["extAuth"] = object{"authorizers": []any{"oauth2-proxy", "opa-grpc"}, "restrictions": jwtConfig()}
		}),
		Entry("every mode", func(s object) {
			s["corsPolicy"] = object{"allowOrigins": []any{object{"exact": "https://a.example"}, object{"regex": ".*"}},
				"allowMethods": []any{"GET"}, "allowCredentials": true, "maxAge": int64(600)}
			s["internalTraffic"] = object{"fromNamespaces": []any{"monitoring"}, "fromServiceAccounts": []any{"monitoring/prometheus"}}
			delete(s, "gateway")
			s["mtls"] = object{"credentialName": "partner-tls", "caSecretRef": object{"name": "partner-ca", "key": "ca.crt"},
				"allowedSubjects": []any{"CN=partner-a,O=Acme"}, "allowedSANs": []any{"spiffe://partner/a"}, "forwardClientCert": true}
			s["ipRestriction"] = object{"allow": []any{"203.0.113.0/24", "2001:db8::/32", "198.51.100.7"}, "deny": []any{"203.0.113.128/25"}}
			rule0(s)["ipRestriction"] = object{"deny": []any{"::1"}}
			rule0(s)["request"] = object{"headers": object{"X-Tenant": "a"}, "cookies": object{"lang": "en"}}
		}),
	)

	DescribeTable("accepts valid APIRule objects",
		func(mutate func(o object)) {
			rule := apiRule("valid", baseSpec())
			mutate(rule.Object)
			Expect(submit(rule)).To(Succeed())
		},
		// The server truncates the base to leave room for its random suffix within the 63
		// characters of the CEL rule on metadata.name.
		Entry("a long generateName", func(o object) {
			m := o["metadata"].(object)
			delete(m, "name")
			m["generateName"] = strings.Repeat("a", 70)
		}),
		// A create cannot set status (the status subresource): it is dropped, not validated.
		Entry("an invalid status", func(o object) { o["status"] = object{"state": "Nonsense"} }),
		Entry("labels, annotations and finalizers", func(o object) {
			m := o["metadata"].(object)
			m["labels"] = object{"app.kubernetes.io/name": "httpbin"}
			m["annotations"] = object{"example.com/owner": "team a"}
			m["finalizers"] = []any{"example.com/cleanup"}
		}),
	)
})

// A client that skips validation (kubectl apply --validate=false) would have an unknown field
// dropped silently; Kyma's externalGateway is in the schema so that it is refused anyway.
var _ = It("refuses Kyma's externalGateway also when the client skips field validation", func() {
	rule := apiRule("external-gateway", baseSpec())
	rule.Object["spec"].(object)["externalGateway"] = object{"name": "shop-gateway"}
	err := k8s.Create(ctx, rule, client.DryRunAll, client.FieldValidation(metav1.FieldValidationIgnore))
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
	Expect(err.Error()).To(ContainSubstring("spec.externalGateway (Kyma's ExternalGateway) is not supported"))
})
