// Command demo runs apirule-operator on a local control plane (kube-apiserver and etcd, no
// nodes), applies the sample APIRules and prints what the operator made of them. It then keeps
// the control plane and the operator running for kubectl until Ctrl-C; with DEMO_EXIT=1 it
// stops right after printing.
package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

const (
	demoNamespace    = "demo"
	gatewayNamespace = "istio-system"
	gatewayName      = "public-gateway"
	settleTimeout    = 60 * time.Second
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}
	workDir := filepath.Join(root, "bin", "demo")
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return err
	}
	logPath := filepath.Join(workDir, "operator.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))

	step("Starting a local control plane (kube-apiserver %s and etcd, built from source; no nodes, no kubelet)", kubeVersion(root))
	// As an install: the API server calls the operator's validating webhook, registered from
	// config/webhook with a certificate envtest issues for the local server, and sets the
	// finalizer on create by the install's MutatingAdmissionPolicy.
	env, err := testenv.StartWith(func(e *envtest.Environment) {
		e.WebhookInstallOptions = envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook", "manifests.yaml")}}
	})
	if err != nil {
		return err
	}
	defer func() {
		step("Stopping the operator and the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	fmt.Println("  CRDs installed: apirules.gateway.apirule.io and Istio's")
	admin, err := env.Client()
	if err != nil {
		return err
	}
	if err := testenv.InstallFinalizerPolicy(ctx, admin); err != nil {
		return err
	}
	fmt.Println("  MutatingAdmissionPolicy installed: apirule-operator's finalizer on create (" + testenv.FinalizerPolicyFile + ")")

	kubeconfig, err := writeKubeconfig(env, workDir)
	if err != nil {
		return err
	}

	step("Starting apirule-operator in-process (operator log: %s)", logPath)
	opts := operator.DefaultOptions()
	opts.LeaderElection = false
	addresses, err := testenv.FreeAddresses(2)
	if err != nil {
		return err
	}
	opts.MetricsAddress, opts.HealthProbeAddress = addresses[0], addresses[1]
	install := env.WebhookInstallOptions
	opts.Webhook = webhook.Options{
		Enabled: true, Host: install.LocalServingHost, Port: install.LocalServingPort,
		CertDir: install.LocalServingCertDir, CertManagement: webhook.CertExternal,
	}
	// The operator keeps a default Gateway for APIRules that name none.
	opts.Settings.DefaultGateway = gatewayNamespace + "/default-gateway"
	opts.Settings.ManageDefaultGateway = true
	opts.Settings.DefaultGatewayDomain = "apps.example.com"
	opts.Settings.DefaultGatewayCredential = "apps-example-com-tls"
	fmt.Printf("  with --default-gateway=%s --manage-default-gateway --default-gateway-domain=%s --default-gateway-credential=%s\n",
		opts.Settings.DefaultGateway, opts.Settings.DefaultGatewayDomain, opts.Settings.DefaultGatewayCredential)
	fmt.Printf("  admission webhook: https://%s:%d/validate-gateway-apirule-io-v2-apirule (registered with the API server: kubectl apply is refused as in a cluster)\n",
		install.LocalServingHost, install.LocalServingPort)
	fmt.Printf("  metrics:           http://%s/metrics\n", opts.MetricsAddress)
	fmt.Printf("  probes:            http://%s/healthz and /readyz\n", opts.HealthProbeAddress)
	mgr, err := operator.NewManager(env.Config, opts)
	if err != nil {
		return err
	}
	mgrCtx, stopManager := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() {
		stopManager()
		if err := <-mgrDone; err != nil {
			fmt.Fprintln(os.Stderr, "the operator stopped with:", err)
		}
	}()

	c, err := client.New(env.Config, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	if err := waitReady(ctx, "http://"+opts.HealthProbeAddress+"/readyz"); err != nil {
		return err
	}

	step("Creating the Gateway %s/%s for *.example.com, Istio's mesh config with the ext-authz provider oauth2-proxy "+
		"and one trusted proxy, the partners' certificates, and the workload in namespace %q", gatewayNamespace, gatewayName, demoNamespace)
	if err := createWorkload(ctx, c); err != nil {
		return err
	}
	fmt.Printf("  Secrets %s/partner-tls (server certificate for partner.example.com) and %s/partner-ca (the partners' CA)\n",
		gatewayNamespace, demoNamespace)
	fmt.Println("  Service demo/httpbin (port 8000, selector app=httpbin)")
	fmt.Println("  Pods demo/httpbin-0 and demo/httpbin-1 with an istio-proxy container, as sidecar injection")
	fmt.Println("  would make them; no kubelet runs here, so they are API objects only and nothing serves traffic")

	// Admission is in place once a dry-run create passes the validating webhook and comes back
	// with the finalizer: the API server takes a moment to apply a new policy.
	if err := testenv.WaitForFinalizerAdmission(ctx, c, admissionProbe()); err != nil {
		return err
	}

	rules, err := applySamples(ctx, c, filepath.Join(root, "config", "samples"))
	if err != nil {
		return err
	}

	step("Waiting for the operator to process them")
	settled, err := waitSettled(ctx, c, rules)
	for _, rule := range settled {
		if err := printAPIRule(ctx, c, rule); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}

	step("Summary")
	ready := 0
	for _, rule := range settled {
		fmt.Printf("  %-18s %-8s %s\n", rule.Name, rule.Status.State, rule.Status.Description)
		if rule.Status.State == apiv2.StateReady {
			ready++
		}
	}
	fmt.Printf("  %d of %d sample APIRules are Ready\n", ready, len(settled))
	if ready == 0 {
		return errors.New("no sample APIRule became Ready")
	}

	if os.Getenv("DEMO_EXIT") == "1" {
		return nil
	}
	step("The control plane and the operator keep running")
	fmt.Printf("  export KUBECONFIG=%s\n", kubeconfig)
	fmt.Printf("  kubectl -n %s get apirules\n", demoNamespace)
	fmt.Printf("  kubectl -n %s apply -f my-apirule.yaml\n", demoNamespace)
	fmt.Println("  Press Ctrl-C to stop everything.")
	<-ctx.Done()
	return nil
}

// waitReady waits until the operator's readiness probe passes: its webhook serves, so the
// API server can admit the samples.
func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the operator is not ready after %s (%s)", settleTimeout, url)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n==> "+format+"\n", args...)
}

func kubeVersion(root string) string {
	raw, err := os.ReadFile(filepath.Join(root, "bin", "envtest", ".versions"))
	if err != nil {
		return ""
	}
	for _, field := range strings.Fields(string(raw)) {
		if v, ok := strings.CutPrefix(field, "kube-apiserver="); ok {
			return v
		}
	}
	return ""
}

func writeKubeconfig(env *testenv.Environment, dir string) (string, error) {
	user, err := env.ControlPlane.AddUser(envtest.User{Name: "demo-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return "", fmt.Errorf("creating the demo user: %w", err)
	}
	raw, err := user.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "kubeconfig")
	return path, os.WriteFile(path, raw, 0o600)
}

func createWorkload(ctx context.Context, c client.Client) error {
	mesh := fixtures.MeshConfig(gatewayNamespace, "oauth2-proxy")
	mesh.Data["mesh"] = "defaultConfig:\n  gatewayTopology:\n    numTrustedProxies: 1\n" + mesh.Data["mesh"]
	ca, err := fixtures.NewCA("partner-ca", time.Now().AddDate(1, 0, 0))
	if err != nil {
		return err
	}
	server, err := ca.NewServerCertificate(time.Now().AddDate(1, 0, 0), "partner.example.com")
	if err != nil {
		return err
	}
	apps, err := ca.NewServerCertificate(time.Now().AddDate(1, 0, 0), "*.apps.example.com")
	if err != nil {
		return err
	}
	objects := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gatewayNamespace}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: demoNamespace}},
		fixtures.Gateway(gatewayNamespace, gatewayName, "*.example.com"),
		fixtures.GatewayCredential(gatewayNamespace, gatewayName, "*.example.com"),
		mesh,
		server.TLSSecret(gatewayNamespace, "partner-tls"),
		// The default Gateway's certificate (--default-gateway-credential).
		apps.TLSSecret(gatewayNamespace, "apps-example-com-tls"),
		ca.CASecret(demoNamespace, "partner-ca"),
		fixtures.Service(demoNamespace, "httpbin", 8000),
		fixtures.SidecarPod(demoNamespace, "httpbin-0", "httpbin"),
		fixtures.SidecarPod(demoNamespace, "httpbin-1", "httpbin"),
	}
	for _, obj := range objects {
		if err := c.Create(ctx, obj); err != nil {
			return fmt.Errorf("creating %T %s: %w", obj, obj.GetName(), err)
		}
	}
	return nil
}

// applySamples creates every sample APIRule of config/samples in the demo namespace.
func applySamples(ctx context.Context, c client.Client, dir string) ([]types.NamespacedName, error) {
	files, err := filepath.Glob(filepath.Join(dir, "gateway_v2_apirule_*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	step("Applying %d sample APIRules from config/samples", len(files))
	var keys []types.NamespacedName
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		rule := &apiv2.APIRule{}
		if err := yaml.UnmarshalStrict(raw, rule); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		rule.Namespace = demoNamespace
		if err := c.Create(ctx, rule); err != nil {
			return nil, fmt.Errorf("applying %s: %w", file, err)
		}
		fmt.Printf("  %s -> apirule %s/%s\n", filepath.Base(file), rule.Namespace, rule.Name)
		keys = append(keys, types.NamespacedName{Namespace: rule.Namespace, Name: rule.Name})
	}
	return keys, nil
}

// waitSettled waits until the status of every APIRule describes its current generation.
func waitSettled(ctx context.Context, c client.Client, keys []types.NamespacedName) ([]*apiv2.APIRule, error) {
	deadline := time.Now().Add(settleTimeout)
	for {
		var out []*apiv2.APIRule
		pending := ""
		for _, key := range keys {
			rule := &apiv2.APIRule{}
			if err := c.Get(ctx, key, rule); err != nil {
				return nil, err
			}
			if rule.Status.State == "" || rule.Status.State == apiv2.StateProcessing || rule.Status.ObservedGeneration != rule.Generation {
				pending = key.String()
			}
			out = append(out, rule)
		}
		if pending == "" {
			return out, nil
		}
		if time.Now().After(deadline) {
			return out, fmt.Errorf("APIRule %s was not processed within %s; see the operator log", pending, settleTimeout)
		}
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func printAPIRule(ctx context.Context, c client.Client, rule *apiv2.APIRule) error {
	step("APIRule %s/%s: %s", rule.Namespace, rule.Name, rule.Status.State)
	if err := printYAML(map[string]any{"status": rule.Status}); err != nil {
		return err
	}
	owner := types.NamespacedName{Namespace: rule.Namespace, Name: rule.Name}
	selector := client.MatchingLabels(ownership.Labels(owner))
	policies := &securityclientv1.AuthorizationPolicyList{}
	if err := c.List(ctx, policies, selector); err != nil {
		return err
	}
	routes := &networkingclientv1.VirtualServiceList{}
	if err := c.List(ctx, routes, selector); err != nil {
		return err
	}
	gateways := &networkingclientv1.GatewayList{}
	if err := c.List(ctx, gateways, selector); err != nil {
		return err
	}
	secrets := &corev1.SecretList{}
	if err := c.List(ctx, secrets, selector); err != nil {
		return err
	}
	if len(policies.Items)+len(routes.Items) == 0 {
		fmt.Println("  (no Istio objects generated)")
		return nil
	}
	fmt.Printf("  Generated Istio objects:\n")
	var objects []client.Object
	authentications := &securityclientv1.RequestAuthenticationList{}
	if err := c.List(ctx, authentications, selector); err != nil {
		return err
	}
	for _, ra := range authentications.Items {
		ra.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("RequestAuthentication"))
		objects = append(objects, ra)
	}
	for _, p := range policies.Items {
		p.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"))
		objects = append(objects, p)
	}
	for _, g := range gateways.Items {
		g.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("Gateway"))
		objects = append(objects, g)
	}
	for _, r := range routes.Items {
		r.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
		objects = append(objects, r)
	}
	for _, secret := range secrets.Items {
		fmt.Printf("  Secret %s/%s: the CA bundle copied for the Gateway (keys: %s)\n", secret.Namespace, secret.Name,
			strings.Join(slices.Sorted(maps.Keys(secret.Data)), ", "))
	}
	for _, obj := range objects {
		u, err := manifest.ToUnstructured(obj)
		if err != nil {
			return err
		}
		// Server-written bookkeeping only distracts in a demo.
		u.SetManagedFields(nil)
		u.SetResourceVersion("")
		u.SetUID("")
		u.SetGeneration(0)
		fmt.Println("---")
		if err := printYAML(u.Object); err != nil {
			return err
		}
	}
	return nil
}

func printYAML(v any) error {
	raw, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(raw)
	return err
}

// admissionProbe is an APIRule that admission accepts once the workload exists; it is only
// ever created with a dry run.
func admissionProbe() *apiv2.APIRule {
	yes := true
	gateway := apiv2.GatewayReference(gatewayNamespace + "/" + gatewayName)
	return &apiv2.APIRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: demoNamespace, Name: "admission-probe"},
		Spec: apiv2.APIRuleSpec{
			Hosts:   []apiv2.Host{"admission-probe.example.com"},
			Gateway: &gateway,
			Service: &apiv2.Service{Name: "httpbin", Port: 8000},
			Rules:   []apiv2.Rule{{Path: "/probe", Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: &yes}},
		},
	}
}
