// Command samplecerts reissues the certificates embedded in sample and test inputs
// (config/samples/context.yaml, internal/translate/testdata/mtls-*.in.yaml) under one new CA,
// keeping each certificate's subject, DNS names and place in the file.
//
//	go run ./hack/samplecerts config/samples/context.yaml internal/translate/testdata/mtls-*.in.yaml
//
// A certificate that is valid now, or already expired, keeps its validity (a case about
// expiry depends on it). One that is not valid yet is reissued valid from Validity's start,
// in the past, for a century: the operator warns about certificates that are not valid yet,
// and a sample should show none. Keys are not written: offline rendering reads certificates
// only, and a CA bundle never holds a key.
package main

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/apirule-operator/apirule-operator/internal/pki"
)

// The validity of reissued certificates.
var (
	notBefore = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	notAfter  = time.Date(2125, 1, 1, 0, 0, 0, 0, time.UTC)
)

// pemBlock is an indented PEM certificate in a YAML block scalar.
var pemBlock = regexp.MustCompile(`(?m)^([ \t]*)-----BEGIN CERTIFICATE-----\n(?:[ \t]*[A-Za-z0-9+/=]+\n)+?[ \t]*-----END CERTIFICATE-----\n`)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: samplecerts FILE...")
		os.Exit(2)
	}
	if err := run(os.Args[1:], time.Now()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(files []string, now time.Time) error {
	// One CA per subject, shared by every file, so the samples keep a single partner CA.
	cas := map[string]*pki.KeyPair{}
	caFor := func(subject pkix.Name, old *x509.Certificate) (*pki.KeyPair, error) {
		if ca, ok := cas[subject.String()]; ok {
			return ca, nil
		}
		from, until := validity(old, now)
		ca, err := pki.NewCA(subject, from, until)
		if err == nil {
			cas[subject.String()] = ca
		}
		return ca, err
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		var failed error
		out := pemBlock.ReplaceAllFunc(raw, func(block []byte) []byte {
			indent := string(pemBlock.FindSubmatch(block)[1])
			old, err := parse(block)
			if err != nil {
				failed = fmt.Errorf("%s: %w", file, err)
				return block
			}
			var next *pki.KeyPair
			if old.IsCA {
				next, err = caFor(old.Subject, old)
			} else {
				var ca *pki.KeyPair
				if ca, err = caFor(old.Issuer, nil); err == nil {
					from, until := validity(old, now)
					next, err = ca.IssueServer(old.DNSNames, from, until)
				}
			}
			if err != nil {
				failed = fmt.Errorf("%s: %s: %w", file, old.Subject, err)
				return block
			}
			return indentPEM(next.CertPEM, indent)
		})
		if failed != nil {
			return failed
		}
		if !bytes.Equal(out, raw) {
			if err := os.WriteFile(file, out, 0o644); err != nil {
				return err
			}
		}
	}
	return nil
}

// validity keeps the old certificate's validity unless it starts in the future or ends within
// ten years, which tests/install TestSampleCertificatesAreValid refuses.
func validity(old *x509.Certificate, now time.Time) (time.Time, time.Time) {
	if old == nil || now.Before(old.NotBefore) || now.AddDate(10, 0, 0).After(old.NotAfter) {
		return notBefore, notAfter
	}
	return old.NotBefore, old.NotAfter
}

func parse(block []byte) (*x509.Certificate, error) {
	var lines []string
	for _, l := range strings.Split(string(block), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	p, _ := pem.Decode([]byte(strings.Join(lines, "\n")))
	if p == nil {
		return nil, fmt.Errorf("unreadable PEM block")
	}
	return x509.ParseCertificate(p.Bytes)
}

func indentPEM(certPEM []byte, indent string) []byte {
	var b bytes.Buffer
	for _, l := range strings.Split(strings.TrimSuffix(string(certPEM), "\n"), "\n") {
		b.WriteString(indent + l + "\n")
	}
	return b.Bytes()
}
