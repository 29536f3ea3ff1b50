package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

// The suite runs a real kube-apiserver with the ValidatingWebhookConfiguration of
// config/webhook (envtest points it at the local webhook server and fills in its CA) and the
// operator with its webhook on, so every create and update below is a real admission call.

var (
	env      *testenv.Environment
	k8s      client.Client
	warnings = &warningRecorder{}
	// operatorRequests counts the API requests of the operator, webhook included.
	operatorRequests = testenv.NewRequestCounter()
)

// warningRecorder keeps the warnings the API server returns to the test client.
type warningRecorder struct {
	mu   sync.Mutex
	seen []string
}

func (w *warningRecorder) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, text)
}

// during returns the warnings received while f ran.
func (w *warningRecorder) during(f func()) []string {
	w.mu.Lock()
	w.seen = nil
	w.mu.Unlock()
	f()
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

func TestMain(m *testing.M) { testenv.Main(m, run) }

func run(m *testing.M) (int, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return 0, err
	}
	env, err = testenv.StartWith(func(e *envtest.Environment) {
		// The validating webhook, and the finalizer webhook of clusters before Kubernetes
		// 1.36 (the MutatingAdmissionPolicy that replaces it has its tests in
		// config/finalizer-policy).
		e.WebhookInstallOptions = envtest.WebhookInstallOptions{
			Paths: []string{
				filepath.Join(root, "config", "webhook", "manifests.yaml"),
				filepath.Join(root, "config", "components", "finalizer-webhook", "mutating-webhook.yaml"),
			},
		}
	})
	if err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()

	opts := operator.DefaultOptions()
	opts.LeaderElection = false
	opts.MetricsAddress = "0"
	opts.HealthProbeAddress = "0"
	opts.Settings.IstioNamespace = "istio-system"
	install := env.WebhookInstallOptions
	opts.Webhook = webhook.Options{
		Enabled:        true,
		Host:           install.LocalServingHost,
		Port:           install.LocalServingPort,
		CertDir:        install.LocalServingCertDir,
		CertManagement: webhook.CertExternal,
	}
	// The operator runs with the install's RBAC only, as in a cluster. Its Role in the Istio
	// namespace (the mesh config ConfigMap) is granted only if the namespace exists.
	admin, err := client.New(env.Config, client.Options{})
	if err != nil {
		return 0, err
	}
	if err := admin.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}}); err != nil {
		return 0, err
	}
	operatorConfig, err := env.ManagerConfig(context.Background(), "")
	if err != nil {
		return 0, err
	}
	operatorConfig.WrapTransport = operatorRequests.Wrap
	mgr, err := operator.NewManager(operatorConfig, opts)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "the operator stopped with:", err)
		}
	}()

	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandler = warnings
	scheme, err := operator.NewScheme()
	if err != nil {
		return 0, err
	}
	if k8s, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	if err := setUp(ctx); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

// setUp creates the Gateway and the mesh config, and waits until the webhook answers.
func setUp(ctx context.Context) error {
	for _, obj := range []client.Object{
		fixtures.Gateway("istio-system", "public", "*.example.com"),
		fixtures.GatewayCredential("istio-system", "public", "*.example.com"),
		fixtures.MeshConfig("istio-system", "oauth2-proxy"),
	} {
		if err := k8s.Create(ctx, obj); err != nil {
			return err
		}
	}
	probe := apiRule("probe", "probe-ns-never-created.example.com", noAuth("/x", "GET"))
	deadline := time.Now().Add(time.Minute)
	for {
		// A dry run reaches the webhook without storing anything.
		err := k8s.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook did not answer within a minute: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var serial int

// namespace creates a namespace of its own for a test.
func namespace(t *testing.T) string {
	t.Helper()
	serial++
	name := fmt.Sprintf("wh-%d", serial)
	if err := k8s.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
	return name
}

func noAuth(path string, methods ...apiv2.HTTPMethod) apiv2.Rule {
	yes := true
	return apiv2.Rule{Path: path, Methods: methods, NoAuth: &yes}
}

func jwt(path, jwksURI string, methods ...apiv2.HTTPMethod) apiv2.Rule {
	return apiv2.Rule{Path: path, Methods: methods, JWT: &apiv2.JWTConfig{
		Authentications: []apiv2.JWTAuthentication{{Issuer: "https://idp.example.com", JWKSURI: &jwksURI}},
	}}
}

func apiRule(name, host string, rules ...apiv2.Rule) *apiv2.APIRule {
	gw := apiv2.GatewayReference("istio-system/public")
	return &apiv2.APIRule{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: apiv2.APIRuleSpec{
			Hosts:   []apiv2.Host{apiv2.Host(host)},
			Gateway: &gw,
			Service: &apiv2.Service{Name: "backend", Port: 8080},
			Rules:   rules,
		},
	}
}

func in(ns string, r *apiv2.APIRule) *apiv2.APIRule {
	r.Namespace = ns
	return r
}

// rejected asserts a refusal by the webhook: HTTP 422, reason Invalid, and a cause for every
// field with a message containing the given text.
func rejected(t *testing.T, err error, causes map[string]string) {
	t.Helper()
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		t.Fatalf("want a refusal, got %v", err)
	}
	s := status.Status()
	if s.Code != http.StatusUnprocessableEntity || s.Reason != metav1.StatusReasonInvalid {
		t.Errorf("status %d %s, want 422 Invalid: %s", s.Code, s.Reason, s.Message)
	}
	if !strings.Contains(s.Message, `admission webhook "vapirule.gateway.apirule.io" denied the request`) {
		t.Errorf("not refused by the webhook: %s", s.Message)
	}
	if s.Details == nil {
		t.Fatalf("no details: %s", s.Message)
	}
	got := map[string]string{}
	for _, c := range s.Details.Causes {
		got[c.Field] += c.Message
	}
	for field, text := range causes {
		if !strings.Contains(got[field], text) {
			t.Errorf("cause for %s = %q, want it to contain %q (all causes: %v)", field, got[field], text, got)
		}
		if !strings.Contains(s.Message, field+": ") {
			t.Errorf("message lacks the field path %s: %s", field, s.Message)
		}
	}
	if len(got) != len(causes) {
		t.Errorf("causes for %d fields, want %d: %v", len(got), len(causes), got)
	}
}

// update reads the APIRule, changes it and writes it back, again when the operator wrote
// its status in between.
func update(r *apiv2.APIRule, change func(*apiv2.APIRule)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(r), r); err != nil {
			return err
		}
		change(r)
		return k8s.Update(context.Background(), r)
	})
}

func hasWarning(t *testing.T, seen []string, prefix string) {
	t.Helper()
	for _, w := range seen {
		if strings.HasPrefix(w, prefix) {
			return
		}
	}
	t.Errorf("no warning starting with %q in %q", prefix, seen)
}

func TestValidAPIRuleIsAdmittedWithoutWarnings(t *testing.T) {
	ns := namespace(t)
	r := in(ns, apiRule("valid", "valid.example.com",
		noAuth("/health", "GET"), jwt("/api/{**}", "https://idp.example.com/jwks", "GET", "POST")))
	var err error
	seen := warnings.during(func() { err = k8s.Create(context.Background(), r) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 0 {
		t.Errorf("warnings for a plain APIRule: %q", seen)
	}
}

func TestShadowedRuleIsRejected(t *testing.T) {
	ns := namespace(t)
	r := in(ns, apiRule("shadowed", "shadowed.example.com",
		noAuth("/health", "GET"),
		jwt("/api/{**}", "https://idp.example.com/jwks", "GET"),
		jwt("/api/users", "https://idp.example.com/jwks", "GET")))
	denied := testenv.MetricValue("apirule_admission_requests_total", map[string]string{"operation": "create", "result": "denied"})
	shadowed := testenv.MetricValue("apirule_admission_denials_total", map[string]string{"reason": "RuleShadowed"})
	rejected(t, k8s.Create(context.Background(), r), map[string]string{
		"spec.rules[2].path": "spec.rules[2] is never reached for GET because spec.rules[1] (GET /api/{**}, jwt) matches first; move it before rule 1 or narrow rule 1",
	})
	if got := testenv.MetricValue("apirule_admission_requests_total", map[string]string{"operation": "create", "result": "denied"}); got != denied+1 {
		t.Errorf("denied creates counted %v, want %v", got, denied+1)
	}
	if got := testenv.MetricValue("apirule_admission_denials_total", map[string]string{"reason": "RuleShadowed"}); got != shadowed+1 {
		t.Errorf("RuleShadowed denials counted %v, want %v", got, shadowed+1)
	}
}

func TestUpdateThatIntroducesShadowingIsRejected(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	r := in(ns, apiRule("evolving", "evolving.example.com",
		jwt("/api/users", "https://idp.example.com/jwks", "GET"), noAuth("/api/{**}", "GET")))
	if err := k8s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	// Swapping the rules puts the catch-all first: the jwt rule would never be reached.
	var err error
	seen := warnings.during(func() {
		err = update(r, func(r *apiv2.APIRule) { r.Spec.Rules[0], r.Spec.Rules[1] = r.Spec.Rules[1], r.Spec.Rules[0] })
	})
	rejected(t, err, map[string]string{"spec.rules[1].path": "spec.rules[1] is never reached for GET because spec.rules[0] (GET /api/{**}, noAuth)"})
	if len(seen) != 0 {
		t.Errorf("warnings: %q", seen)
	}
	// An update that leaves the spec alone passes whatever the spec says.
	if err := update(r, func(r *apiv2.APIRule) { r.Labels = map[string]string{"team": "shop"} }); err != nil {
		t.Errorf("label update refused: %v", err)
	}
}

// A noAuth rule that takes GET from a later jwt rule would open GET without a token.
func TestPartlyShadowedProtectedRuleIsRejectedAndOtherwiseWarned(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	opened := in(ns, apiRule("opened", "opened.example.com",
		noAuth("/public/{**}", "GET"), jwt("/public/admin", "https://idp.example.com/jwks", "GET", "POST")))
	rejected(t, k8s.Create(ctx, opened), map[string]string{
		"spec.rules[1].path": "spec.rules[1] (jwt) is never reached for GET because spec.rules[0] (GET /public/{**}, noAuth) matches first, so those requests pass without authentication",
	})

	partly := in(ns, apiRule("partly", "partly.example.com",
		jwt("/api/{**}", "https://idp.example.com/jwks", "GET"), jwt("/api/users", "https://idp.example.com/jwks", "GET", "POST")))
	var err error
	seen := warnings.during(func() { err = k8s.Create(ctx, partly) })
	if err != nil {
		t.Fatal(err)
	}
	hasWarning(t, seen, "spec.rules[1].path: spec.rules[1] is never reached for GET because spec.rules[0] (GET /api/{**}, jwt) matches first; remove GET here")
}

func TestHostClaimedByAnotherAPIRuleIsRejected(t *testing.T) {
	ns := namespace(t)
	other := namespace(t)
	ctx := context.Background()
	first := in(ns, apiRule("first", "claimed.example.com", noAuth("/a", "GET")))
	if err := k8s.Create(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := in(other, apiRule("second", "claimed.example.com", noAuth("/b", "GET")))
	rejected(t, dryRunUntilRefused(ctx, second), map[string]string{
		"spec.hosts[0]": fmt.Sprintf(`host "claimed.example.com" is already claimed by APIRule %s/first`, ns),
	})
	// The claims come from the operator's cache through the host index: the admission calls
	// send no request for APIRules to the API server.
	before, _ := operatorRequests.Snapshot()
	for range 3 {
		_ = k8s.Create(ctx, second.DeepCopy(), client.DryRunAll)
	}
	after, _ := operatorRequests.Snapshot()
	for _, key := range []string{"LIST apirules", "GET apirules"} {
		if after[key] != before[key] {
			t.Errorf("%s went from %d to %d during admission calls", key, before[key], after[key])
		}
	}

	// Another host is free.
	second.Spec.Hosts = []apiv2.Host{"free.example.com"}
	if err := k8s.Create(ctx, second); err != nil {
		t.Errorf("a free host was refused: %v", err)
	}
	// Adding the claimed host by an update is refused too.
	rejected(t, update(second, func(r *apiv2.APIRule) { r.Spec.Hosts = append(r.Spec.Hosts, "claimed.example.com") }),
		map[string]string{"spec.hosts[1]": "already claimed by APIRule"})
	// The owner itself may keep changing its rules.
	if err := update(first, func(r *apiv2.APIRule) { r.Spec.Rules = append(r.Spec.Rules, noAuth("/c", "GET")) }); err != nil {
		t.Errorf("the owner's update was refused: %v", err)
	}
}

func TestIssuerConfiguredDifferentlyIsRejected(t *testing.T) {
	ns := namespace(t)
	r := in(ns, apiRule("issuers", "issuers.example.com",
		jwt("/a", "https://idp.example.com/jwks", "GET"), jwt("/b", "https://idp.example.com/other-jwks", "GET")))
	rejected(t, k8s.Create(context.Background(), r), map[string]string{
		"spec.rules[1].jwt.authentications[0]": `issuer "https://idp.example.com" is configured differently here and in spec.rules[0].jwt.authentications[0]`,
	})
}

func TestHostIstioRejectsIsRejected(t *testing.T) {
	ns := namespace(t)
	r := in(ns, apiRule("numeric", "api.example.123", noAuth("/a", "GET")))
	rejected(t, k8s.Create(context.Background(), r), map[string]string{
		"spec.hosts[0]": `Istio refuses a host whose last label is all digits ("123")`,
	})
}

func TestMissingGatewayWithoutDefaultIsRejected(t *testing.T) {
	ns := namespace(t)
	r := in(ns, apiRule("nogateway", "nogateway.example.com", noAuth("/a", "GET")))
	r.Spec.Gateway = nil
	rejected(t, k8s.Create(context.Background(), r), map[string]string{
		"spec.gateway": "no gateway is set and the operator has no default gateway",
	})
}

func TestRiskyInputIsAdmittedWithWarnings(t *testing.T) {
	ns := namespace(t)
	r := in(ns, apiRule("risky", "*.risky.example.com",
		jwt("/api", "http://idp.example.com/jwks", "GET"),
		apiv2.Rule{Path: "/ext", Methods: []apiv2.HTTPMethod{"GET"}, ExtAuth: &apiv2.ExtAuth{Authorizers: []string{"oauth2-proxy", "not-declared"}}},
		noAuth("/*", "GET")))
	var err error
	seen := warnings.during(func() { err = k8s.Create(context.Background(), r) })
	if err != nil {
		t.Fatal(err)
	}
	hasWarning(t, seen, "spec.hosts[0]: wildcard host *.risky.example.com exposes these rules on every name under risky.example.com")
	hasWarning(t, seen, "spec.rules[0].jwt.authentications[0].jwksUri: signing keys fetched over plain http")
	hasWarning(t, seen, `spec.rules[1].extAuth.authorizers[1]: extension provider "not-declared" is not declared in the Istio mesh config`)
	hasWarning(t, seen, "spec.rules[2].path: noAuth on /* lets every GET request through without authentication")
	if len(seen) != 4 {
		t.Errorf("want 4 warnings, got %q", seen)
	}
}

// Deleting an APIRule the webhook would refuse today still works: the webhook does not see
// deletions, and the finalizer removal leaves the spec alone.
func TestDeletionIsNeverBlocked(t *testing.T) {
	ns := namespace(t)
	ctx := context.Background()
	r := in(ns, apiRule("doomed", "doomed.example.com", noAuth("/a", "GET")))
	r.Finalizers = []string{"test.apirule.io/hold"}
	if err := k8s.Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := update(r, func(r *apiv2.APIRule) { r.Finalizers = nil }); err != nil {
		t.Errorf("removing the finalizer was refused: %v", err)
	}
}

// A backend in another namespace is refused until that namespace consents with a
// ReferenceGrant; the grant must name APIRules of the APIRule's namespace and the Service.
func TestCrossNamespaceBackendNeedsAReferenceGrant(t *testing.T) {
	ns, backends := namespace(t), namespace(t)
	ctx := context.Background()
	r := in(ns, apiRule("elsewhere", "elsewhere.example.com", noAuth("/*", "GET")))
	r.Spec.Service.Namespace = &backends
	rejected(t, k8s.Create(ctx, r.DeepCopy()), map[string]string{
		"spec.service.namespace": "create a ReferenceGrant in " + backends + " from group gateway.apirule.io, kind APIRule, namespace " + ns,
	})

	service := gatewayv1beta1.ObjectName("backend")
	grant := &gatewayv1beta1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: backends, Name: "apirules"},
		Spec: gatewayv1beta1.ReferenceGrantSpec{
			From: []gatewayv1beta1.ReferenceGrantFrom{{Group: "gateway.apirule.io", Kind: "APIRule", Namespace: gatewayv1beta1.Namespace(ns)}},
			To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service", Name: &service}},
		},
	}
	if err := k8s.Create(ctx, grant); err != nil {
		t.Fatal(err)
	}
	// The webhook reads the grant from the operator's cache, which sees it a moment later.
	deadline := time.Now().Add(10 * time.Second)
	for err := k8s.Create(ctx, r.DeepCopy()); err != nil; err = k8s.Create(ctx, r.DeepCopy()) {
		if time.Now().After(deadline) {
			t.Fatalf("refused with the ReferenceGrant in place: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The grant names one Service: another of the same namespace is still refused.
	other := in(ns, apiRule("other-backend", "other-backend.example.com", noAuth("/*", "GET")))
	other.Spec.Service.Namespace, other.Spec.Service.Name = &backends, "payments"
	rejected(t, k8s.Create(ctx, other), map[string]string{
		"spec.service.namespace": "to group \"\", kind Service, name payments",
	})
}

// servable creates the backend Service and a Pod with a sidecar in ns, so an APIRule on
// "backend" becomes Ready and the reconciler reaches the point where it needs the finalizer.
func servable(t *testing.T, ns string) {
	t.Helper()
	for _, obj := range []client.Object{fixtures.Service(ns, "backend", 8080), fixtures.SidecarPod(ns, "backend-0", "backend")} {
		if err := k8s.Create(context.Background(), obj); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReady waits until the operator reports the APIRule Ready and returns it as stored.
func waitReady(t *testing.T, r *apiv2.APIRule) *apiv2.APIRule {
	t.Helper()
	got := &apiv2.APIRule{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(r), got); err != nil {
			t.Fatal(err)
		}
		if got.Status.State == apiv2.StateReady && got.Status.ObservedGeneration == got.Generation {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Ready after 30 s: %+v", got.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The mutating webhook sets the finalizer as the APIRule is stored, so the operator never
// patches it: the create's answer carries it, and the APIRule gets Ready without a single
// PATCH of the APIRule itself by the operator.
func TestFinalizerIsSetOnCreate(t *testing.T) {
	ns := namespace(t)
	servable(t, ns)
	r := in(ns, apiRule("finalized", "finalized.example.com", noAuth("/a", "GET")))
	r.Finalizers = []string{"test.apirule.io/other"}
	if err := k8s.Create(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if want := []string{"test.apirule.io/other", ownership.Finalizer}; !slices.Equal(r.Finalizers, want) {
		t.Fatalf("stored finalizers %v, want %v (the client's kept, the operator's appended)", r.Finalizers, want)
	}
	ready := waitReady(t, r)
	if !slices.Equal(ready.Finalizers, r.Finalizers) {
		t.Errorf("finalizers changed to %v after the reconcile", ready.Finalizers)
	}
	if n := operatorRequests.ObjectRequests("PATCH", "apirules", ns+"/finalized"); n != 0 {
		t.Errorf("the operator patched the APIRule %d times; the webhook should have set the finalizer", n)
	}
	if n := operatorRequests.ObjectRequests("PATCH", "apirules/status", ns+"/finalized"); n != 1 {
		t.Errorf("the operator wrote the status %d times, want 1", n)
	}

	// Asking for it again (a client that sets it itself) adds no second copy.
	twice := in(ns, apiRule("twice", "twice.example.com", noAuth("/a", "GET")))
	twice.Finalizers = []string{ownership.Finalizer}
	if err := k8s.Create(context.Background(), twice); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(twice.Finalizers, []string{ownership.Finalizer}) {
		t.Errorf("finalizers %v, want the operator's once", twice.Finalizers)
	}
}

// With the mutating webhook out of the way (here: its configuration excludes APIRules with a
// label; in a cluster: the webhook off or unreachable, failurePolicy Ignore) the create
// succeeds without the finalizer, and the reconciler adds it with a patch of its own before
// it writes the first child.
func TestFinalizerFallsBackToTheReconciler(t *testing.T) {
	ctx := context.Background()
	const skip = "test.apirule.io/skip-mutation"
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := k8s.Get(ctx, client.ObjectKey{Name: "apirule-operator-mutating-webhook-configuration"}, cfg); err != nil {
		t.Fatal(err)
	}
	original := cfg.DeepCopy()
	cfg.Webhooks[0].ObjectSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: skip, Operator: metav1.LabelSelectorOpDoesNotExist}}}
	if err := k8s.Patch(ctx, cfg, client.MergeFrom(original)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		restore := &admissionregistrationv1.MutatingWebhookConfiguration{}
		if err := k8s.Get(ctx, client.ObjectKey{Name: cfg.Name}, restore); err == nil {
			before := restore.DeepCopy()
			restore.Webhooks[0].ObjectSelector = original.Webhooks[0].ObjectSelector
			_ = k8s.Patch(ctx, restore, client.MergeFrom(before))
		}
	})

	ns := namespace(t)
	servable(t, ns)
	// The API server picks up the changed configuration a moment later: until then the
	// webhook still sets the finalizer, and the attempt is left for the operator to settle.
	var r *apiv2.APIRule
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		r = in(ns, apiRule(fmt.Sprintf("unmutated-%d", i), fmt.Sprintf("unmutated-%d.example.com", i), noAuth("/a", "GET")))
		r.Labels = map[string]string{skip: "true"}
		if err := k8s.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		if len(r.Finalizers) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook still set the finalizer after 20 s: %v", r.Finalizers)
		}
		time.Sleep(200 * time.Millisecond)
	}
	ready := waitReady(t, r)
	if !slices.Equal(ready.Finalizers, []string{ownership.Finalizer}) {
		t.Errorf("finalizers %v, want the operator's", ready.Finalizers)
	}
	if n := operatorRequests.ObjectRequests("PATCH", "apirules", ns+"/"+r.Name); n != 1 {
		t.Errorf("the operator patched the APIRule %d times, want 1 (the finalizer)", n)
	}
}
