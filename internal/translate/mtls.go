package translate

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
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

// Headers that carry the client certificate's identity to the backend.
const (
	HeaderClientSubject     = "x-client-cert-subject"
	HeaderClientURISAN      = "x-client-cert-uri-san"
	HeaderClientIssuer      = "x-client-cert-issuer"
	HeaderClientFingerprint = "x-client-cert-sha256"
)

// clientIdentityHeaders are the identity headers and the Envoy variables they are set from.
var clientIdentityHeaders = map[string]string{
	HeaderClientSubject:     "%DOWNSTREAM_PEER_SUBJECT%",
	HeaderClientURISAN:      "%DOWNSTREAM_PEER_URI_SAN%",
	HeaderClientIssuer:      "%DOWNSTREAM_PEER_ISSUER%",
	HeaderClientFingerprint: "%DOWNSTREAM_PEER_FINGERPRINT_256%",
}

// CertificateExpiryWarning is how long before its expiry a server certificate is reported.
const CertificateExpiryWarning = 14 * 24 * time.Hour

// mtlsPort is the port of the operator's mTLS server: the HTTPS port of the ingress gateway.
const mtlsPort = 443

// caCopyKey is the key of the CA bundle in the copied Secret, one of the keys Istio reads.
const caCopyKey = "ca.crt"

// defaultCAKey is the key of spec.mtls.caSecretRef when none is given.
const defaultCAKey = "ca.crt"

// MTLSGatewayName is the name of the operator's mTLS Gateway of an APIRule.
func MTLSGatewayName(owner types.NamespacedName) string { return ownership.ChildName(owner, "mtls") }

// CACopyName is the name of the Secret the APIRule's CA bundle is copied to.
func CACopyName(owner types.NamespacedName) string { return ownership.ChildName(owner, "mtls-ca") }

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
	owner := types.NamespacedName{Namespace: rule.Namespace, Name: rule.Name}
	ca, _ = CASecretRef(rule)
	return types.NamespacedName{Namespace: opts.IngressGatewayNamespace, Name: rule.Spec.MTLS.CredentialName}, ca,
		types.NamespacedName{Namespace: opts.IngressGatewayNamespace, Name: CACopyName(owner)}
}

// SecretFromCore takes a Secret's labels and data.
func SecretFromCore(s *corev1.Secret) *Secret {
	return &Secret{Namespace: s.Namespace, Name: s.Name, Labels: s.Labels, Data: s.Data}
}

// MTLSGateway returns what the translation needs of the operator's own Gateway of an mTLS
// APIRule, or nil for an APIRule without spec.mtls. The gatherer gives it as the resolved
// Gateway: it serves exactly the APIRule's hosts.
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
		Name:      MTLSGatewayName(types.NamespacedName{Namespace: rule.Namespace, Name: rule.Name}),
		Hosts:     hosts,
		Selector:  opts.IngressGatewaySelector,
		Servers:   []GatewayServer{{Port: mtlsPort, Hosts: hosts}},
	}
}

// mtlsPlan is what the mTLS checks resolved.
type mtlsPlan struct {
	caBundle []byte
	// recheckAt is when a certificate finding changes by time alone.
	recheckAt time.Time
}

// checkMTLS resolves the Secrets of an mTLS APIRule and checks their certificates.
func checkMTLS(in Input, specPath *field.Path, findings *Findings) mtlsPlan {
	var plan mtlsPlan
	cfg := in.APIRule.Spec.MTLS
	if cfg == nil {
		return plan
	}
	mtlsPath := specPath.Child("mtls")
	if !checkIngressGatewayKnown(in, mtlsPath, findings) {
		return plan
	}
	secrets := in.MTLS
	if secrets == nil {
		secrets = &MTLSSecrets{}
	}
	ingress := in.Options.IngressGatewayNamespace

	if secrets.Credential == nil {
		findings.add(conditions.ResolvedRefs, conditions.ReasonSecretNotFound, mtlsPath.Child("credentialName"),
			"Secret %s/%s with the server certificate not found; create it in the ingress gateway namespace, for example "+
				"kubectl create secret tls %s -n %s --cert=server.crt --key=server.key", ingress, cfg.CredentialName, cfg.CredentialName, ingress)
	} else {
		plan.recheckAt = checkServerCertificate(in, secrets.Credential, mtlsPath.Child("credentialName"), findings)
	}

	caRef, caKey := CASecretRef(in.APIRule)
	caPath := mtlsPath.Child("caSecretRef")
	switch bundle, ok := secretValue(secrets.CA, caKey); {
	case secrets.CA == nil:
		findings.add(conditions.ResolvedRefs, conditions.ReasonSecretNotFound, caPath.Child("name"),
			"Secret %s with the client CA bundle not found; create it in the APIRule's namespace, for example "+
				"kubectl create secret generic %s -n %s --from-file=%s=ca.pem", caRef, caRef.Name, caRef.Namespace, caKey)
	case !ok:
		findings.add(conditions.ResolvedRefs, conditions.ReasonInvalidCertificate, caPath.Child("key"),
			"Secret %s has no key %q; put the PEM CA bundle under that key or set caSecretRef.key to the key that holds it", caRef, caKey)
	default:
		if err := checkCABundle(bundle); err != nil {
			findings.add(conditions.ResolvedRefs, conditions.ReasonInvalidCertificate, caPath,
				"key %q of Secret %s is not a PEM bundle of X.509 certificates: %v; store the CA certificates in PEM form", caKey, caRef, err)
		} else {
			plan.caBundle = bundle
		}
	}

	if copied := secrets.CACopy; copied != nil && !ownedBy(copied.Labels, in.Owner()) {
		findings.add(conditions.Accepted, conditions.ReasonSecretConflict, mtlsPath,
			"Secret %s/%s, where this APIRule's CA bundle goes, exists and is not managed by this APIRule; delete it so the operator can write it",
			copied.Namespace, copied.Name)
	}
	checkGatewayConflicts(in, specPath.Child("hosts"), findings)
	return plan
}

// secretValue returns the value of a key of a Secret that may be nil.
func secretValue(s *Secret, key string) ([]byte, bool) {
	if s == nil {
		return nil, false
	}
	v, ok := s.Data[key]
	return v, ok && len(v) > 0
}

// checkCABundle requires at least one PEM block, every block an X.509 certificate.
func checkCABundle(bundle []byte) error {
	rest := bundle
	count := 0
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return fmt.Errorf("PEM block %d is a %s, not a CERTIFICATE", count+1, block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("certificate %d: %v", count+1, err)
		}
		count++
	}
	if count == 0 {
		return fmt.Errorf("no PEM certificate found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return fmt.Errorf("text after the last PEM block")
	}
	return nil
}

// checkServerCertificate reports a server certificate that does not name every host or that
// expires within CertificateExpiryWarning. Both are warnings: clients refuse such a server,
// so nothing is exposed that should not be. It returns when the expiry finding changes.
func checkServerCertificate(in Input, s *Secret, path *field.Path, findings *Findings) time.Time {
	certPEM, ok := secretValue(s, corev1.TLSCertKey)
	if !ok {
		certPEM, ok = secretValue(s, "cert")
	}
	var leaf *x509.Certificate
	if ok {
		if block, _ := pem.Decode(certPEM); block != nil && block.Type == "CERTIFICATE" {
			leaf, _ = x509.ParseCertificate(block.Bytes)
		}
	}
	if leaf == nil {
		findings.add(conditions.ResolvedRefs, conditions.ReasonInvalidCertificate, path,
			"Secret %s/%s has no PEM X.509 server certificate under tls.crt or cert; store the certificate chain there, leaf first",
			s.Namespace, s.Name)
		return time.Time{}
	}
	for i, h := range in.APIRule.Spec.Hosts {
		host := string(h)
		covered := leaf.VerifyHostname(host) == nil
		if strings.HasPrefix(host, "*.") {
			covered = slices.Contains(leaf.DNSNames, host)
		}
		if !covered {
			findings.warn(conditions.ResolvedRefs, conditions.ReasonCertificateHostMismatch, field.NewPath("spec", "hosts").Index(i),
				"the server certificate in Secret %s/%s does not name host %q (it names %v), so clients will refuse the connection; "+
					"issue a certificate that covers the host", s.Namespace, s.Name, host, leaf.DNSNames)
		}
	}
	warnFrom := leaf.NotAfter.Add(-CertificateExpiryWarning)
	switch {
	case !in.Now.Before(leaf.NotAfter):
		findings.warn(conditions.ResolvedRefs, conditions.ReasonCertificateExpiring, path,
			"the server certificate in Secret %s/%s expired at %s; clients refuse it until it is renewed",
			s.Namespace, s.Name, leaf.NotAfter.UTC().Format(time.RFC3339))
		return time.Time{}
	case !in.Now.Before(warnFrom):
		findings.warn(conditions.ResolvedRefs, conditions.ReasonCertificateExpiring, path,
			"the server certificate in Secret %s/%s expires at %s; renew it before then",
			s.Namespace, s.Name, leaf.NotAfter.UTC().Format(time.RFC3339))
		return leaf.NotAfter
	}
	return warnFrom
}

// checkGatewayConflicts refuses an mTLS host that another Gateway of the same ingress gateway
// serves on the same port: Istio would keep only one of the two servers for that name, so
// the client certificate might not be asked for. A wildcard server of another Gateway is no
// conflict: Envoy picks the server whose name matches the request most exactly.
func checkGatewayConflicts(in Input, hostsPath *field.Path, findings *Findings) {
	for i, h := range in.APIRule.Spec.Hosts {
		host := string(h)
		for _, gw := range in.OtherGateways {
			if !maps.Equal(gw.Selector, in.Options.IngressGatewaySelector) {
				continue
			}
			for _, server := range gw.Servers {
				if server.Port != mtlsPort || !slices.ContainsFunc(server.Hosts, func(s string) bool { return ServerHost(s) == host }) {
					continue
				}
				findings.add(conditions.Accepted, conditions.ReasonGatewayConflict, hostsPath.Index(i),
					"Gateway %s/%s already serves host %q on port %d of the same ingress gateway; remove the host from that Gateway, "+
						"or remove spec.mtls and use that Gateway", gw.Namespace, gw.Name, host, mtlsPort)
			}
		}
	}
}

// ServerHost strips the namespace/ prefix of a Gateway server host.
func ServerHost(h string) string {
	if _, host, scoped := strings.Cut(h, "/"); scoped {
		return host
	}
	return h
}

// ownedBy says whether labels mark an object as a child of the owner.
func ownedBy(labels map[string]string, owner types.NamespacedName) bool {
	want := ownership.Labels(owner)
	for k, v := range want {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// mtlsObjects returns the operator's Gateway and CA copy of an mTLS APIRule.
func mtlsObjects(in Input, plan mtlsPlan, hosts []string) ([]*networkingclientv1.Gateway, []*corev1.Secret) {
	cfg := in.APIRule.Spec.MTLS
	if cfg == nil {
		return nil, nil
	}
	ingress := in.Options.IngressGatewayNamespace
	caCopy := &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: objectMeta(in, CACopyName(in.Owner()), ingress),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{caCopyKey: plan.caBundle},
	}
	gateway := &networkingclientv1.Gateway{
		TypeMeta:   metav1.TypeMeta{APIVersion: networkingclientv1.SchemeGroupVersion.String(), Kind: "Gateway"},
		ObjectMeta: objectMeta(in, MTLSGatewayName(in.Owner()), ingress),
		Spec: networkingv1.Gateway{
			Selector: in.Options.IngressGatewaySelector,
			Servers: []*networkingv1.Server{{
				Port:  &networkingv1.Port{Number: mtlsPort, Name: "https-mtls", Protocol: "HTTPS"},
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
		when = append(when, &securityv1.Condition{Key: "request.headers[" + HeaderClientSubject + "]", Values: spec.MTLS.AllowedSubjects})
	}
	if len(spec.MTLS.AllowedSANs) > 0 {
		when = append(when, &securityv1.Condition{Key: "request.headers[" + HeaderClientURISAN + "]", Values: spec.MTLS.AllowedSANs})
	}
	return when
}

// checkReservedHeaders refuses request headers that would overwrite the client identity.
func checkReservedHeaders(spec *apiv2.APIRuleSpec, specPath *field.Path, findings *Findings) {
	for i, rule := range spec.Rules {
		if rule.Request == nil {
			continue
		}
		names := slices.Sorted(maps.Keys(rule.Request.Headers))
		for _, name := range names {
			if _, reserved := clientIdentityHeaders[strings.ToLower(name)]; reserved {
				findings.add(conditions.Accepted, conditions.ReasonInvalidSpec, specPath.Child("rules").Index(i).Child("request", "headers").Key(name),
					"header %s carries the client certificate identity and is set only by the operator; use another header name", name)
			}
		}
	}
}
