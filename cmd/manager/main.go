// Command manager runs the apirule-operator.
package main

import (
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/apirule-operator/apirule-operator/internal/operator"
)

func main() {
	opts := operator.DefaultOptions()
	flag.StringVar(&opts.Translate.IngressGatewayPrincipal, "ingress-gateway-principal", opts.Translate.IngressGatewayPrincipal,
		"mTLS principal of the ingress gateway's service account; workload policies admit only requests through it")
	flag.StringVar(&opts.Translate.DefaultGateway, "default-gateway", opts.Translate.DefaultGateway,
		"Istio Gateway (namespace/name) for APIRules that set no spec.gateway; empty means spec.gateway is required")
	flag.BoolVar(&opts.Translate.MultipleCustomProviders, "multiple-custom-authz-providers", opts.Translate.MultipleCustomProviders,
		"istiod runs with PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS=true, so one workload may use several ext-authz providers")
	flag.StringVar(&opts.Mesh.Namespace, "istio-namespace", opts.Mesh.Namespace, "namespace of Istio's mesh config ConfigMap")
	flag.StringVar(&opts.Mesh.Revision, "istio-revision", opts.Mesh.Revision,
		"Istio revision whose mesh config to read (ConfigMap istio-<revision>); empty for the default ConfigMap istio")
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", opts.MaxConcurrentReconciles,
		"how many APIRules are reconciled at once")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", opts.LeaderElection,
		"elect a leader so that only one replica reconciles")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", opts.LeaderElectionNamespace,
		"namespace of the leader election lease; defaults to the Pod's namespace in a cluster")
	flag.StringVar(&opts.MetricsAddress, "metrics-bind-address", opts.MetricsAddress, "metrics endpoint address; 0 disables it")
	flag.StringVar(&opts.HealthProbeAddress, "health-probe-bind-address", opts.HealthProbeAddress, "health probe address; 0 disables it")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no Kubernetes configuration")
		os.Exit(1)
	}
	mgr, err := operator.NewManager(cfg, opts)
	if err != nil {
		log.Error(err, "creating the operator")
		os.Exit(1)
	}
	log.Info("starting apirule-operator")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "operator stopped")
		os.Exit(1)
	}
}
