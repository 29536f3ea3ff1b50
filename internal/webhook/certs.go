package webhook

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/apirule-operator/apirule-operator/internal/pki"
)

// The keys of the serving-certificate Secret. tls.crt, tls.key and ca.crt are the keys
// cert-manager writes, so the Secret has the same shape in both certificate modes; ca.key is
// only in the self-managed mode, which signs new serving certificates with it.
const (
	KeyCert  = "tls.crt"
	KeyKey   = "tls.key"
	KeyCA    = "ca.crt"
	KeyCAKey = "ca.key"
)

// DefaultValidity is the lifetime of a self-managed CA and serving certificate. They are
// replaced after two thirds of it, so a certificate in use always has months left.
const DefaultValidity = 365 * 24 * time.Hour

// bundle is a CA, its key, and a serving certificate it signed. caPEM may hold a second,
// older CA after a rotation: the API server keeps trusting certificates the old CA signed
// until every replica serves the new one.
type bundle struct {
	certPEM, keyPEM, caPEM, caKeyPEM []byte

	cert *x509.Certificate
	cas  []*x509.Certificate
}

func (b *bundle) data() map[string][]byte {
	return map[string][]byte{KeyCert: b.certPEM, KeyKey: b.keyPEM, KeyCA: b.caPEM, KeyCAKey: b.caKeyPEM}
}

// parseBundle reads a Secret's data. It fails when anything is missing or does not parse, or
// when the key does not belong to the certificate.
func parseBundle(data map[string][]byte) (*bundle, error) {
	b := &bundle{certPEM: data[KeyCert], keyPEM: data[KeyKey], caPEM: data[KeyCA], caKeyPEM: data[KeyCAKey]}
	for key, v := range map[string][]byte{KeyCert: b.certPEM, KeyKey: b.keyPEM, KeyCA: b.caPEM, KeyCAKey: b.caKeyPEM} {
		if len(v) == 0 {
			return nil, fmt.Errorf("%s is missing", key)
		}
	}
	pair, err := tls.X509KeyPair(b.certPEM, b.keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s and %s do not form a key pair: %w", KeyCert, KeyKey, err)
	}
	if b.cert, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
		return nil, fmt.Errorf("%s: %w", KeyCert, err)
	}
	rest := b.caPEM
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", KeyCA, err)
		}
		b.cas = append(b.cas, ca)
	}
	if len(b.cas) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", KeyCA)
	}
	if _, err := tls.X509KeyPair(pki.CertificatePEM(b.cas[0].Raw), b.caKeyPEM); err != nil {
		return nil, fmt.Errorf("%s does not belong to the first certificate of %s: %w", KeyCAKey, KeyCA, err)
	}
	return b, nil
}

// rotationDue says why the bundle must be replaced, or "" when it can stay: it is missing or
// unreadable, the serving certificate is past two thirds of its lifetime or not yet valid,
// it does not name every DNS name of the webhook Service, or the current CA did not sign it.
func rotationDue(b *bundle, dnsNames []string, now time.Time) string {
	if b == nil {
		return "there is no serving certificate"
	}
	lifetime := b.cert.NotAfter.Sub(b.cert.NotBefore)
	renewAt := b.cert.NotBefore.Add(lifetime * 2 / 3)
	switch {
	case now.Before(b.cert.NotBefore):
		return fmt.Sprintf("the serving certificate is not valid before %s", b.cert.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(renewAt):
		return fmt.Sprintf("the serving certificate expires at %s and was due for renewal at %s",
			b.cert.NotAfter.UTC().Format(time.RFC3339), renewAt.UTC().Format(time.RFC3339))
	case !now.Before(b.cas[0].NotAfter):
		return "the CA has expired"
	}
	for _, name := range dnsNames {
		if !slices.Contains(b.cert.DNSNames, name) {
			return fmt.Sprintf("the serving certificate does not name %s", name)
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(b.cas[0])
	if _, err := b.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: dnsNames[0], CurrentTime: now}); err != nil {
		return fmt.Sprintf("the serving certificate does not verify against the CA: %v", err)
	}
	return ""
}

// issue creates a new CA and a serving certificate for dnsNames signed by it. previous, when
// set, is the CA that signed the certificate in use; it stays in the CA bundle next to the new
// one so that replicas still serving the old certificate are trusted during the switch.
func issue(dnsNames []string, now time.Time, validity time.Duration, previous *x509.Certificate) (*bundle, error) {
	if len(dnsNames) == 0 {
		return nil, errors.New("no DNS name for the serving certificate")
	}
	// Backdated a little, so that an API server whose clock is slightly behind accepts it.
	notBefore := now.Add(-5 * time.Minute).Truncate(time.Second)
	notAfter := now.Add(validity).Truncate(time.Second)
	ca, err := pki.NewCA(pkix.Name{CommonName: "apirule-operator-webhook-ca", Organization: []string{"apirule-operator"}}, notBefore, notAfter)
	if err != nil {
		return nil, fmt.Errorf("creating the CA: %w", err)
	}
	serving, err := ca.IssueServer(dnsNames, notBefore, notAfter)
	if err != nil {
		return nil, fmt.Errorf("creating the serving certificate: %w", err)
	}
	b := &bundle{
		certPEM:  serving.CertPEM,
		keyPEM:   serving.KeyPEM,
		caPEM:    ca.CertPEM,
		caKeyPEM: ca.KeyPEM,
		cert:     serving.Cert,
		cas:      []*x509.Certificate{ca.Cert},
	}
	if previous != nil && now.Before(previous.NotAfter) && !bytes.Equal(previous.Raw, ca.Cert.Raw) {
		b.caPEM = append(b.caPEM, pki.CertificatePEM(previous.Raw)...)
		b.cas = append(b.cas, previous)
	}
	return b, nil
}

// ServiceDNSNames are the names the API server may use for the webhook Service: it calls
// <service>.<namespace>.svc; the others cover clients that use the short or the full form.
func ServiceDNSNames(service, namespace string) []string {
	return []string{
		fmt.Sprintf("%s.%s.svc", service, namespace),
		service,
		fmt.Sprintf("%s.%s", service, namespace),
		fmt.Sprintf("%s.%s.svc.cluster.local", service, namespace),
	}
}
