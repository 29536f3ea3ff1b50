package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/render"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// validate --kubeconfig reads a real API server (envtest: kube-apiserver and etcd, with the
// CRDs, no operator and no webhook) and reports what the operator would, per APIRule.
func TestValidateACluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	k8s, err := env.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	create := func(objs ...client.Object) {
		t.Helper()
		for _, obj := range objs {
			if err := k8s.Create(ctx, obj); err != nil {
				t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
			}
		}
	}
	ca, err := fixtures.NewCA("partners", time.Now().AddDate(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.NewServerCertificate(time.Now().AddDate(1, 0, 0), "partner.example.com")
	if err != nil {
		t.Fatal(err)
	}
	withoutSidecar := fixtures.SidecarPod("shop", "api-0", "api")
	withoutSidecar.Spec.Containers = withoutSidecar.Spec.Containers[:1]
	broken := fixtures.MeshConfig("istio-system")
	broken.Data["mesh"] = "extensionProviders: {"
	create(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "backend"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "other"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}},
		fixtures.Gateway("istio-system", "public", "*.example.com"),
		fixtures.Service("shop", "api", 8000), withoutSidecar,
		fixtures.Service("shop", "web", 8000), fixtures.SidecarPod("shop", "web-0", "web"),
		fixtures.Service("backend", "orders", 8000), fixtures.SidecarPod("backend", "orders-0", "orders"),
		&gatewayv1beta1.ReferenceGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: "backend", Name: "from-shop"},
			Spec: gatewayv1beta1.ReferenceGrantSpec{
				From: []gatewayv1beta1.ReferenceGrantFrom{{Group: gatewayv1beta1.Group(apiv2.GroupVersion.Group), Kind: "APIRule", Namespace: "shop"}},
				To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service"}},
			},
		},
		server.TLSSecret("istio-system", "partner-tls"), ca.CASecret("shop", "partner-ca"),
		broken,
	)
	// Creation order decides who owns a host; names sort the other way round, so a result
	// that follows names instead would show. creationTimestamp has whole seconds.
	createRule := func(doc string) {
		t.Helper()
		rule := &apiv2.APIRule{}
		if err := yaml.UnmarshalStrict([]byte(doc), rule); err != nil {
			t.Fatal(err)
		}
		create(rule)
		time.Sleep(1100 * time.Millisecond)
	}
	createRule(`{metadata: {name: zeta, namespace: shop}, spec: {hosts: [api.example.com], gateway: istio-system/public,
  service: {name: web, port: 8000}, rules: [{path: /a, methods: [GET], noAuth: true}]}}`)
	createRule(`{metadata: {name: alpha, namespace: shop}, spec: {hosts: [api.example.com], gateway: istio-system/public,
  service: {name: web, port: 8000}, rules: [{path: /b, methods: [GET], noAuth: true}]}}`)
	createRule(`{metadata: {name: cross, namespace: shop}, spec: {hosts: [orders.example.com], gateway: istio-system/public,
  service: {name: orders, namespace: backend, port: 8000}, rules: [{path: /orders, methods: [GET], noAuth: true}]}}`)
	createRule(`{metadata: {name: authz, namespace: shop}, spec: {hosts: [authz.example.com], gateway: istio-system/public,
  service: {name: api, port: 8000}, rules: [{path: /x, methods: [GET], extAuth: {authorizers: [oauth2]}}]}}`)
	createRule(`{metadata: {name: partners, namespace: shop}, spec: {hosts: [partner.example.com],
  service: {name: orders, namespace: backend, port: 8000},
  mtls: {credentialName: partner-tls, caSecretRef: {name: partner-ca}},
  rules: [{path: /p, methods: [GET], noAuth: true}]}}`)
	createRule(`{metadata: {name: lost, namespace: other}, spec: {hosts: [lost.example.com], gateway: istio-system/public,
  service: {name: nothing, port: 8000}, rules: [{path: /l, methods: [GET], noAuth: true}]}}`)

	code, stdout, stderr := runCLI(t, "", "validate", "--kubeconfig", kubeconfig, "-n", "shop")
	if code != 1 {
		t.Errorf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	t.Logf("validate -n shop:\n%s", stdout)
	for _, want := range []string{
		// The later APIRule waits for the host the older one holds, whatever the names.
		"Error shop/alpha: spec.hosts[0]: ",
		"[Accepted/HostConflict]",
		// Pods are read: the backend's Pod runs no sidecar.
		"Error shop/authz: spec.service: Pod api-0 selected by Service shop/api has no istio-proxy sidecar",
		"[ResolvedRefs/SidecarMissing]",
		// The mesh config is read from the cluster.
		"Error shop/authz: spec.rules: the Istio mesh config does not parse",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("validate -n shop lacks %q", want)
		}
	}
	for _, unwanted := range []string{
		"Error shop/zeta:",         // the older APIRule keeps its host
		"shop/cross: spec.service", // the ReferenceGrant consents
		"CrossNamespaceBackend",
		"shop/partners: spec.mtls", // both Secrets are read, the certificates hold
		"other/lost",               // another namespace
		"offline:",                 // no hint to add objects to an input file
	} {
		if strings.Contains(stdout, unwanted) {
			t.Errorf("validate -n shop reports %q", unwanted)
		}
	}

	// Once the operator has applied what it generates, its objects are in the cluster too:
	// the rendering replaces them in the store and reports the same.
	bundle, err := render.LoadCluster(ctx, k8s, k8s.RESTMapper(), render.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	results, err := render.Render(bundle, render.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	applied := 0
	for _, r := range results {
		for _, obj := range r.Objects {
			create(obj.DeepCopyObject().(client.Object))
			applied++
		}
	}
	if applied < 4 {
		t.Fatalf("applied %d generated objects", applied)
	}
	again, againOut, againErr := runCLI(t, "", "validate", "--kubeconfig", kubeconfig, "-n", "shop")
	if again != code || againOut != stdout {
		t.Errorf("with the generated objects applied: exit %d, stderr %q, output:\n%s", again, againErr, againOut)
	}

	code, stdout, _ = runCLI(t, "", "validate", "--kubeconfig", kubeconfig, "-A")
	if code != 1 || !strings.Contains(stdout, "Error other/lost: spec.service: Service other/nothing not found") ||
		!strings.Contains(stdout, "shop/alpha") {
		t.Errorf("validate -A: exit %d:\n%s", code, stdout)
	}
	// The kubeconfig's namespace (none set: default) holds no APIRule.
	code, stdout, stderr = runCLI(t, "", "validate", "--kubeconfig", kubeconfig)
	if code != 0 || stdout != "0 APIRules valid\n" {
		t.Errorf("validate in default: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, _, stderr = runCLI(t, "", "validate", "--kubeconfig", kubeconfig, "--context", "nope")
	if code != 2 || !strings.Contains(stderr, "nope") {
		t.Errorf("unknown context: exit %d, stderr %q", code, stderr)
	}

	// No private key is read into the bundle; the certificates are.
	bundle, err = render.LoadCluster(ctx, k8s, k8s.RESTMapper(), render.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	secrets := 0
	for _, obj := range bundle.Objects {
		if secret, ok := obj.(*corev1.Secret); ok {
			secrets++
			for key, value := range secret.Data {
				if bytes.Contains(value, []byte("PRIVATE KEY")) {
					t.Errorf("Secret %s/%s: the key %s was read", secret.Namespace, secret.Name, key)
				}
			}
			if secret.Name == "partner-tls" && !bytes.Equal(secret.Data[corev1.TLSCertKey], server.CertPEM) {
				t.Errorf("the server certificate was not read")
			}
		}
	}
	// The credential, the CA and the operator's copy of the CA (applied above).
	if secrets != 3 {
		t.Errorf("read %d Secrets, want the 3 of the mTLS APIRule", secrets)
	}
	var order []string
	for _, rule := range bundle.APIRules {
		order = append(order, rule.Namespace+"/"+rule.Name)
	}
	if got := strings.Join(order, " "); got != "shop/zeta shop/alpha shop/cross shop/authz shop/partners other/lost" {
		t.Errorf("APIRules in the order %s, want creation order", got)
	}
}
