// Package operator assembles the manager: scheme, caches, the APIRule controller and health
// checks. The manager binary, the demo and the integration tests all start it through here,
// so they run the same operator.
package operator

import (
	"fmt"
	"net/http"
	"strings"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	"github.com/apirule-operator/apirule-operator/controllers"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/config"
	"github.com/apirule-operator/apirule-operator/internal/kubescheme"
	"github.com/apirule-operator/apirule-operator/internal/lookup"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/slim"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

// Options configure the operator.
type Options struct {
	// Settings shape the generated objects.
	Settings config.Settings
	// MaxConcurrentReconciles is how many APIRules are reconciled at once.
	MaxConcurrentReconciles int
	// LeaderElection makes only one replica reconcile at a time.
	LeaderElection bool
	// LeaderElectionNamespace holds the lease; required outside a cluster.
	LeaderElectionNamespace string
	// MetricsAddress serves Prometheus metrics; "0" disables it.
	MetricsAddress string
	// MetricsSecure serves the metrics over HTTPS and admits only callers whose token the API
	// server authenticates (TokenReview) and authorizes for GET /metrics
	// (SubjectAccessReview). Off, they are plain HTTP for anyone who reaches the port.
	MetricsSecure bool
	// HealthProbeAddress serves /healthz and /readyz; "0" disables it.
	HealthProbeAddress string
	// PprofAddress serves Go's profiling endpoints (/debug/pprof/); "0" or empty disables
	// them. Off by default: a profile shows what the operator is doing to anyone who reaches
	// the port.
	PprofAddress string
	// RestartableInProcess lets one process start the operator more than once (tests that
	// restart it); controller-runtime otherwise refuses a second controller of the same name.
	RestartableInProcess bool
	// StartupGCPercent is Go's GOGC from the process's start until every APIRule the cache
	// held when it synced has been verified (startupCollector); 0, 100 or more, or a GOGC in
	// the environment leave the collector as it is. It sets a process-wide setting, so
	// DefaultOptions leaves it off for in-process operators; the manager binary sets it.
	StartupGCPercent int
	// ResponseCompression asks the API server for gzip-compressed responses and watch streams.
	// Off by default: next to the API server, compression costs both sides CPU (the API server
	// compresses every watch event it sends the operator) to save bandwidth that is not short.
	ResponseCompression bool
	// Webhook configures the admission webhook. DefaultOptions leaves it off: in-process
	// operators (the demo, the test suites) have no Service the API server could call. The
	// manager binary turns it on by default (--enable-webhook).
	Webhook webhook.Options
}

// DefaultOptions are the operator's defaults, shared by the manager's flags and the demo.
func DefaultOptions() Options {
	return Options{
		Settings:                config.Defaults(),
		MaxConcurrentReconciles: 4,
		LeaderElection:          true,
		MetricsAddress:          ":8080",
		HealthProbeAddress:      ":8081",
		PprofAddress:            "0",
	}
}

// metricsOptions serves /metrics as configured. Secure serving without a certificate directory
// makes controller-runtime issue itself a self-signed certificate at start, so nothing has to
// be provisioned: what protects the metrics is the caller's token, checked with the API
// server, and scrapers (config/prometheus) skip verifying the server's certificate.
func metricsOptions(opts Options) metricsserver.Options {
	out := metricsserver.Options{BindAddress: opts.MetricsAddress}
	if opts.MetricsSecure {
		out.SecureServing = true
		out.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	return out
}

// NewScheme returns a scheme with every type the operator reads or writes.
func NewScheme() (*runtime.Scheme, error) { return kubescheme.New() }

// servesReferenceGrants says whether the cluster serves Gateway API's ReferenceGrant (v1beta1,
// which every Gateway API release since it came serves). It is decided at start: a cluster
// that installs Gateway API's CRDs later needs the operator restarted to honour its grants;
// until then cross-namespace backends are refused, never admitted.
func servesReferenceGrants(mapper meta.RESTMapper) (bool, error) {
	gv := gatewayv1beta1.GroupVersion
	switch _, err := mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: "ReferenceGrant"}, gv.Version); {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("looking up the ReferenceGrant API: %w", err)
	}
}

// NewManager builds a manager running the APIRule controller.
func NewManager(cfg *rest.Config, opts Options) (ctrl.Manager, error) {
	if err := opts.Settings.ValidateManager(); err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	// Every client below shares this config, the lists and watches of the generated kinds
	// among them, whose HTTP client is built before any client would set it.
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	if !opts.ResponseCompression {
		cfg.DisableCompression = true
		// DisableCompression does not reach the transport client-go shares for a config without
		// TLS settings of its own (a plain-HTTP host, HTTPS with a token and the system's
		// roots): that is Go's default transport, which asks for gzip.
		cfg.Wrap(uncompressed)
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	// Generated objects are cached by label only: the operator never needs to hold every
	// AuthorizationPolicy or RequestAuthentication of the cluster in memory; and of its own
	// only what it reads (internal/slim).
	generated := cache.ByObject{Label: ownership.ManagedSelector()}
	// Of all ConfigMaps only the mesh config is needed.
	meshConfig := cache.ByObject{
		Namespaces: map[string]cache.Config{opts.Settings.MeshConfigKey().Namespace: {}},
		Field:      fields.OneTermEqualSelector("metadata.name", opts.Settings.MeshConfigKey().Name),
	}
	if err := opts.Webhook.Validate(); err != nil {
		return nil, err
	}
	storedHTTP, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	webhookServer, err := newWebhookServer(cfg, scheme, opts.Webhook)
	if err != nil {
		return nil, err
	}
	byObject := map[client.Object]cache.ByObject{
		// All VirtualServices are cached, for host conflicts; those the operator does not
		// manage only as hosts and gateways. These three kinds are slimmed as they are listed
		// and watched (slim.NewInformer, below).
		&networkingclientv1.VirtualService{}:      {},
		&securityclientv1.AuthorizationPolicy{}:   {Label: generated.Label},
		&securityclientv1.RequestAuthentication{}: {Label: generated.Label},
		&corev1.ConfigMap{}:                       meshConfig,
		// Secrets only for their certificates: keys and other values are dropped as each
		// Secret arrives, before it enters the cache (the API server sends them whole).
		&corev1.Secret{}: {Transform: slim.Secret},
		// Pods only for the sidecar and trusted-proxy checks, as metadata that marks them: a
		// cluster's Pod specs (images, env values, volumes) would be most of the cache.
		slim.PodMetadata(): {},
		// Services only for their selectors and port numbers: there is one for every workload.
		&corev1.Service{}: {Transform: slim.Service},
	}
	// The generated kinds arrive as stored, so that their state digests cover every field the
	// API server kept, and Pods as slim metadata (internal/slim/stored.go), restricted by the
	// same options; NewInformer sets their transforms. Pods are read as protocol buffers, which cost the API server and the
	// operator less than JSON.
	podsConfig := rest.CopyConfig(cfg)
	podsConfig.ContentType = runtime.ContentTypeProtobuf
	podsConfig.AcceptContentTypes = runtime.ContentTypeProtobuf + "," + runtime.ContentTypeJSON
	pods, err := typedcorev1.NewForConfig(podsConfig)
	if err != nil {
		return nil, err
	}
	storedState, err := slim.NewInformer(cfg, storedHTTP, pods, byObject)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{
			// managedFields are a large part of every object and the operator reads none of
			// them; nor does any object other than the slimmed ones carry the cache's own
			// annotations. A ByObject Transform replaces this default: the slim transforms drop
			// both too, and so do the lists and watches of the kinds NewInformer replaces.
			DefaultTransform: slim.Default,
			NewInformer:      storedState,
			ByObject:         byObject,
		},
		Metrics:                 metricsOptions(opts),
		HealthProbeBindAddress:  opts.HealthProbeAddress,
		PprofBindAddress:        opts.PprofAddress,
		WebhookServer:           webhookServer,
		LeaderElection:          opts.LeaderElection,
		LeaderElectionID:        "apirule-operator.gateway.apirule.io",
		LeaderElectionNamespace: opts.LeaderElectionNamespace,
		// Hand the lease over at once on shutdown instead of letting it expire.
		LeaderElectionReleaseOnCancel: true,
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &opts.RestartableInProcess},
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	metrics.Register()
	modelOpts := opts.Settings.Translate()
	if modelOpts.ReferenceGrants, err = servesReferenceGrants(mgr.GetRESTMapper()); err != nil {
		return nil, err
	}
	// Reads go to the cache; index lookups read their buckets from its informers.
	cached := lookup.NewCachedClient(mgr.GetClient(), mgr.GetCache())
	// Children are created from the encoding their digests are read from (apply.Creator).
	creator, err := apply.NewRESTCreator(mgr.GetConfig(), mgr.GetHTTPClient(), mgr.GetRESTMapper(), scheme)
	if err != nil {
		return nil, err
	}
	reconciler := &controllers.APIRuleReconciler{
		Client:                  cached,
		Creator:                 creator,
		Recorder:                mgr.GetEventRecorder("apirule-operator"),
		Options:                 modelOpts,
		MeshConfig:              opts.Settings.MeshConfigKey(),
		MaxConcurrentReconciles: opts.MaxConcurrentReconciles,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the APIRule controller: %w", err)
	}
	if opts.Settings.ManageDefaultGateway {
		namespace, name, _ := strings.Cut(opts.Settings.DefaultGateway, "/")
		defaultGateway := &controllers.DefaultGatewayReconciler{
			Client:         mgr.GetClient(),
			Creator:        creator,
			Gateway:        types.NamespacedName{Namespace: namespace, Name: name},
			Domain:         opts.Settings.DefaultGatewayDomain,
			CredentialName: opts.Settings.DefaultGatewayCredential,
			Selector:       reconciler.Options.IngressGatewaySelector,
		}
		if err := defaultGateway.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("setting up the default Gateway controller: %w", err)
		}
	}
	if err := setupWebhook(mgr, cached, cfg, scheme, opts, modelOpts); err != nil {
		return nil, err
	}
	if opts.HealthProbeAddress != "0" {
		if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
			return nil, err
		}
		if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
			return nil, err
		}
		if opts.Webhook.Enabled {
			// Not ready until the webhook server serves: the Service then sends admission
			// requests only to replicas that answer them.
			if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
				return nil, err
			}
		}
	}
	// Last, so that no error after it leaves the collector's target lowered.
	if collector := newStartupCollector(mgr.GetCache(), opts.StartupGCPercent); collector != nil {
		if err := mgr.Add(collector); err != nil {
			return nil, err
		}
		collector.lower()
	}
	return mgr, nil
}

// uncompressed asks the API server for responses as they are, whatever the transport below
// would ask for.
func uncompressed(next http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
		if req.Header.Get("Accept-Encoding") == "" {
			req = utilnet.CloneRequest(req)
			req.Header.Set("Accept-Encoding", "identity")
		}
		return next.RoundTrip(req)
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
