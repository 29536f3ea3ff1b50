package check

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// CertificateExpiryWarning is how long before its expiry a server certificate is reported.
const CertificateExpiryWarning = 14 * 24 * time.Hour

// checkMTLS resolves the Secrets of an mTLS APIRule and checks their certificates.
func checkMTLS(in model.Input, specPath *field.Path, fs *Findings) (recheckAt time.Time) {
	cfg := in.APIRule.Spec.MTLS
	if cfg == nil {
		return recheckAt
	}
	mtlsPath := specPath.Child("mtls")
	if !in.Options.IngressGatewayKnown() {
		return recheckAt // Static reports it
	}
	secrets := in.MTLS
	if secrets == nil {
		secrets = &model.MTLSSecrets{}
	}
	ingress := in.Options.IngressGatewayNamespace

	if secrets.Credential == nil {
		fs.add(conditions.ResolvedRefs, conditions.ReasonSecretNotFound, mtlsPath.Child("credentialName"), cfg.CredentialName,
			"Secret %s/%s with the server certificate not found; create it in the ingress gateway namespace, for example "+
				"kubectl create secret tls %s -n %s --cert=server.crt --key=server.key", ingress, cfg.CredentialName, cfg.CredentialName, ingress)
	} else {
		recheckAt = checkServerCertificate(in, secrets.Credential, mtlsPath.Child("credentialName"), fs)
	}

	caRef, caKey := model.CASecretRef(in.APIRule)
	caPath := mtlsPath.Child("caSecretRef")
	switch bundle, ok := secretValue(secrets.CA, caKey); {
	case secrets.CA == nil:
		fs.add(conditions.ResolvedRefs, conditions.ReasonSecretNotFound, caPath.Child("name"), caRef.Name,
			"Secret %s with the client CA bundle not found; create it in the APIRule's namespace, for example "+
				"kubectl create secret generic %s -n %s --from-file=%s=ca.pem", caRef, caRef.Name, caRef.Namespace, caKey)
	case !ok:
		fs.add(conditions.ResolvedRefs, conditions.ReasonInvalidCertificate, caPath.Child("key"), caKey,
			"Secret %s has no key %q; put the PEM CA bundle under that key or set caSecretRef.key to the key that holds it", caRef, caKey)
	default:
		cas, err := parseCABundle(bundle)
		if err != nil {
			fs.add(conditions.ResolvedRefs, conditions.ReasonInvalidCertificate, caPath, caKey,
				"key %q of Secret %s is not a PEM bundle of X.509 certificates: %v; store the CA certificates in PEM form", caKey, caRef, err)
		}
		for _, ca := range cas {
			if in.Now.Before(ca.NotBefore) {
				fs.warn(conditions.ResolvedRefs, conditions.ReasonCertificateNotYetValid, caPath, caKey,
					"CA certificate %q in Secret %s is valid only from %s, so client certificates it signed are refused until then; "+
						"issue it valid from now (check the clock of the machine that made it)",
					ca.Subject.String(), caRef, ca.NotBefore.UTC().Format(time.RFC3339))
				recheckAt = earliest(recheckAt, ca.NotBefore)
			}
		}
	}

	if copied := secrets.CACopy; copied != nil && !model.OwnedBy(copied.Labels, in.Owner()) {
		fs.add(conditions.Accepted, conditions.ReasonSecretConflict, mtlsPath, copied.Name,
			"Secret %s/%s, where this APIRule's CA bundle goes, exists and is not managed by this APIRule; delete it so the operator can write it",
			copied.Namespace, copied.Name)
	}
	checkGatewayConflicts(in, specPath.Child("hosts"), fs)
	return recheckAt
}

// secretValue returns the value of a key of a Secret that may be nil.
func secretValue(s *model.Secret, key string) ([]byte, bool) {
	if s == nil {
		return nil, false
	}
	v, ok := s.Data[key]
	return v, ok && len(v) > 0
}

// earliest returns the earlier of two recheck times, a zero time meaning none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// parseCABundle requires at least one PEM block, every block an X.509 certificate, and
// returns the certificates it could parse.
func parseCABundle(bundle []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := bundle
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return certs, fmt.Errorf("PEM block %d is a %s, not a CERTIFICATE", len(certs)+1, block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return certs, fmt.Errorf("certificate %d: %v", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM certificate found")
	}
	if strings.TrimSpace(string(rest)) != "" {
		return certs, fmt.Errorf("text after the last PEM block")
	}
	return certs, nil
}

// checkServerCertificate reports a server certificate that does not name every host, that is
// not valid yet, or that expires within CertificateExpiryWarning. All are warnings: clients
// refuse such a server, so nothing is exposed that should not be. It returns when the
// validity finding changes.
func checkServerCertificate(in model.Input, s *model.Secret, path *field.Path, fs *Findings) time.Time {
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
		fs.add(conditions.ResolvedRefs, conditions.ReasonInvalidCertificate, path, s.Name,
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
			fs.warn(conditions.ResolvedRefs, conditions.ReasonCertificateHostMismatch, field.NewPath("spec", "hosts").Index(i), host,
				"the server certificate in Secret %s/%s does not name host %q (it names %v), so clients will refuse the connection; "+
					"issue a certificate that covers the host", s.Namespace, s.Name, host, leaf.DNSNames)
		}
	}
	if in.Now.Before(leaf.NotBefore) {
		// Checked before expiry: until it is valid, clients refuse it whatever its end.
		fs.warn(conditions.ResolvedRefs, conditions.ReasonCertificateNotYetValid, path, s.Name,
			"the server certificate in Secret %s/%s is valid only from %s, so clients refuse it until then; "+
				"issue it valid from now (check the clock of the machine that made it)",
			s.Namespace, s.Name, leaf.NotBefore.UTC().Format(time.RFC3339))
		return leaf.NotBefore
	}
	warnFrom := leaf.NotAfter.Add(-CertificateExpiryWarning)
	switch {
	case !in.Now.Before(leaf.NotAfter):
		fs.warn(conditions.ResolvedRefs, conditions.ReasonCertificateExpiring, path, s.Name,
			"the server certificate in Secret %s/%s expired at %s; clients refuse it until it is renewed",
			s.Namespace, s.Name, leaf.NotAfter.UTC().Format(time.RFC3339))
		return time.Time{}
	case !in.Now.Before(warnFrom):
		fs.warn(conditions.ResolvedRefs, conditions.ReasonCertificateExpiring, path, s.Name,
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
func checkGatewayConflicts(in model.Input, hostsPath *field.Path, fs *Findings) {
	for i, h := range in.APIRule.Spec.Hosts {
		host := string(h)
		for _, gw := range in.OtherGateways {
			if !maps.Equal(gw.Selector, in.Options.IngressGatewaySelector) {
				continue
			}
			for _, server := range gw.Servers {
				if server.Port != model.MTLSPort || !slices.ContainsFunc(server.Hosts, func(s string) bool { return model.ServerHost(s) == host }) {
					continue
				}
				fs.add(conditions.Accepted, conditions.ReasonGatewayConflict, hostsPath.Index(i), host,
					"Gateway %s/%s already serves host %q on port %d of the same ingress gateway; remove the host from that Gateway, "+
						"or remove spec.mtls and use that Gateway", gw.Namespace, gw.Name, host, model.MTLSPort)
			}
		}
	}
}

// checkFronting refuses an mTLS host that another route of the same ingress gateway covers:
// the TLS server name picks the gateway server and the Host header the virtual host, so a
// client naming another server in TLS and sending the mTLS host as Host would reach the other
// route, and the backend would see that host, without a client certificate. A route the
// operator does not manage always prevails; between two APIRules, the one whose current spec
// serves, else the older (as for workload conflicts). The other is refused, naming it.
func checkFronting(in model.Input, hostsPath *field.Path, fs *Findings) {
	mine := in.APIRule
	for _, f := range in.Fronting {
		if f.APIRule != nil && !peerPrevails(f.APIRule, mine) {
			continue // the other side is refused by its own check
		}
		if mine.Spec.MTLS != nil {
			other := "VirtualService " + f.Route.String() + ", which the operator does not manage,"
			if f.APIRule != nil {
				other = "APIRule " + model.Owner(f.APIRule).String()
			}
			fs.add(conditions.Accepted, conditions.ReasonMTLSHostCovered, hostsPath.Index(hostIndex(mine, f.Host)), f.Host,
				"%s routes %s through another server of the same ingress gateway, so a client sending another TLS server name "+
					"with Host %s would reach it without a client certificate; remove %s from it, or use a host it does not cover",
				other, f.Pattern, f.Host, f.Pattern)
			continue
		}
		fs.add(conditions.Accepted, conditions.ReasonMTLSHostCovered, hostsPath.Index(hostIndex(mine, f.Pattern)), f.Pattern,
			"wildcard host %s covers %s, which APIRule %s serves with client certificates on the same ingress gateway, so a "+
				"client sending another TLS server name with Host %s would reach this route without one; list the hosts instead",
			f.Pattern, f.Host, model.Owner(f.APIRule), f.Host)
	}
}

// hostIndex is the position of a host in spec.hosts, or of the host it resolved from.
func hostIndex(rule *apiv2.APIRule, host string) int {
	for i, h := range rule.Spec.Hosts {
		if string(h) == host || strings.HasPrefix(host, string(h)+".") {
			return i
		}
	}
	return 0
}
