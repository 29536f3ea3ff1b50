package translate_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	networkingv1 "istio.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
)

var now = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// mtlsInput is a valid mTLS APIRule with its Secrets; the server certificate is valid until
// serverNotAfter.
func mtlsInput(t *testing.T, serverNotAfter time.Time, rules ...apiv2.Rule) model.Input {
	t.Helper()
	// Valid from a year ago: a CA valid only from a future time is a finding of its own.
	ca, err := fixtures.NewCA("partner-ca", now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.NewServerCertificate(serverNotAfter, "partner.example.com")
	if err != nil {
		t.Fatal(err)
	}
	in := withMeta(input(rules...))
	in.APIRule.Spec.Hosts = []apiv2.Host{"partner.example.com"}
	in.APIRule.Spec.Gateway = nil
	in.Gateway = nil
	in.APIRule.Spec.MTLS = &apiv2.MTLS{
		CredentialName:  "partner-tls",
		CASecretRef:     apiv2.SecretKeyReference{Name: "partner-ca"},
		AllowedSubjects: []string{"CN=partner-a,O=Acme"},
		AllowedSANs:     []string{"spiffe://partner/a"},
	}
	in.MTLS = &model.MTLSSecrets{
		Credential: model.SecretFromCore(server.TLSSecret("istio-system", "partner-tls")),
		CA:         model.SecretFromCore(ca.CASecret("shop", "partner-ca")),
	}
	in.Now = now
	return in
}

func TestMTLSGatewayCACopyAndRoute(t *testing.T) {
	in := mtlsInput(t, now.AddDate(1, 0, 0), noAuthRule("/a", "GET"))
	out := pipeline.Run(in)
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	owner := types.NamespacedName{Namespace: "shop", Name: "api"}

	if len(out.Objects.Gateways) != 1 || len(out.Objects.Secrets) != 1 {
		t.Fatalf("%d Gateways and %d Secrets, want one of each", len(out.Objects.Gateways), len(out.Objects.Secrets))
	}
	gw, caCopy := out.Objects.Gateways[0], out.Objects.Secrets[0]
	if gw.Namespace != "istio-system" || gw.Name != model.MTLSGatewayName(owner) || len(gw.OwnerReferences) != 0 ||
		gw.Labels[ownership.LabelName] != "api" {
		t.Errorf("Gateway %s/%s labels %v ownerReferences %v", gw.Namespace, gw.Name, gw.Labels, gw.OwnerReferences)
	}
	if !maps.Equal(gw.Spec.Selector, ingressSelector) || len(gw.Spec.Servers) != 1 {
		t.Fatalf("Gateway spec %v", &gw.Spec)
	}
	server := gw.Spec.Servers[0]
	if server.Port.Number != 443 || server.Port.Protocol != "HTTPS" || !slices.Equal(server.Hosts, []string{"partner.example.com"}) {
		t.Errorf("server %v", server)
	}
	if server.Tls.Mode != networkingv1.ServerTLSSettings_MUTUAL || server.Tls.CredentialName != "partner-tls" ||
		server.Tls.CaCertCredentialName != caCopy.Name || !slices.Equal(server.Tls.SubjectAltNames, []string{"spiffe://partner/a"}) {
		t.Errorf("server TLS %v", server.Tls)
	}
	if caCopy.Namespace != "istio-system" || caCopy.Name != model.CACopyName(owner) ||
		string(caCopy.Data["ca.crt"]) != string(in.MTLS.CA.Data["ca.crt"]) {
		t.Errorf("CA copy %s/%s data %v", caCopy.Namespace, caCopy.Name, caCopy.Data)
	}

	vs := out.Objects.VirtualServices[0]
	if !slices.Equal(vs.Spec.Gateways, []string{"istio-system/" + gw.Name}) {
		t.Errorf("route bound to %v, want the mTLS Gateway", vs.Spec.Gateways)
	}
	set := vs.Spec.Http[1].Headers.Request.Set
	for name, variable := range map[string]string{
		"x-client-cert-subject": "%DOWNSTREAM_PEER_SUBJECT%", "x-client-cert-uri-san": "%DOWNSTREAM_PEER_URI_SAN%",
		"x-client-cert-issuer": "%DOWNSTREAM_PEER_ISSUER%", "x-client-cert-sha256": "%DOWNSTREAM_PEER_FINGERPRINT_256%",
	} {
		if set[name] != variable {
			t.Errorf("route sets %s to %q, want %q", name, set[name], variable)
		}
	}

	rule := out.Objects.AuthorizationPolicies[0].Spec.Rules[0]
	if !slices.Equal(rule.From[0].Source.Principals, []string{principal}) {
		t.Errorf("policy admits %v, want the ingress gateway", rule.From[0].Source.Principals)
	}
	want := map[string][]string{
		"request.headers[x-apirule-route]":       {model.RouteToken(in.APIRule, 0)},
		"request.headers[x-client-cert-subject]": {"CN=partner-a,O=Acme"},
		"request.headers[x-client-cert-uri-san]": {"spiffe://partner/a"},
	}
	if len(rule.When) != len(want) {
		t.Fatalf("policy conditions %v, want %v", rule.When, want)
	}
	for _, c := range rule.When {
		if !slices.Equal(want[c.Key], c.Values) {
			t.Errorf("condition %s = %v, want %v", c.Key, c.Values, want[c.Key])
		}
	}

	// The order they are written in is internal/apply's kinds table, tested there.
	objects := out.Objects.All()
	kinds := make([]string, len(objects))
	for i, obj := range objects {
		kinds[i] = obj.GetObjectKind().GroupVersionKind().Kind
	}
	if got := strings.Join(kinds, ","); got != "AuthorizationPolicy,Secret,Gateway,VirtualService" {
		t.Errorf("objects %s; want a policy, the CA copy, the mTLS Gateway and the route", got)
	}
}

func TestMTLSJWTRuleRequiresIdentityToo(t *testing.T) {
	jwtRule := apiv2.Rule{Path: "/api", Methods: []apiv2.HTTPMethod{"GET"}, JWT: &apiv2.JWTConfig{
		Authentications: []apiv2.JWTAuthentication{{Issuer: "https://idp.example.com", JWKSURI: ptr("https://idp.example.com/jwks")}},
	}}
	out := pipeline.Run(mtlsInput(t, now.AddDate(1, 0, 0), jwtRule))
	if len(out.Findings) > 0 {
		t.Fatalf("unexpected findings: %s", out.Findings.Summary())
	}
	keys := []string{}
	for _, c := range out.Objects.AuthorizationPolicies[0].Spec.Rules[0].When {
		keys = append(keys, c.Key)
	}
	if !slices.Contains(keys, "request.headers[x-client-cert-subject]") || !slices.Contains(keys, "request.auth.claims[iss]") {
		t.Errorf("jwt rule conditions %v, want the issuer and the client identity", keys)
	}
}

func TestMTLSWithoutForwardingRemovesIdentityHeaders(t *testing.T) {
	in := mtlsInput(t, now.AddDate(1, 0, 0), noAuthRule("/a", "GET"))
	no := false
	in.APIRule.Spec.MTLS.ForwardClientCert = &no
	in.APIRule.Spec.MTLS.AllowedSubjects, in.APIRule.Spec.MTLS.AllowedSANs = nil, nil
	out := pipeline.Run(in)
	ops := out.Objects.VirtualServices[0].Spec.Http[1].Headers.Request
	for name := range model.ClientIdentityHeaders {
		if _, set := ops.Set[name]; set || !slices.Contains(ops.Remove, name) {
			t.Errorf("header %s: set %v, removed %v; want removed", name, set, ops.Remove)
		}
	}
	// Only the route binding: no identity conditions without allowed identities.
	if when := out.Objects.AuthorizationPolicies[0].Spec.Rules[0].When; len(when) != 1 || when[0].Key != "request.headers["+model.RouteHeader+"]" {
		t.Errorf("conditions without allowed identities: %v", when)
	}
}

func TestMTLSSecretProblemsBlockEveryObject(t *testing.T) {
	cases := []struct {
		name   string
		change func(*model.Input)
		reason conditions.Reason
		field  string
	}{
		{"operator without an ingress gateway selector", func(in *model.Input) { in.Options.IngressGatewaySelector = nil },
			conditions.ReasonInvalidSpec, "spec.mtls"},
		{"server certificate Secret missing", func(in *model.Input) { in.MTLS.Credential = nil },
			conditions.ReasonSecretNotFound, "spec.mtls.credentialName"},
		{"server certificate not PEM", func(in *model.Input) { in.MTLS.Credential.Data["tls.crt"] = []byte("not a certificate") },
			conditions.ReasonInvalidCertificate, "spec.mtls.credentialName"},
		{"CA Secret missing", func(in *model.Input) { in.MTLS.CA = nil },
			conditions.ReasonSecretNotFound, "spec.mtls.caSecretRef.name"},
		{"CA key missing", func(in *model.Input) { key := "bundle.pem"; in.APIRule.Spec.MTLS.CASecretRef.Key = &key },
			conditions.ReasonInvalidCertificate, "spec.mtls.caSecretRef.key"},
		{"CA not PEM", func(in *model.Input) {
			in.MTLS.CA.Data["ca.crt"] = []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
		},
			conditions.ReasonInvalidCertificate, "spec.mtls.caSecretRef"},
		{"CA is a key", func(in *model.Input) { in.MTLS.CA.Data["ca.crt"] = in.MTLS.Credential.Data["tls.key"] },
			conditions.ReasonInvalidCertificate, "spec.mtls.caSecretRef"},
		{"CA copy belongs to another APIRule", func(in *model.Input) {
			in.MTLS.CACopy = &model.Secret{Namespace: "istio-system", Name: "x", Labels: ownership.Labels(types.NamespacedName{Namespace: "shop", Name: "other"})}
		}, conditions.ReasonSecretConflict, "spec.mtls"},
		{"another Gateway serves the host on 443", func(in *model.Input) {
			in.OtherGateways = []model.Gateway{{Namespace: "istio-system", Name: "partners", Selector: ingressSelector,
				Servers: []model.GatewayServer{{Port: 443, Hosts: []string{"shop/partner.example.com"}}}}}
		}, conditions.ReasonGatewayConflict, "spec.hosts[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := mtlsInput(t, now.AddDate(1, 0, 0), noAuthRule("/a", "GET"))
			c.change(&in)
			out := pipeline.Run(in)
			if objects := out.Objects.All(); len(objects) > 0 {
				t.Errorf("%d objects generated despite the error", len(objects))
			}
			if len(out.Findings) != 1 || out.Findings[0].Reason != c.reason || out.Findings[0].Field.String() != c.field {
				t.Fatalf("findings %v, want one %s on %s", out.Findings, c.reason, c.field)
			}
		})
	}
}

func TestMTLSGatewaysThatDoNotConflict(t *testing.T) {
	in := mtlsInput(t, now.AddDate(1, 0, 0), noAuthRule("/a", "GET"))
	in.OtherGateways = []model.Gateway{
		{Namespace: "istio-system", Name: "wildcard", Selector: ingressSelector, Servers: []model.GatewayServer{{Port: 443, Hosts: []string{"*.example.com"}}}},
		{Namespace: "istio-system", Name: "plain-http", Selector: ingressSelector, Servers: []model.GatewayServer{{Port: 80, Hosts: []string{"partner.example.com"}}}},
		{Namespace: "istio-system", Name: "other-ingress", Selector: map[string]string{"istio": "eastwest"},
			Servers: []model.GatewayServer{{Port: 443, Hosts: []string{"partner.example.com"}}}},
	}
	if out := pipeline.Run(in); len(out.Findings) > 0 {
		t.Errorf("findings %v; a wildcard server, another port or another ingress gateway is no conflict", out.Findings)
	}
}

func TestServerCertificateWarnings(t *testing.T) {
	cases := []struct {
		name      string
		notAfter  time.Time
		host      apiv2.Host
		reason    conditions.Reason
		recheckAt time.Time
	}{
		{"valid", now.AddDate(1, 0, 0), "partner.example.com", "", now.AddDate(1, 0, 0).Add(-check.CertificateExpiryWarning)},
		{"expires in 10 days", now.AddDate(0, 0, 10), "partner.example.com", conditions.ReasonCertificateExpiring, now.AddDate(0, 0, 10)},
		{"expired", now.Add(-time.Hour), "partner.example.com", conditions.ReasonCertificateExpiring, time.Time{}},
		{"does not name the host", now.AddDate(1, 0, 0), "other.example.com", conditions.ReasonCertificateHostMismatch,
			now.AddDate(1, 0, 0).Add(-check.CertificateExpiryWarning)},
		// fixtures certificates are valid for two years until notAfter: this one from a year on.
		{"not valid yet", now.AddDate(3, 0, 0), "partner.example.com", conditions.ReasonCertificateNotYetValid, now.AddDate(1, 0, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := mtlsInput(t, c.notAfter, noAuthRule("/a", "GET"))
			in.APIRule.Spec.Hosts = []apiv2.Host{c.host}
			out := pipeline.Run(in)
			if len(out.Findings.Errors()) > 0 || len(out.Objects.Gateways) != 1 {
				t.Fatalf("errors %v; a certificate problem must not block the objects", out.Findings.Errors())
			}
			warnings := out.Findings.Warnings()
			switch {
			case c.reason == "" && len(warnings) > 0:
				t.Errorf("warnings %v, want none", warnings)
			case c.reason != "" && (len(warnings) != 1 || warnings[0].Reason != c.reason):
				t.Errorf("warnings %v, want one %s", warnings, c.reason)
			}
			if !out.RecheckAt.Equal(c.recheckAt) {
				t.Errorf("recheck at %v, want %v", out.RecheckAt, c.recheckAt)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestCANotYetValid: a CA certificate valid only from a future time makes every client
// certificate it signed fail the handshake until then; the APIRule says so and is rechecked
// when the CA becomes valid.
func TestCANotYetValid(t *testing.T) {
	in := mtlsInput(t, now.AddDate(1, 0, 0), noAuthRule("/a", "GET"))
	future, err := fixtures.NewCA("partner-ca-next", now.AddDate(2, 0, 0).Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	valid, err := fixtures.NewCA("partner-ca", now.AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	// A bundle of a valid CA and one valid from an hour on.
	in.MTLS.CA.Data["ca.crt"] = append(append([]byte{}, valid.CertPEM...), future.CertPEM...)
	out := pipeline.Run(in)
	if len(out.Findings.Errors()) > 0 || len(out.Objects.Gateways) != 1 {
		t.Fatalf("errors %v; a certificate not valid yet must not block the objects", out.Findings.Errors())
	}
	warnings := out.Findings.Warnings()
	if len(warnings) != 1 || warnings[0].Reason != conditions.ReasonCertificateNotYetValid ||
		!strings.Contains(warnings[0].Message, "partner-ca-next") || !strings.Contains(warnings[0].Message, now.Add(time.Hour).Format(time.RFC3339)) {
		t.Fatalf("warnings %v, want one CertificateNotYetValid naming partner-ca-next and when it becomes valid", warnings)
	}
	if want := now.Add(time.Hour); !out.RecheckAt.Equal(want) {
		t.Errorf("recheck at %v, want %v, when the CA becomes valid", out.RecheckAt, want)
	}
	in.Now = now.Add(2 * time.Hour)
	if out := pipeline.Run(in); len(out.Findings.Warnings()) != 0 {
		t.Errorf("warnings %v once the CA is valid", out.Findings.Warnings())
	}
}
