package webhook_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

// The manager prepares the self-managed certificate while it is built, before any server
// starts: the webhook server reads the files when it starts.
func TestManagerPreparesTheSelfManagedCertificate(t *testing.T) {
	ns := operatorNamespace(t)
	webhookConfiguration(t, "manager-"+ns)
	opts := operator.DefaultOptions()
	opts.LeaderElection = false
	opts.MetricsAddress = "0"
	opts.HealthProbeAddress = "0"
	// The suite's operator already runs a controller of the same name in this process.
	opts.RestartableInProcess = true
	opts.Webhook = webhook.DefaultOptions()
	opts.Webhook.Namespace = ns
	opts.Webhook.ConfigurationName = "manager-" + ns
	opts.Webhook.CertDir = t.TempDir()
	if _, err := operator.NewManager(env.Config, opts); err != nil {
		t.Fatal(err)
	}
	secret := secretOf(t, ns, "apirule-operator-webhook-server-cert")
	served, err := os.ReadFile(filepath.Join(opts.Webhook.CertDir, "tls.crt"))
	if err != nil || !bytes.Equal(served, secret.Data["tls.crt"]) {
		t.Errorf("the certificate directory does not hold the Secret's certificate: %v", err)
	}
	if !bytes.Equal(caBundle(t, "manager-"+ns), secret.Data["ca.crt"]) {
		t.Error("the caBundle is not the Secret's CA")
	}

	// Without the operator namespace the self mode refuses to start, and says how to fix it.
	opts.Webhook.Namespace = ""
	if _, err := operator.NewManager(env.Config, opts); err == nil {
		t.Error("the self mode started without POD_NAMESPACE")
	}
}
