package operator

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

// newWebhookServer returns the webhook server, or nil when the webhook is off. In the self
// certificate mode it first makes sure the certificate files exist: the server reads them
// when it starts, and the manager starts webhook servers before anything else.
func newWebhookServer(cfg *rest.Config, scheme *runtime.Scheme, opts webhook.Options) (ctrlwebhook.Server, error) {
	if !opts.Enabled {
		return nil, nil
	}
	if opts.CertManagement == webhook.CertSelf {
		direct, err := client.New(cfg, client.Options{Scheme: scheme})
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := certRotator(direct, opts).Ensure(ctx); err != nil {
			return nil, fmt.Errorf("preparing the webhook serving certificate: %w", err)
		}
	}
	return ctrlwebhook.NewServer(ctrlwebhook.Options{Host: opts.Host, Port: opts.Port, CertDir: opts.CertDir}), nil
}

func certRotator(c client.Client, opts webhook.Options) *webhook.CertRotator {
	return &webhook.CertRotator{
		Reader:        c,
		Writer:        c,
		Namespace:     opts.Namespace,
		Service:       opts.ServiceName,
		Secret:        opts.SecretName,
		Configuration: opts.ConfigurationName,
		CertDir:       opts.CertDir,

		MutatingConfiguration: opts.MutatingConfigurationName,
	}
}

// setupWebhook registers the APIRule validator, which reads through cached, the finalizer
// defaulter and, in the self certificate mode, the rotator that keeps the certificate and the
// caBundle current on every replica.
func setupWebhook(mgr ctrl.Manager, cached client.Reader, cfg *rest.Config, scheme *runtime.Scheme, opts Options, modelOpts model.Options) error {
	if !opts.Webhook.Enabled {
		return nil
	}
	validator := &webhook.Validator{
		Reader:     cached,
		Options:    modelOpts,
		MeshConfig: opts.Settings.MeshConfigKey(),
	}
	if err := validator.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the APIRule webhook: %w", err)
	}
	// The finalizer on create: one write less per new APIRule than the reconciler's patch.
	mgr.GetWebhookServer().Register(webhook.MutatePath, &ctrlwebhook.Admission{Handler: webhook.FinalizerDefaulter{}})
	if opts.Webhook.CertManagement != webhook.CertSelf {
		return nil
	}
	// Reads go straight to the API server: caching every Secret and webhook configuration
	// of the cluster for one of each would cost memory and wider permissions.
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	return mgr.Add(certRotator(direct, opts.Webhook))
}
