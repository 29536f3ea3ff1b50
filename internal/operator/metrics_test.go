package operator_test

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/apirule-operator/apirule-operator/internal/operator"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// TestSecureMetrics runs the operator with --metrics-secure and exactly the install's RBAC
// (the markers' roles and config/rbac/metrics_auth_role.yaml) and scrapes it: without a token
// the answer is 401, with the token of an account that may not GET /metrics 403, with one
// bound to config/rbac/metrics_reader_role.yaml the metrics; plain HTTP gets nothing.
func TestSecureMetrics(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	admin, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"istio-system", "monitoring"} {
		if err := admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	managerCfg, err := env.ManagerConfig(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// The install binds the metrics auth role to the manager, and an operator binds the reader
	// role to the scraper: the same files, bound to the test's identities.
	bindClusterRole(ctx, t, admin, filepath.Join(root, "config", "rbac", "metrics_auth_role.yaml"),
		rbacv1.Subject{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: testenv.ManagerUser})
	bindClusterRole(ctx, t, admin, filepath.Join(root, "config", "rbac", "metrics_reader_role.yaml"),
		rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: "prometheus", Namespace: "monitoring"})

	address := freeAddress(t)
	opts := operator.DefaultOptions()
	opts.LeaderElection = false
	opts.HealthProbeAddress = "0"
	opts.MetricsAddress = address
	opts.MetricsSecure = true
	opts.RestartableInProcess = true
	mgr, err := operator.NewManager(managerCfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the operator stopped with: %v", err)
		}
	})

	clientset, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	token := func(account string) string {
		if _, err := clientset.CoreV1().ServiceAccounts("monitoring").Create(ctx,
			&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: account}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		tr, err := clientset.CoreV1().ServiceAccounts("monitoring").CreateToken(ctx, account, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	scraper, other := token("prometheus"), token("someone")

	// The server's certificate is self-signed: scrapers do not verify it, the token is checked.
	https := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(bearer string) (int, string, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+address+"/metrics", nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := https.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), nil
	}
	// Until the server listens, and until the API server's authorizer has seen the bindings.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body, err := get(scraper)
		if err == nil && code == http.StatusOK {
			if !strings.Contains(body, "controller_runtime_") {
				t.Errorf("the metrics lack controller-runtime's: %.300s", body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scraping with the reader's token: code %d, err %v, body %.300s", code, err, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for name, c := range map[string]struct {
		bearer string
		want   int
	}{
		"no token":          {"", http.StatusUnauthorized},
		"an account denied": {other, http.StatusForbidden},
	} {
		if code, body, err := get(c.bearer); err != nil || code != c.want {
			t.Errorf("%s: code %d (err %v), want %d: %.200s", name, code, err, c.want, body)
		}
	}
	// A token the API server cannot review is refused too (controller-runtime answers 500).
	if code, body, err := get("not-a-token"); err != nil || code < 400 {
		t.Errorf("a forged token: code %d (err %v), want a refusal: %.200s", code, err, body)
	}
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + address + "/metrics"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP served the metrics: %.200s", body)
		}
	}
}

// bindClusterRole creates the ClusterRole of a manifest and binds it to the subject.
func bindClusterRole(ctx context.Context, t *testing.T, c client.Client, path string, subject rbacv1.Subject) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(raw, &role); err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) == 0 {
		t.Fatalf("%s holds no rules", path)
	}
	role.Name = "test-" + role.Name
	if err := c.Create(ctx, &role); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{subject},
	}
	if err := c.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
}

// freeAddress returns a loopback address with a port nothing listens on.
func freeAddress(t *testing.T) string {
	t.Helper()
	addresses, err := testenv.FreeAddresses(1)
	if err != nil {
		t.Fatal(err)
	}
	return addresses[0]
}
