package webhook

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

var (
	epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	names = ServiceDNSNames("apirule-operator-webhook-service", "apirule-system")
)

func mustIssue(t *testing.T, now time.Time, validity time.Duration, previous *x509.Certificate) *bundle {
	t.Helper()
	b, err := issue(names, now, validity, previous)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIssuedCertificateServesTheWebhookService(t *testing.T) {
	b := mustIssue(t, epoch, DefaultValidity, nil)
	parsed, err := parseBundle(b.data())
	if err != nil {
		t.Fatalf("a fresh bundle does not parse: %v", err)
	}
	if names[0] != "apirule-operator-webhook-service.apirule-system.svc" {
		t.Fatalf("the API server calls <service>.<namespace>.svc first, got %v", names)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parsed.cas[0])
	for _, name := range names {
		if _, err := parsed.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: epoch}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if parsed.cert.IsCA || !parsed.cas[0].IsCA {
		t.Errorf("serving certificate IsCA=%v, CA IsCA=%v", parsed.cert.IsCA, parsed.cas[0].IsCA)
	}
	if got := parsed.cert.NotAfter.Sub(epoch); got != DefaultValidity {
		t.Errorf("validity %s", got)
	}
	if reason := rotationDue(parsed, names, epoch); reason != "" {
		t.Errorf("a fresh certificate is due for rotation: %s", reason)
	}
}

func TestRotationDecision(t *testing.T) {
	b := mustIssue(t, epoch, 300*24*time.Hour, nil)
	cases := []struct {
		name  string
		now   time.Time
		names []string
		want  string
	}{
		{"fresh", epoch.Add(time.Hour), names, ""},
		{"just before two thirds", epoch.Add(199 * 24 * time.Hour), names, ""},
		{"at two thirds", epoch.Add(200 * 24 * time.Hour), names, "due for renewal"},
		{"expired", epoch.Add(301 * 24 * time.Hour), names, "due for renewal"},
		{"clock before the certificate", epoch.Add(-time.Hour), names, "not valid before"},
		{"service renamed", epoch.Add(time.Hour), ServiceDNSNames("other", "apirule-system"), "does not name other.apirule-system.svc"},
		{"namespace changed", epoch.Add(time.Hour), ServiceDNSNames("apirule-operator-webhook-service", "ops"), "does not name"},
	}
	for _, c := range cases {
		got := rotationDue(b, c.names, c.now)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: rotationDue = %q, want %q", c.name, got, c.want)
		}
	}
	if got := rotationDue(nil, names, epoch); got == "" {
		t.Error("a missing bundle is not due")
	}
}

func TestCertificateNotSignedByTheCAIsReplaced(t *testing.T) {
	a := mustIssue(t, epoch, DefaultValidity, nil)
	other := mustIssue(t, epoch, DefaultValidity, nil)
	mixed := a.data()
	mixed[KeyCA], mixed[KeyCAKey] = other.caPEM, other.caKeyPEM
	b, err := parseBundle(mixed)
	if err != nil {
		t.Fatal(err)
	}
	if got := rotationDue(b, names, epoch.Add(time.Hour)); !strings.Contains(got, "does not verify against the CA") {
		t.Errorf("rotationDue = %q", got)
	}
}

func TestUnreadableBundles(t *testing.T) {
	good := mustIssue(t, epoch, DefaultValidity, nil)
	other := mustIssue(t, epoch, DefaultValidity, nil)
	cases := map[string]func(map[string][]byte){
		"missing key":          func(d map[string][]byte) { delete(d, KeyKey) },
		"key of another cert":  func(d map[string][]byte) { d[KeyKey] = other.keyPEM },
		"garbage CA":           func(d map[string][]byte) { d[KeyCA] = []byte("not pem") },
		"CA key of another CA": func(d map[string][]byte) { d[KeyCAKey] = other.caKeyPEM },
	}
	for name, spoil := range cases {
		d := good.data()
		spoil(d)
		if _, err := parseBundle(d); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

// After a rotation the bundle trusts the new CA and, until it expires, the one that signed
// the certificate still served by replicas that have not reloaded yet.
func TestRotationKeepsThePreviousCAInTheBundle(t *testing.T) {
	old := mustIssue(t, epoch, DefaultValidity, nil)
	later := epoch.Add(250 * 24 * time.Hour)
	next := mustIssue(t, later, DefaultValidity, old.cas[0])
	parsed, err := parseBundle(next.data())
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed.cas) != 2 || !parsed.cas[1].Equal(old.cas[0]) {
		t.Fatalf("bundle holds %d CAs", len(parsed.cas))
	}
	pool := x509.NewCertPool()
	for _, ca := range parsed.cas {
		pool.AddCert(ca)
	}
	for _, cert := range []*x509.Certificate{old.cert, parsed.cert} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: names[0], CurrentTime: later}); err != nil {
			t.Errorf("the bundle does not trust %s: %v", cert.SerialNumber, err)
		}
	}
	// The rotation after that drops the oldest CA: only the CA of the certificate in use is kept.
	third := mustIssue(t, later.Add(250*24*time.Hour), DefaultValidity, previousCA(parsed, later.Add(250*24*time.Hour)))
	if len(third.cas) != 2 || !third.cas[1].Equal(parsed.cas[0]) {
		t.Errorf("third bundle keeps the wrong CAs")
	}
	// An expired previous CA is not kept.
	if previousCA(old, epoch.Add(400*24*time.Hour)) != nil {
		t.Error("an expired CA is kept")
	}
}
