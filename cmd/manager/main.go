// Command manager runs the apirule-operator.
package main

import (
	"flag"
	"fmt"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/version"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

func main() {
	opts := operator.DefaultOptions()
	opts.Webhook = webhook.DefaultOptions()
	opts.Settings.BindFlags(flag.CommandLine)
	opts.Webhook.BindFlags(flag.CommandLine)
	flag.IntVar(&opts.MaxConcurrentReconciles, "max-concurrent-reconciles", opts.MaxConcurrentReconciles,
		"how many APIRules are reconciled at once")
	flag.BoolVar(&opts.LeaderElection, "leader-elect", opts.LeaderElection,
		"elect a leader so that only one replica reconciles")
	flag.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", opts.LeaderElectionNamespace,
		"namespace of the leader election lease; defaults to the Pod's namespace in a cluster")
	flag.StringVar(&opts.MetricsAddress, "metrics-bind-address", opts.MetricsAddress, "metrics endpoint address; 0 disables it")
	// Secure by default, as the installs run it: metrics name every APIRule and namespace.
	flag.BoolVar(&opts.MetricsSecure, "metrics-secure", true,
		"serve metrics over HTTPS to callers the API server authenticates and authorizes for GET /metrics; false serves plain HTTP to anyone")
	flag.StringVar(&opts.HealthProbeAddress, "health-probe-bind-address", opts.HealthProbeAddress, "health probe address; 0 disables it")
	flag.StringVar(&opts.PprofAddress, "pprof-bind-address", opts.PprofAddress,
		"Go profiling endpoints (/debug/pprof/) on this address, plain HTTP to anyone who reaches it; 0 disables them")
	flag.IntVar(&opts.StartupGCPercent, "startup-gc-percent", 50,
		"Go's GOGC until every APIRule has been verified after the start, when the operator allocates fastest; a GOGC in the environment, 0 or 100 leave the collector as it is")
	flag.BoolVar(&opts.ResponseCompression, "api-response-compression", opts.ResponseCompression,
		"ask the API server for compressed responses and watch streams: less traffic, more CPU on both sides")
	printVersion := flag.Bool("version", false, "print the version and exit")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	// controller-runtime's help says 'epoch', but an unset time encoding is RFC 3339
	// (zap.Options' TimeEncoder default); say what the logs show.
	flag.CommandLine.Lookup("zap-time-encoding").Usage = "log time encoding: epoch, millis, nano, iso8601, rfc3339 or rfc3339nano (default rfc3339)"
	flag.Parse()
	build := version.Get()
	if *printVersion {
		fmt.Println("apirule-operator " + build.String())
		return
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")
	log.Info("apirule-operator", "version", build.Version, "commit", build.Commit, "go", build.GoVersion)

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
