package check

import (
	"crypto/x509"
	"encoding/pem"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/apirule-operator/apirule-operator/internal/model"
)

// CertificateValidity is when a certificate an mTLS APIRule serves with stops being valid.
type CertificateValidity struct {
	// Role is "server" for the server certificate, "ca" for the client CA bundle, whose
	// earliest-expiring certificate counts.
	Role     string
	Secret   types.NamespacedName
	NotAfter time.Time
}

// Certificates returns the expiry of the server certificate and of the CA bundle of an mTLS
// APIRule, as far as they parse; the checks report what does not.
func Certificates(in model.Input) []CertificateValidity {
	if in.APIRule.Spec.MTLS == nil || in.MTLS == nil {
		return nil
	}
	var out []CertificateValidity
	if s := in.MTLS.Credential; s != nil {
		value, ok := secretValue(s, corev1.TLSCertKey)
		if !ok {
			value, _ = secretValue(s, "cert")
		}
		if certs := parseCertificates(value); len(certs) > 0 {
			out = append(out, CertificateValidity{Role: "server", Secret: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, NotAfter: certs[0].NotAfter})
		}
	}
	if s := in.MTLS.CA; s != nil {
		_, key := model.CASecretRef(in.APIRule)
		value, _ := secretValue(s, key)
		if certs := parseCertificates(value); len(certs) > 0 {
			earliest := certs[0].NotAfter
			for _, c := range certs[1:] {
				if c.NotAfter.Before(earliest) {
					earliest = c.NotAfter
				}
			}
			out = append(out, CertificateValidity{Role: "ca", Secret: types.NamespacedName{Namespace: s.Namespace, Name: s.Name}, NotAfter: earliest})
		}
	}
	return out
}

// parseCertificates returns the certificates of the PEM blocks that parse, in order.
func parseCertificates(data []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			return out
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
}
