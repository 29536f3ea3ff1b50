// Package pki issues ECDSA P-256 certificates with the standard library only: the webhook's
// self-managed serving certificate, and the certificates of the demo and the tests.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// KeyPairPEMTag is the PEM type of the private keys written here.
const KeyPairPEMTag = "EC PRIVATE KEY"

// KeyPair is a certificate and its private key, parsed and PEM encoded.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA returns a self-signed CA that may sign end-entity certificates only.
func NewCA(subject pkix.Name, notBefore, notAfter time.Time) (*KeyPair, error) {
	return issue(nil, &x509.Certificate{
		Subject:               subject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	})
}

// IssueServer returns a server certificate for the DNS names, signed by the CA; the first name
// is also its common name.
func (ca *KeyPair) IssueServer(dnsNames []string, notBefore, notAfter time.Time) (*KeyPair, error) {
	if len(dnsNames) == 0 {
		return nil, fmt.Errorf("a server certificate needs a DNS name")
	}
	return issue(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: dnsNames[0]},
		DNSNames:    dnsNames,
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
}

// issue signs the template with the parent, or with its own new key when parent is nil.
func issue(parent *KeyPair, template *x509.Certificate) (*KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if template.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127)); err != nil {
		return nil, err
	}
	signer, signerKey := template, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.Key
	}
	der, err := x509.CreateCertificate(rand.Reader, template, signer, &key.PublicKey, signerKey)
	if err != nil {
		return nil, fmt.Errorf("creating the certificate for %s: %w", template.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: CertificatePEM(der),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: KeyPairPEMTag, Bytes: keyDER}),
	}, nil
}

// CertificatePEM encodes a DER certificate as PEM.
func CertificatePEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
