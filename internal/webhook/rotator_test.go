package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

// inertWebhook is a webhook shaped like the installed ones, calling the operator's Service at
// path, for a resource nothing creates, so the API server never calls it.
func inertWebhook(path string) admissionregistrationv1.ValidatingWebhook {
	none := admissionregistrationv1.SideEffectClassNone
	ignore := admissionregistrationv1.Ignore
	return admissionregistrationv1.ValidatingWebhook{
		ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: "apirule-system", Name: "apirule-operator-webhook-service", Path: &path,
		}},
		Rules: []admissionregistrationv1.RuleWithOperations{{
			Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
			Rule:       admissionregistrationv1.Rule{APIGroups: []string{"example.invalid"}, APIVersions: []string{"v1"}, Resources: []string{"things"}},
		}},
		SideEffects:             &none,
		FailurePolicy:           &ignore,
		AdmissionReviewVersions: []string{"v1"},
	}
}

// webhookConfiguration creates a ValidatingWebhookConfiguration shaped like the installed
// one, for a resource nothing creates, so the API server never calls it.
func webhookConfiguration(t *testing.T, name string) {
	t.Helper()
	inert := inertWebhook(webhook.Path)
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "vapirule.gateway.apirule.io",
			ClientConfig:            inert.ClientConfig,
			Rules:                   inert.Rules,
			SideEffects:             inert.SideEffects,
			FailurePolicy:           inert.FailurePolicy,
			AdmissionReviewVersions: inert.AdmissionReviewVersions,
		}},
	}
	if err := k8s.Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func operatorNamespace(t *testing.T) string {
	t.Helper()
	ns := namespace(t)
	return ns
}

func rotator(ns, secret, configuration, dir string) *webhook.CertRotator {
	return &webhook.CertRotator{
		Reader: k8s, Writer: k8s,
		Namespace: ns, Service: "apirule-operator-webhook-service", Secret: secret, Configuration: configuration, CertDir: dir,
	}
}

func caBundle(t *testing.T, name string) []byte {
	t.Helper()
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Webhooks[0].ClientConfig.CABundle
}

func secretOf(t *testing.T, ns, name string) *corev1.Secret {
	t.Helper()
	s := &corev1.Secret{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// servedCertificate loads the files the webhook server would read.
func servedCertificate(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// verifies checks that the CA bundle trusts the certificate for the Service's name.
func verifies(t *testing.T, bundle []byte, cert *x509.Certificate, ns string, at time.Time) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(bundle) {
		t.Fatalf("the caBundle holds no certificate")
	}
	name := "apirule-operator-webhook-service." + ns + ".svc"
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: name, CurrentTime: at}); err != nil {
		t.Errorf("the caBundle does not trust the served certificate for %s: %v", name, err)
	}
}

func TestSelfManagedCertificateIsCreatedAndInjected(t *testing.T) {
	ns := operatorNamespace(t)
	ctx := context.Background()
	webhookConfiguration(t, "inject-"+ns)
	dir := t.TempDir()
	r := rotator(ns, "apirule-operator-webhook-server-cert", "inject-"+ns, dir)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	secret := secretOf(t, ns, "apirule-operator-webhook-server-cert")
	if secret.Type != corev1.SecretTypeTLS || len(secret.Data["ca.crt"]) == 0 || len(secret.Data["ca.key"]) == 0 {
		t.Fatalf("Secret type %s, keys %d", secret.Type, len(secret.Data))
	}
	served := servedCertificate(t, dir)
	if !bytes.Equal(secret.Data["tls.crt"], pemOf(served)) {
		t.Error("the files differ from the Secret")
	}
	if !bytes.Equal(caBundle(t, "inject-"+ns), secret.Data["ca.crt"]) {
		t.Error("the caBundle is not the Secret's CA")
	}
	verifies(t, caBundle(t, "inject-"+ns), served, ns, time.Now())

	// A second check writes nothing.
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if again := secretOf(t, ns, "apirule-operator-webhook-server-cert"); again.ResourceVersion != secret.ResourceVersion {
		t.Error("an unchanged certificate was written again")
	}

	// Re-applying the install manifests empties the caBundle; the next check fills it in.
	cfg := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := k8s.Get(ctx, types.NamespacedName{Name: "inject-" + ns}, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks[0].ClientConfig.CABundle = nil
	if err := k8s.Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caBundle(t, "inject-"+ns), secret.Data["ca.crt"]) {
		t.Error("the emptied caBundle was not restored")
	}
}

func TestReplicasConvergeOnOneCertificate(t *testing.T) {
	ns := operatorNamespace(t)
	webhookConfiguration(t, "converge-"+ns)
	dirs := make([]string, 4)
	var wg sync.WaitGroup
	errs := make([]error, len(dirs))
	for i := range dirs {
		dirs[i] = t.TempDir()
		wg.Go(func() {
			errs[i] = rotator(ns, "shared-cert", "converge-"+ns, dirs[i]).Ensure(context.Background())
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	secret := secretOf(t, ns, "shared-cert")
	for i, dir := range dirs {
		if got, _ := os.ReadFile(filepath.Join(dir, "tls.crt")); !bytes.Equal(got, secret.Data["tls.crt"]) {
			t.Errorf("replica %d serves another certificate than the Secret holds", i)
		}
	}
	if !bytes.Equal(caBundle(t, "converge-"+ns), secret.Data["ca.crt"]) {
		t.Error("the caBundle is not the Secret's CA")
	}
}

func TestCertificateIsRotatedBeforeExpiry(t *testing.T) {
	ns := operatorNamespace(t)
	ctx := context.Background()
	webhookConfiguration(t, "rotate-"+ns)
	dir := t.TempDir()
	r := rotator(ns, "rotating-cert", "rotate-"+ns, dir)
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	first := servedCertificate(t, dir)

	// 250 days later, past two thirds of the year the certificate is valid for.
	later := time.Now().Add(250 * 24 * time.Hour)
	r.Now = func() time.Time { return later }
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	second := servedCertificate(t, dir)
	if second.Equal(first) || !second.NotAfter.After(first.NotAfter) {
		t.Fatalf("not rotated: %s -> %s", first.NotAfter, second.NotAfter)
	}
	bundle := caBundle(t, "rotate-"+ns)
	if n := bytes.Count(bundle, []byte("BEGIN CERTIFICATE")); n != 2 {
		t.Errorf("the caBundle holds %d CAs, want the new and the previous one", n)
	}
	// During the switch the API server trusts both the old and the new certificate.
	verifies(t, bundle, first, ns, later)
	verifies(t, bundle, second, ns, later)
}

func TestUnreadableSecretIsReplaced(t *testing.T) {
	ns := operatorNamespace(t)
	ctx := context.Background()
	webhookConfiguration(t, "garbage-"+ns)
	if err := k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "garbage-cert"},
		Data:       map[string][]byte{"tls.crt": []byte("not a certificate")},
	}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := rotator(ns, "garbage-cert", "garbage-"+ns, dir).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	verifies(t, caBundle(t, "garbage-"+ns), servedCertificate(t, dir), ns, time.Now())
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "garbage-cert"}, &corev1.Secret{}); err != nil {
		t.Fatal(err)
	}
}

func pemOf(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// mutatingConfiguration creates a MutatingWebhookConfiguration shaped like the installed
// one, for a resource nothing creates.
func mutatingConfiguration(t *testing.T, name string) {
	t.Helper()
	inert := inertWebhook(webhook.MutatePath)
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "mapirule.gateway.apirule.io",
			ClientConfig:            inert.ClientConfig,
			Rules:                   inert.Rules,
			SideEffects:             inert.SideEffects,
			FailurePolicy:           inert.FailurePolicy,
			AdmissionReviewVersions: inert.AdmissionReviewVersions,
		}},
	}
	if err := k8s.Create(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
}

func mutatingCABundle(t *testing.T, name string) []byte {
	t.Helper()
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k8s.Get(context.Background(), types.NamespacedName{Name: name}, cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Webhooks[0].ClientConfig.CABundle
}

// The API server calls the finalizer webhook on the same server, with the same certificate:
// its configuration must trust the same CA, and get it back after a re-apply empties it.
func TestMutatingConfigurationTrustsTheSameCA(t *testing.T) {
	ns := operatorNamespace(t)
	ctx := context.Background()
	webhookConfiguration(t, "both-"+ns)
	mutatingConfiguration(t, "both-mutating-"+ns)
	dir := t.TempDir()
	r := rotator(ns, "apirule-operator-webhook-server-cert", "both-"+ns, dir)
	r.MutatingConfiguration = "both-mutating-" + ns
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	ca := secretOf(t, ns, "apirule-operator-webhook-server-cert").Data["ca.crt"]
	if !bytes.Equal(mutatingCABundle(t, "both-mutating-"+ns), ca) || !bytes.Equal(caBundle(t, "both-"+ns), ca) {
		t.Fatal("the caBundles of both configurations are not the Secret's CA")
	}
	verifies(t, mutatingCABundle(t, "both-mutating-"+ns), servedCertificate(t, dir), ns, time.Now())

	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k8s.Get(ctx, types.NamespacedName{Name: "both-mutating-" + ns}, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.Webhooks[0].ClientConfig.CABundle = nil
	if err := k8s.Update(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mutatingCABundle(t, "both-mutating-"+ns), ca) {
		t.Error("the emptied caBundle of the MutatingWebhookConfiguration was not restored")
	}
}
