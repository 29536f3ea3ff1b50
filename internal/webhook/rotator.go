package webhook

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The permissions of the self-managed mode: the one Secret in the operator's namespace
// (created once, so create cannot be narrowed to its name) and the one webhook configuration.
// The finalizer webhook's configuration of clusters before Kubernetes 1.36 is granted by what
// installs it (config/components/finalizer-webhook, the chart's webhook mode), not here: the
// default install has none, and a right on a cluster-wide mutating webhook is not given
// without need.
//
// +kubebuilder:rbac:groups="",namespace=apirule-system,resources=secrets,verbs=create
// +kubebuilder:rbac:groups="",namespace=apirule-system,resources=secrets,verbs=get;update,resourceNames=apirule-operator-webhook-server-cert
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,verbs=get;update;patch,resourceNames=apirule-operator-validating-webhook-configuration

// CertRotator keeps the webhook's serving certificate in the self-managed mode: it creates a
// CA and a serving certificate for the webhook Service in a Secret, replaces them well before
// they expire, writes the serving certificate into the directory the webhook server reads
// (controller-runtime reloads it when the files change), and writes the CA into the
// caBundle of the ValidatingWebhookConfiguration and of the MutatingWebhookConfiguration:
// the API server calls both on the same server with the same certificate.
//
// Every replica runs it. They converge on one Secret: the first creates it, the others read
// it; a replacement is an update with the Secret's resourceVersion, so when two replicas
// replace it at once one update fails and that replica adopts the winner's certificate.
type CertRotator struct {
	// Reader reads the Secret and the webhook configuration directly from the API server:
	// the operator does not cache Secrets or webhook configurations for this.
	Reader client.Reader
	// Writer creates and updates them.
	Writer client.Client

	Namespace string
	Service   string
	Secret    string
	// Configuration is the ValidatingWebhookConfiguration; MutatingConfiguration the
	// MutatingWebhookConfiguration (none when empty).
	Configuration         string
	MutatingConfiguration string
	CertDir               string

	// Validity is the lifetime of new certificates; DefaultValidity when zero.
	Validity time.Duration
	// Interval is how often the certificate and the caBundle are checked; a minute when zero.
	// The caBundle is checked this often because re-applying the install manifests resets it.
	Interval time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (r *CertRotator) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Ensure makes the Secret, the files in CertDir and the caBundle hold a current certificate.
// The webhook server must not start before it has succeeded once: it needs the files.
func (r *CertRotator) Ensure(ctx context.Context) error {
	var err error
	for range 5 {
		if err = r.ensureOnce(ctx); !apierrors.IsConflict(err) && !apierrors.IsAlreadyExists(err) {
			return err
		}
		// Another replica wrote the Secret first: read it again and adopt it.
	}
	return err
}

func (r *CertRotator) ensureOnce(ctx context.Context) error {
	log := ctrl.LoggerFrom(ctx).WithName("webhook-certificates")
	key := types.NamespacedName{Namespace: r.Namespace, Name: r.Secret}
	secret := &corev1.Secret{}
	err := r.Reader.Get(ctx, key, secret)
	found := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading the webhook certificate Secret %s: %w", key, err)
	}
	var current *bundle
	if found {
		if current, err = parseBundle(secret.Data); err != nil {
			log.Info("replacing an unreadable webhook certificate Secret", "secret", key.String(), "problem", err.Error())
		}
	}
	dnsNames := ServiceDNSNames(r.Service, r.Namespace)
	now := r.now()
	if reason := rotationDue(current, dnsNames, now); reason != "" {
		validity := r.Validity
		if validity == 0 {
			validity = DefaultValidity
		}
		next, err := issue(dnsNames, now, validity, previousCA(current, now))
		if err != nil {
			return err
		}
		// Trust the new CA before any replica can serve a certificate it signed.
		if err := r.injectCABundle(ctx, next.caPEM); err != nil {
			return err
		}
		if found {
			// The type stays as it is: it cannot change, and the server needs only the data.
			secret.Data = next.data()
			// The update carries the resourceVersion read above: it fails if another
			// replica replaced the Secret in between.
			if err := r.Writer.Update(ctx, secret); err != nil {
				return err
			}
		} else {
			secret = &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: r.Secret, Namespace: r.Namespace, Labels: map[string]string{
					"app.kubernetes.io/name": "apirule-operator", "app.kubernetes.io/component": "webhook",
				}},
				Type: corev1.SecretTypeTLS,
				Data: next.data(),
			}
			if err := r.Writer.Create(ctx, secret); err != nil {
				return err
			}
		}
		log.Info("issued a new webhook serving certificate", "secret", key.String(), "reason", reason,
			"notAfter", next.cert.NotAfter.UTC().Format(time.RFC3339))
		current = next
	}
	// The API server trusts the CA before this replica serves what it signed.
	if err := r.injectCABundle(ctx, current.caPEM); err != nil {
		return err
	}
	return writeFiles(r.CertDir, current)
}

// previousCA is the CA that signed the certificate in use, while it is still valid.
func previousCA(b *bundle, now time.Time) *x509.Certificate {
	if b == nil || !now.Before(b.cas[0].NotAfter) {
		return nil
	}
	return b.cas[0]
}

// injectCABundle sets the caBundle of every webhook of both configurations. A configuration
// that does not exist yet is not an error: it is installed with the operator and the next
// check fills it in.
func (r *CertRotator) injectCABundle(ctx context.Context, caPEM []byte) error {
	if err := r.injectInto(ctx, &admissionregistrationv1.ValidatingWebhookConfiguration{}, "ValidatingWebhookConfiguration", r.Configuration, caPEM, func(obj client.Object) []*[]byte {
		cfg := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration)
		out := make([]*[]byte, len(cfg.Webhooks))
		for i := range cfg.Webhooks {
			out[i] = &cfg.Webhooks[i].ClientConfig.CABundle
		}
		return out
	}); err != nil {
		return err
	}
	if r.MutatingConfiguration == "" {
		return nil
	}
	return r.injectInto(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{}, "MutatingWebhookConfiguration", r.MutatingConfiguration, caPEM, func(obj client.Object) []*[]byte {
		cfg := obj.(*admissionregistrationv1.MutatingWebhookConfiguration)
		out := make([]*[]byte, len(cfg.Webhooks))
		for i := range cfg.Webhooks {
			out[i] = &cfg.Webhooks[i].ClientConfig.CABundle
		}
		return out
	})
}

// injectInto reads the named configuration into cfg and patches the caBundles bundles points
// to when one differs from caPEM.
func (r *CertRotator) injectInto(ctx context.Context, cfg client.Object, kind, name string, caPEM []byte, bundles func(client.Object) []*[]byte) error {
	switch err := r.Reader.Get(ctx, types.NamespacedName{Name: name}, cfg); {
	case apierrors.IsNotFound(err):
		ctrl.LoggerFrom(ctx).Info("the "+kind+" does not exist yet; its caBundle will be set when it does", "name", name)
		return nil
	case err != nil:
		return fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	patch := client.MergeFromWithOptions(cfg.DeepCopyObject().(client.Object), client.MergeFromWithOptimisticLock{})
	changed := false
	for _, b := range bundles(cfg) {
		if !bytes.Equal(*b, caPEM) {
			*b = caPEM
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := r.Writer.Patch(ctx, cfg, patch); err != nil {
		return fmt.Errorf("writing the caBundle of %s %s: %w", kind, name, err)
	}
	return nil
}

// writeFiles writes the serving certificate and key into dir when they differ from what is
// there. Each file is written to a temporary name and renamed, so the webhook server never
// reads half a file.
func writeFiles(dir string, b *bundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the webhook certificate directory: %w", err)
	}
	for name, content := range map[string][]byte{KeyCert: b.certPEM, KeyKey: b.keyPEM} {
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, content) {
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, content, 0o600); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}

// Start checks the certificate every Interval until the context ends. Failures are logged
// and retried at the next check; the certificate in use has months left when a replacement
// is first due.
func (r *CertRotator) Start(ctx context.Context) error {
	interval := r.Interval
	if interval == 0 {
		interval = time.Minute
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			if err := r.Ensure(ctx); err != nil {
				ctrl.LoggerFrom(ctx).Error(err, "checking the webhook serving certificate")
			}
		}
	}
}

// NeedLeaderElection is false: every replica serves the webhook, so every replica needs the
// certificate files.
func (r *CertRotator) NeedLeaderElection() bool { return false }
