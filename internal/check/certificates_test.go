package check

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// The expiry exported for an mTLS APIRule is the server certificate's and the earliest of the
// CA bundle's certificates.
func TestCertificatesReportsServerAndEarliestCAExpiry(t *testing.T) {
	soon, later := time.Now().Add(48*time.Hour).Truncate(time.Second), time.Now().Add(900*24*time.Hour).Truncate(time.Second)
	ca, err := fixtures.NewCA("partner CA", later)
	if err != nil {
		t.Fatal(err)
	}
	other, err := fixtures.NewCA("old partner CA", soon)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.NewServerCertificate(soon.Add(time.Hour), "partner.example.com")
	if err != nil {
		t.Fatal(err)
	}
	caSecret := ca.CASecret("shop", "partner-ca")
	caSecret.Data["ca.crt"] = append(caSecret.Data["ca.crt"], other.CASecret("shop", "x").Data["ca.crt"]...)
	rule := &apiv2.APIRule{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "partner"},
		Spec: apiv2.APIRuleSpec{MTLS: &apiv2.MTLS{CredentialName: "partner-tls", CASecretRef: apiv2.SecretKeyReference{Name: "partner-ca"}}}}
	in := model.Input{APIRule: rule, MTLS: &model.MTLSSecrets{
		Credential: model.SecretFromCore(server.TLSSecret("istio-system", "partner-tls")),
		CA:         model.SecretFromCore(caSecret),
	}}
	got := Certificates(in)
	want := []CertificateValidity{
		{Role: "server", Secret: types.NamespacedName{Namespace: "istio-system", Name: "partner-tls"}, NotAfter: soon.Add(time.Hour)},
		{Role: "ca", Secret: types.NamespacedName{Namespace: "shop", Name: "partner-ca"}, NotAfter: soon},
	}
	if len(got) != 2 || got[0].Role != want[0].Role || got[0].Secret != want[0].Secret || !got[0].NotAfter.Equal(want[0].NotAfter) ||
		got[1].Role != want[1].Role || got[1].Secret != want[1].Secret || !got[1].NotAfter.Equal(want[1].NotAfter) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	in.APIRule.Spec.MTLS = nil
	if got := Certificates(in); got != nil {
		t.Errorf("without mTLS: %+v", got)
	}
}
