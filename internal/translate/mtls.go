package translate

import (
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// mTLS-certificate mode. The operator owns a Gateway in the ingress gateway namespace with one
// HTTPS server in MUTUAL mode for exactly the APIRule's hosts, so Envoy rejects a client
// without a certificate signed by the APIRule's CA during the handshake. The CA bundle is
// copied to a Secret of this APIRule's own, named in the server's caCertCredentialName: unlike
// the <credentialName>-cacert convention, that lets several APIRules share one server
// certificate with different CAs.
//
// The identity of the client certificate reaches the backend only in headers that the route
// sets from Envoy's view of the TLS session, overwriting whatever the client sent. Allowed
// subjects and SANs are checked by the backend's sidecar on those headers, together with the
// ingress gateway's principal: a caller inside the mesh cannot forge them, because it is not
// the gateway, and a client outside cannot, because the gateway overwrites them. Allowed SANs
// are also required at the handshake (the server's subjectAltNames).

// mtlsObjects returns the operator's Gateway and CA copy of an mTLS APIRule.
func mtlsObjects(in model.Input, hosts []string) ([]*networkingclientv1.Gateway, []*corev1.Secret) {
	cfg := in.APIRule.Spec.MTLS
	if cfg == nil {
		return nil, nil
	}
	ingress := in.Options.IngressGatewayNamespace
	caCopy := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(in, model.CACopyName(in.Owner()), ingress),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{model.CACopyKey: caBundle(in)},
	}
	gateway := &networkingclientv1.Gateway{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingclientv1.SchemeGroupVersion.String(), Kind: "Gateway"},
		ObjectMeta: objectMeta(in, model.MTLSGatewayName(in.Owner()), ingress),
		Spec: networkingv1.Gateway{
			Selector: in.Options.IngressGatewaySelector,
			Servers: []*networkingv1.Server{{
				Port:  &networkingv1.Port{Number: model.MTLSPort, Name: "https-mtls", Protocol: "HTTPS"},
				Hosts: hosts,
				Tls: &networkingv1.ServerTLSSettings{
					Mode:                 networkingv1.ServerTLSSettings_MUTUAL,
					CredentialName:       cfg.CredentialName,
					CaCertCredentialName: caCopy.Name,
					SubjectAltNames:      cfg.AllowedSANs,
					MinProtocolVersion:   networkingv1.ServerTLSSettings_TLSV1_2,
				},
			}},
		},
	}
	return []*networkingclientv1.Gateway{gateway}, []*corev1.Secret{caCopy}
}

// caBundle is the CA bundle of an mTLS APIRule as its Secret holds it; check.Full has
// verified that it is PEM X.509.
func caBundle(in model.Input) []byte {
	if in.MTLS == nil || in.MTLS.CA == nil {
		return nil
	}
	_, key := model.CASecretRef(in.APIRule)
	return in.MTLS.CA.Data[key]
}

// forwardsClientIdentity says whether the route sets the identity headers; when it does not,
// it removes them, so the backend never sees values a client made up.
func forwardsClientIdentity(cfg *apiv2.MTLS) bool {
	return cfg.ForwardClientCert == nil || *cfg.ForwardClientCert || len(cfg.AllowedSubjects) > 0 || len(cfg.AllowedSANs) > 0
}

// clientIdentityConditions are the conditions every rule admitting traffic from the gateway
// adds for the allowed identities. The headers are trustworthy only from the gateway, which
// every such rule also requires.
func clientIdentityConditions(spec *apiv2.APIRuleSpec) []*securityv1.Condition {
	if spec.MTLS == nil {
		return nil
	}
	var when []*securityv1.Condition
	if len(spec.MTLS.AllowedSubjects) > 0 {
		when = append(when, &securityv1.Condition{Key: "request.headers[" + model.HeaderClientSubject + "]", Values: spec.MTLS.AllowedSubjects})
	}
	if len(spec.MTLS.AllowedSANs) > 0 {
		when = append(when, &securityv1.Condition{Key: "request.headers[" + model.HeaderClientURISAN + "]", Values: spec.MTLS.AllowedSANs})
	}
	return when
}
