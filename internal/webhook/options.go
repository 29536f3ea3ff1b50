package webhook

import (
	"flag"
	"fmt"
	"os"
)

// The certificate modes.
const (
	// CertSelf: the operator creates and rotates its serving certificate and writes the CA
	// into its Validating- and MutatingWebhookConfiguration. No other component is needed.
	CertSelf = "self"
	// CertExternal: another component (cert-manager, for example) mounts the certificate
	// into the certificate directory and fills in the caBundle; the operator only serves.
	CertExternal = "external"
)

// Options configure the admission webhook.
type Options struct {
	// Enabled registers the webhook and starts its server.
	Enabled bool
	// Host is the address the server binds to; empty for every address.
	Host string
	// Port is the port the server listens on.
	Port int
	// CertDir holds tls.crt and tls.key.
	CertDir string
	// CertManagement is CertSelf or CertExternal.
	CertManagement string
	// Namespace is the operator's namespace, where the webhook Service and the certificate
	// Secret are. The manager reads it from the POD_NAMESPACE environment variable.
	Namespace string
	// ServiceName is the webhook Service, whose DNS names the certificate carries.
	ServiceName string
	// ConfigurationName is the ValidatingWebhookConfiguration whose caBundle is kept.
	ConfigurationName string
	// MutatingConfigurationName is the MutatingWebhookConfiguration (the finalizer on
	// create, on clusters before Kubernetes 1.36) whose caBundle is kept too; empty for none,
	// the default: on 1.36 and later a MutatingAdmissionPolicy sets the finalizer.
	MutatingConfigurationName string
	// SecretName is the Secret that holds the certificate.
	SecretName string
}

// DefaultOptions are the manager's defaults: the webhook on, with a self-managed certificate,
// under the names the install manifests use.
func DefaultOptions() Options {
	return Options{
		Enabled:           true,
		Port:              9443,
		CertDir:           "/tmp/k8s-webhook-server/serving-certs",
		CertManagement:    CertSelf,
		Namespace:         os.Getenv("POD_NAMESPACE"),
		ServiceName:       "apirule-operator-webhook-service",
		ConfigurationName: "apirule-operator-validating-webhook-configuration",
		SecretName:        "apirule-operator-webhook-server-cert",
	}
}

// BindFlags registers the webhook flags, defaulting to the current values.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.Enabled, "enable-webhook", o.Enabled,
		"serve the admission webhooks for APIRules: validation (the install manifests register it with failurePolicy Fail) and "+
			"the finalizer on create for clusters before Kubernetes 1.36 (failurePolicy Ignore; without it or the "+
			"MutatingAdmissionPolicy, the operator adds the finalizer with a patch of its own)")
	fs.IntVar(&o.Port, "webhook-port", o.Port, "port of the webhook server")
	fs.StringVar(&o.CertDir, "webhook-cert-dir", o.CertDir, "directory with the webhook serving certificate (tls.crt, tls.key)")
	fs.StringVar(&o.CertManagement, "webhook-cert-management", o.CertManagement,
		"self: the operator creates and rotates the serving certificate in the Secret --webhook-secret-name and sets the caBundle "+
			"of --webhook-configuration-name; external: the certificate is mounted into --webhook-cert-dir (cert-manager) and the "+
			"caBundle is left alone")
	fs.StringVar(&o.ServiceName, "webhook-service-name", o.ServiceName, "webhook Service, whose DNS names the self-managed certificate carries")
	fs.StringVar(&o.ConfigurationName, "webhook-configuration-name", o.ConfigurationName,
		"ValidatingWebhookConfiguration whose caBundle the operator keeps in the self mode")
	fs.StringVar(&o.MutatingConfigurationName, "webhook-mutating-configuration-name", o.MutatingConfigurationName,
		"MutatingWebhookConfiguration whose caBundle the operator keeps in the self mode: the finalizer webhook of clusters before "+
			"Kubernetes 1.36 (config/components/finalizer-webhook); empty for none")
	fs.StringVar(&o.SecretName, "webhook-secret-name", o.SecretName,
		"Secret in the operator namespace (env POD_NAMESPACE) that holds the self-managed certificate")
}

// Validate checks the options before the manager starts.
func (o Options) Validate() error {
	if !o.Enabled {
		return nil
	}
	switch o.CertManagement {
	case CertSelf:
		if o.Namespace == "" {
			return fmt.Errorf("--webhook-cert-management=self needs the operator namespace: set the POD_NAMESPACE environment variable " +
				"(the install manifests set it from the downward API), or use --webhook-cert-management=external or --enable-webhook=false")
		}
		for flagName, v := range map[string]string{"webhook-service-name": o.ServiceName, "webhook-configuration-name": o.ConfigurationName,
			"webhook-secret-name": o.SecretName, "webhook-cert-dir": o.CertDir} {
			if v == "" {
				return fmt.Errorf("--%s must not be empty with --webhook-cert-management=self", flagName)
			}
		}
	case CertExternal:
	default:
		return fmt.Errorf("--webhook-cert-management=%q: use self or external", o.CertManagement)
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("--webhook-port=%d: use a port from 1 to 65535", o.Port)
	}
	return nil
}
