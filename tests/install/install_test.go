// Package install_test proves the two installations: config/default rendered by the pinned
// kustomize and charts/apirule-operator rendered by the pinned Helm are both accepted by a
// real API server, install the same objects with the same RBAC, and run the manager under the
// restricted Pod Security Standard.
package install_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

// ensureNamespace creates a namespace for real (dry-run objects need their namespace to
// exist) with the labels the rendered Namespace carries.
func ensureNamespace(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := k8s.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

func TestKustomizeInstallIsAccepted(t *testing.T) {
	objs := kustomize(t, "config/default")
	ns := find(t, objs, "Namespace", operatorNamespace)
	ensureNamespace(t, operatorNamespace, ns.GetLabels())
	dryRunApply(t, objs)

	for _, want := range []string{
		"CustomResourceDefinition apirules.gateway.apirule.io",
		"ServiceAccount apirule-system/apirule-operator-controller-manager",
		"ClusterRole apirule-operator-manager-role",
		"ClusterRoleBinding apirule-operator-manager-rolebinding",
		"Role apirule-system/apirule-operator-leader-election-role",
		"RoleBinding apirule-system/apirule-operator-leader-election-rolebinding",
		"Deployment apirule-system/apirule-operator-controller-manager",
		"Service apirule-system/apirule-operator-webhook-service",
		"Service apirule-system/apirule-operator-metrics-service",
		"ValidatingWebhookConfiguration apirule-operator-validating-webhook-configuration",
		"MutatingAdmissionPolicy apirule-operator-finalizer",
		"MutatingAdmissionPolicyBinding apirule-operator-finalizer",
		"PodDisruptionBudget apirule-system/apirule-operator-controller-manager",
		"ClusterRole apirule-operator-metrics-auth-role",
		"ClusterRoleBinding apirule-operator-metrics-auth-rolebinding",
		"ClusterRole apirule-operator-metrics-reader",
	} {
		if !slices.Contains(keys(objs), want) {
			t.Errorf("config/default does not install %s; it installs %v", want, keys(objs))
		}
	}
	checkWiring(t, "config/default", objs)
}

func TestHelmInstallIsAccepted(t *testing.T) {
	ensureNamespace(t, operatorNamespace, nil)
	objs := helmTemplate(t)
	dryRunApply(t, objs)
	checkWiring(t, "helm", objs)
}

// TestHelmValuesReachTheManager renders the chart with every value changed from its default
// and checks that each one reaches the manager's flags or the objects.
func TestHelmValuesReachTheManager(t *testing.T) {
	ensureNamespace(t, operatorNamespace, nil)
	objs := helmTemplate(t,
		"image.repository=registry.example.com/apirule-operator", "image.tag=1.2.3",
		"replicaCount=3", "maxConcurrentReconciles=8",
		"ingressGateway.namespace=gateways", "ingressGateway.selector.app=edge", "ingressGateway.selector.istio=ingress",
		"ingressGateway.principal=cluster.local/ns/gateways/sa/edge",
		"defaultGateway.name=gateways/public", "defaultGateway.manage=true",
		"defaultGateway.domain=example.com", "defaultGateway.credentialName=example-com-tls",
		"istio.namespace=mesh", "istio.revision=canary", "istio.multipleCustomAuthzProviders=true",
		"webhook.port=9444", "metrics.port=9090", "logging.level=debug", "extraArgs[0]=--zap-encoder=console",
		"resources.limits.memory=2Gi",
	)
	dryRunApply(t, objs)
	deploy := find(t, objs, "Deployment", "apirule-operator-controller-manager")
	args := containerArgs(t, deploy)
	for _, want := range []string{
		"--max-concurrent-reconciles=8",
		"--ingress-gateway-namespace=gateways",
		"--ingress-gateway-selector=app=edge,istio=ingress",
		"--ingress-gateway-principal=cluster.local/ns/gateways/sa/edge",
		"--default-gateway=gateways/public",
		"--manage-default-gateway=true",
		"--default-gateway-domain=example.com",
		"--default-gateway-credential=example-com-tls",
		"--istio-namespace=mesh",
		"--istio-revision=canary",
		"--multiple-custom-authz-providers=true",
		"--webhook-port=9444",
		"--metrics-bind-address=:9090",
		"--zap-log-level=debug",
		"--zap-encoder=console",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args lack %s: %v", want, args)
		}
	}
	// What the markers grant in istio-system follows the ingress gateway to its namespace.
	if !slices.Contains(keys(objs), "RoleBinding gateways/apirule-operator-manager-rolebinding") {
		t.Errorf("no RoleBinding in the ingress gateway namespace gateways: %v", keys(objs))
	}
	for _, o := range objs {
		if o.GetNamespace() == "istio-system" {
			t.Errorf("%s stays in istio-system although ingressGateway.namespace is gateways", key(o))
		}
	}
	if got, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "replicas"); got != 3 {
		t.Errorf("replicas = %d, want 3 (replicaCount)", got)
	}
	container := managerContainer(t, deploy)
	if container.Image != "registry.example.com/apirule-operator:1.2.3" {
		t.Errorf("image = %s", container.Image)
	}
	if got := container.Resources.Limits.Memory().String(); got != "2Gi" {
		t.Errorf("memory limit = %s, want 2Gi", got)
	}
	if port := containerPort(container, "webhook-server"); port != 9444 {
		t.Errorf("webhook-server container port = %d, want 9444", port)
	}
	if port := containerPort(container, "metrics"); port != 9090 {
		t.Errorf("metrics container port = %d, want 9090", port)
	}
}

func TestHelmRefusesManagingAnUnnamedGateway(t *testing.T) {
	args := []string{"template", "x", "charts/apirule-operator", "--set", "defaultGateway.manage=true"}
	cmd := execCommand(t, tool(t, "APIRULE_HELM", "helm"), args...)
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "defaultGateway.name") {
		t.Fatalf("helm template with defaultGateway.manage and no name: err=%v, output:\n%s", err, out)
	}
}

func TestHelmWithoutWebhookOrMetrics(t *testing.T) {
	objs := helmTemplate(t, "webhook.enabled=false", "metrics.enabled=false", "leaderElection.enabled=false", "replicaCount=1")
	for _, gone := range []string{
		"ValidatingWebhookConfiguration apirule-operator-validating-webhook-configuration",
		"MutatingWebhookConfiguration apirule-operator-mutating-webhook-configuration",
		"Service apirule-system/apirule-operator-webhook-service",
		"Service apirule-system/apirule-operator-metrics-service",
		"Role apirule-system/apirule-operator-leader-election-role",
		// The webhook certificate rotator's Secret and webhook configuration rights.
		"Role apirule-system/apirule-operator-manager-role",
		"RoleBinding apirule-system/apirule-operator-manager-rolebinding",
		// Secure metrics' token checks, and the role scrapers are bound to.
		"ClusterRole apirule-operator-metrics-auth-role",
		"ClusterRole apirule-operator-metrics-reader",
		// One replica: a budget of one would block every drain.
		"PodDisruptionBudget apirule-system/apirule-operator-controller-manager",
	} {
		if slices.Contains(keys(objs), gone) {
			t.Errorf("%s rendered although disabled", gone)
		}
	}
	// Without the webhook nothing may create Secrets in the operator's namespace or touch a
	// webhook configuration.
	for _, kind := range []string{"ClusterRole", "Role"} {
		for role, rules := range rulesByName(t, objs, kind) {
			for _, r := range rules {
				if (strings.HasPrefix(r, "/secrets:create") && strings.Contains(role, operatorNamespace+"/")) || strings.Contains(r, "webhookconfigurations") {
					t.Errorf("%s grants %s although the webhook is off", role, r)
				}
			}
		}
	}
	args := containerArgs(t, find(t, objs, "Deployment", "apirule-operator-controller-manager"))
	for _, want := range []string{"--enable-webhook=false", "--metrics-bind-address=0", "--leader-elect=false"} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args lack %s: %v", want, args)
		}
	}
}

// TestKustomizeAndHelmInstallTheSame compares the two installs object by object (the
// Namespace aside: Helm installs into the release namespace, it does not own it) and rule by
// rule.
func TestKustomizeAndHelmInstallTheSame(t *testing.T) {
	fromKustomize := kustomize(t, "config/default")
	fromHelm := helmTemplate(t)
	if k, h := keys(fromKustomize, "Namespace"), keys(fromHelm); !reflect.DeepEqual(k, h) {
		t.Errorf("the installs differ:\nkustomize only: %v\nhelm only: %v", minus(k, h), minus(h, k))
	}
	for _, kind := range []string{"ClusterRole", "Role"} {
		k, h := rulesByName(t, fromKustomize, kind), rulesByName(t, fromHelm, kind)
		if len(k) == 0 {
			t.Errorf("config/default installs no %s", kind)
		}
		if !reflect.DeepEqual(k, h) {
			t.Errorf("%s rules differ:\nkustomize: %v\nhelm:      %v", kind, k, h)
		}
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		k, h := bindings(t, fromKustomize, kind), bindings(t, fromHelm, kind)
		if !reflect.DeepEqual(k, h) {
			t.Errorf("%s differ:\nkustomize: %v\nhelm:      %v", kind, k, h)
		}
	}
	kd := find(t, fromKustomize, "Deployment", "apirule-operator-controller-manager")
	hd := find(t, fromHelm, "Deployment", "apirule-operator-controller-manager")
	kc, hc := managerContainer(t, kd), managerContainer(t, hd)
	if kc.Image != hc.Image {
		t.Errorf("default images differ: kustomize %s, helm %s", kc.Image, hc.Image)
	}
	if !reflect.DeepEqual(kc.Resources, hc.Resources) {
		t.Errorf("default resources differ: kustomize %v, helm %v", kc.Resources, hc.Resources)
	}
	if !reflect.DeepEqual(kc.SecurityContext, hc.SecurityContext) || !reflect.DeepEqual(kc.Ports, hc.Ports) {
		t.Errorf("manager containers differ in security context or ports:\nkustomize %+v %+v\nhelm %+v %+v", kc.SecurityContext, kc.Ports, hc.SecurityContext, hc.Ports)
	}
	for _, name := range []string{"apirule-operator-webhook-service", "apirule-operator-metrics-service"} {
		ks, _, _ := unstructured.NestedFieldCopy(find(t, fromKustomize, "Service", name).Object, "spec")
		hs, _, _ := unstructured.NestedFieldCopy(find(t, fromHelm, "Service", name).Object, "spec")
		if !reflect.DeepEqual(ks, hs) {
			t.Errorf("Service %s differs:\nkustomize %v\nhelm      %v", name, ks, hs)
		}
	}
	sameWebhooks(t, fromKustomize, fromHelm, "ValidatingWebhookConfiguration", "apirule-operator-validating-webhook-configuration")
	// The finalizer on create: the same policy, bound to every APIRule, in both.
	for _, kind := range []string{"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding"} {
		ks, _, _ := unstructured.NestedFieldCopy(find(t, fromKustomize, kind, "apirule-operator-finalizer").Object, "spec")
		hs, _, _ := unstructured.NestedFieldCopy(find(t, fromHelm, kind, "apirule-operator-finalizer").Object, "spec")
		if !reflect.DeepEqual(ks, hs) {
			t.Errorf("%s differs:\nkustomize %v\nhelm      %v", kind, ks, hs)
		}
	}
	binding := find(t, fromKustomize, "MutatingAdmissionPolicyBinding", "apirule-operator-finalizer")
	if spec, _, _ := unstructured.NestedMap(binding.Object, "spec"); !reflect.DeepEqual(spec, map[string]any{"policyName": "apirule-operator-finalizer"}) {
		t.Errorf("the finalizer policy's binding is %v, want it to name the policy and nothing else (every APIRule)", spec)
	}
	// The policy only ever acts on create, and never refuses one.
	policy := find(t, fromKustomize, "MutatingAdmissionPolicy", "apirule-operator-finalizer")
	if rules, _, _ := unstructured.NestedSlice(policy.Object, "spec", "matchConstraints", "resourceRules"); len(rules) != 1 || !reflect.DeepEqual(rules[0].(map[string]any)["operations"], []any{"CREATE"}) {
		t.Errorf("the finalizer policy matches %v, want CREATE of apirules only", rules)
	}
	if got, _, _ := unstructured.NestedString(policy.Object, "spec", "failurePolicy"); got != "Ignore" {
		t.Errorf("the finalizer policy's failurePolicy is %q, want Ignore", got)
	}
	for _, objs := range [][]*unstructured.Unstructured{fromKustomize, fromHelm} {
		if slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "MutatingWebhookConfiguration" }) {
			t.Error("an install for Kubernetes 1.36 or later has a MutatingWebhookConfiguration: the policy sets the finalizer there")
		}
		for role, rules := range rulesByName(t, objs, "ClusterRole") {
			if slices.ContainsFunc(rules, func(r string) bool { return strings.Contains(r, "mutatingwebhookconfigurations") }) {
				t.Errorf("%s grants rights on a MutatingWebhookConfiguration the install does not have: %v", role, rules)
			}
		}
	}
}

// TestHelmFinalizerAdmissionFollowsTheCluster: finalizerAdmission=auto picks the policy where
// the cluster serves MutatingAdmissionPolicy and the webhook where it does not; against a
// cluster (Helm knows its kinds) that is what discovery says, whatever the version; offline
// it is the version. A release upgraded with --reuse-values from before the value has none:
// it counts as auto.
func TestHelmFinalizerAdmissionFollowsTheCluster(t *testing.T) {
	policy := "MutatingAdmissionPolicy apirule-operator-finalizer"
	hook := "MutatingWebhookConfiguration apirule-operator-mutating-webhook-configuration"
	for name, c := range map[string]struct {
		flags []string
		set   []string
		want  string
	}{
		"offline, Kubernetes 1.36":              {[]string{"--kube-version", "1.36.0"}, nil, policy},
		"offline, Kubernetes 1.35":              {[]string{"--kube-version", "1.35.0"}, nil, hook},
		"a cluster that serves the policy":      {[]string{"--api-versions", "v1/Pod", "--api-versions", "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy"}, nil, policy},
		"a cluster of 1.37 that does not serve": {[]string{"--kube-version", "1.37.0", "--api-versions", "v1/Pod"}, nil, hook},
		"the value unset (--reuse-values)":      {nil, []string{"finalizerAdmission=null"}, policy},
		"webhook asked for on 1.37":             {nil, []string{"finalizerAdmission=webhook"}, hook},
		"policy asked for on 1.35":              {[]string{"--kube-version", "1.35.0"}, []string{"finalizerAdmission=policy"}, policy},
	} {
		t.Run(name, func(t *testing.T) {
			got := keys(helmTemplateWith(t, c.flags, c.set...))
			for _, k := range []string{policy, hook} {
				if slices.Contains(got, k) != (k == c.want) {
					t.Errorf("renders %s: %v, want only %s", k, slices.Contains(got, k), c.want)
				}
			}
		})
	}
}

// sameWebhooks compares the one webhook of a configuration the two installs carry, field by
// field.
func sameWebhooks(t *testing.T, fromKustomize, fromHelm []*unstructured.Unstructured, kind, name string) {
	t.Helper()
	kw, _, _ := unstructured.NestedSlice(find(t, fromKustomize, kind, name).Object, "webhooks")
	hw, _, _ := unstructured.NestedSlice(find(t, fromHelm, kind, name).Object, "webhooks")
	if len(kw) != 1 || len(hw) != 1 {
		t.Fatalf("%s: want one webhook in each install, got %d and %d", kind, len(kw), len(hw))
	}
	for _, field := range [][]string{{"name"}, {"clientConfig", "service"}, {"rules"}, {"failurePolicy"}, {"sideEffects"}} {
		k, _, _ := unstructured.NestedFieldCopy(kw[0].(map[string]any), field...)
		h, _, _ := unstructured.NestedFieldCopy(hw[0].(map[string]any), field...)
		if !reflect.DeepEqual(k, h) {
			t.Errorf("%s: webhook %s differs: kustomize %v, helm %v", kind, strings.Join(field, "."), k, h)
		}
	}
}

// TestFinalizerWebhookBeforeKubernetes136: without MutatingAdmissionPolicy, the kustomize
// component config/components/finalizer-webhook and the chart's finalizerAdmission (auto on
// an older cluster, or webhook) install the operator's finalizer webhook instead of the
// policy, the same in both, and tell the manager to keep its caBundle.
func TestFinalizerWebhookBeforeKubernetes136(t *testing.T) {
	overlay := t.TempDir()
	rel := func(dir string) string {
		path, err := filepath.Rel(overlay, filepath.Join(root, dir))
		if err != nil {
			t.Fatal(err)
		}
		return path
	}
	kustomization := "resources:\n  - " + rel("config/default") + "\ncomponents:\n  - " + rel("config/components/finalizer-webhook") + "\n"
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	fromKustomize := kustomize(t, overlay)
	ensureNamespace(t, operatorNamespace, find(t, fromKustomize, "Namespace", operatorNamespace).GetLabels())
	dryRunApply(t, fromKustomize)
	checkWiring(t, "config/components/finalizer-webhook", fromKustomize)
	for name, fromHelm := range map[string][]*unstructured.Unstructured{
		"helm on Kubernetes 1.35":         helmTemplateOn(t, "1.35.0"),
		"helm finalizerAdmission=webhook": helmTemplateOn(t, "1.37.0", "finalizerAdmission=webhook"),
	} {
		t.Run(name, func(t *testing.T) {
			if k, h := keys(fromKustomize, "Namespace"), keys(fromHelm); !reflect.DeepEqual(k, h) {
				t.Errorf("the installs differ:\nkustomize only: %v\nhelm only: %v", minus(k, h), minus(h, k))
			}
			sameWebhooks(t, fromKustomize, fromHelm, "MutatingWebhookConfiguration", "apirule-operator-mutating-webhook-configuration")
			if k, h := rulesByName(t, fromKustomize, "ClusterRole"), rulesByName(t, fromHelm, "ClusterRole"); !reflect.DeepEqual(k, h) {
				t.Errorf("ClusterRole rules differ:\nkustomize: %v\nhelm:      %v", k, h)
			}
			if rules := rulesByName(t, fromHelm, "ClusterRole")["ClusterRole apirule-operator-manager-role"]; !slices.Contains(rules, "admissionregistration.k8s.io/mutatingwebhookconfigurations:patch names=apirule-operator-mutating-webhook-configuration") {
				t.Errorf("the manager may not keep the finalizer webhook's caBundle: %v", rules)
			}
			for install, objs := range map[string][]*unstructured.Unstructured{"kustomize": fromKustomize, "helm": fromHelm} {
				args := containerArgs(t, find(t, objs, "Deployment", "apirule-operator-controller-manager"))
				if want := "--webhook-mutating-configuration-name=apirule-operator-mutating-webhook-configuration"; !slices.Contains(args, want) {
					t.Errorf("%s: manager args lack %s: %v", install, want, args)
				}
				if slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool {
					return strings.HasPrefix(o.GetKind(), "MutatingAdmissionPolicy")
				}) {
					t.Errorf("%s: a MutatingAdmissionPolicy next to the finalizer webhook", install)
				}
			}
		})
	}
	hooks, _, _ := unstructured.NestedSlice(find(t, fromKustomize, "MutatingWebhookConfiguration", "apirule-operator-mutating-webhook-configuration").Object, "webhooks")
	hook := hooks[0].(map[string]any)
	if ops, _, _ := unstructured.NestedSlice(hook, "rules"); len(ops) != 1 || !reflect.DeepEqual(ops[0].(map[string]any)["operations"], []any{"CREATE"}) {
		t.Errorf("the mutating webhook's rules are %v, want CREATE of apirules only", ops)
	}
	if hook["failurePolicy"] != "Ignore" {
		t.Errorf("the mutating webhook's failurePolicy is %v, want Ignore", hook["failurePolicy"])
	}
	if path, _, _ := unstructured.NestedString(hook, "clientConfig", "service", "path"); path != webhook.MutatePath {
		t.Errorf("the mutating webhook calls %s; the operator serves the finalizer at %s", path, webhook.MutatePath)
	}
	// On 1.36 and later, nothing names a mutating configuration.
	for install, objs := range map[string][]*unstructured.Unstructured{"config/default": kustomize(t, "config/default"), "helm": helmTemplate(t)} {
		for _, arg := range containerArgs(t, find(t, objs, "Deployment", "apirule-operator-controller-manager")) {
			if strings.HasPrefix(arg, "--webhook-mutating-configuration-name") {
				t.Errorf("%s: the manager keeps the caBundle of a MutatingWebhookConfiguration it does not install (%s)", install, arg)
			}
		}
	}
}

// TestHelmCopiesAreCurrent: the chart carries copies of the generated CRDs and RBAC rules
// ('make manifests' refreshes them); a stale copy would install something else than kustomize.
func TestHelmCopiesAreCurrent(t *testing.T) {
	bases, _ := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	copies, _ := filepath.Glob(filepath.Join(root, "charts", "apirule-operator", "crds", "*.yaml"))
	if len(bases) == 0 || len(bases) != len(copies) {
		t.Fatalf("config/crd/bases holds %d CRDs, the chart %d; run 'make manifests'", len(bases), len(copies))
	}
	pairs := map[string]string{
		filepath.Join("config", "rbac", "role.yaml"):                         filepath.Join("charts", "apirule-operator", "files", "manager-role.yaml"),
		filepath.Join("config", "finalizer-policy", "finalizer-policy.yaml"): filepath.Join("charts", "apirule-operator", "files", "finalizer-policy.yaml"),
	}
	for _, b := range bases {
		rel, _ := filepath.Rel(root, b)
		pairs[rel] = filepath.Join("charts", "apirule-operator", "crds", filepath.Base(b))
	}
	for src, dst := range pairs {
		a, err := os.ReadFile(filepath.Join(root, src))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, dst))
		if err != nil {
			t.Fatalf("%v; run 'make manifests'", err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s; run 'make manifests'", dst, src)
		}
	}
}

// TestCertManagerInstalls checks the cert-manager variants of both installs: the Certificate
// writes the Secret the manager mounts, names the webhook Service, and the CA injector is
// pointed at it; the manager leaves the certificate alone.
func TestCertManagerInstalls(t *testing.T) {
	for name, objs := range map[string][]*unstructured.Unstructured{
		"config/certmanager":            kustomize(t, "config/certmanager"),
		"helm webhook.certManager=true": helmTemplate(t, "webhook.certManager.enabled=true"),
	} {
		t.Run(name, func(t *testing.T) {
			var certManager, others []*unstructured.Unstructured
			for _, o := range objs {
				if strings.HasPrefix(o.GetAPIVersion(), "cert-manager.io/") {
					certManager = append(certManager, o)
				} else {
					others = append(others, o)
				}
			}
			// No cert-manager CRDs here: its own objects are checked by field, the rest by
			// the API server.
			ensureNamespace(t, operatorNamespace, nil)
			dryRunApply(t, others)

			cert := find(t, certManager, "Certificate", "apirule-operator-serving-cert")
			if cert.GetNamespace() != operatorNamespace {
				t.Errorf("Certificate in namespace %q", cert.GetNamespace())
			}
			secret, _, _ := unstructured.NestedString(cert.Object, "spec", "secretName")
			if secret != "apirule-operator-webhook-server-cert" {
				t.Errorf("Certificate writes Secret %q", secret)
			}
			dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
			if !slices.Contains(dns, "apirule-operator-webhook-service.apirule-system.svc") {
				t.Errorf("Certificate DNS names %v lack the webhook Service", dns)
			}
			issuer, _, _ := unstructured.NestedString(cert.Object, "spec", "issuerRef", "name")
			find(t, certManager, "Issuer", issuer)

			for kind, name := range map[string]string{
				"ValidatingWebhookConfiguration": "apirule-operator-validating-webhook-configuration",
			} {
				hook := find(t, others, kind, name)
				if got := hook.GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "apirule-system/apirule-operator-serving-cert" {
					t.Errorf("%s: inject-ca-from = %q", kind, got)
				}
			}
			deploy := find(t, others, "Deployment", "apirule-operator-controller-manager")
			if args := containerArgs(t, deploy); !slices.Contains(args, "--webhook-cert-management=external") {
				t.Errorf("manager args lack --webhook-cert-management=external: %v", args)
			}
			pod := podSpec(t, deploy)
			var mounted bool
			for _, v := range pod.Volumes {
				if v.Name == "webhook-certs" {
					mounted = v.Secret != nil && v.Secret.SecretName == secret && v.EmptyDir == nil
				}
			}
			if !mounted {
				t.Errorf("the webhook-certs volume is not the Secret %s: %+v", secret, pod.Volumes)
			}
		})
	}
}

func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}

// rulesByName returns each role's rules, normalised (sorted) so that the order of the
// generated and templated lists does not matter.
func rulesByName(t *testing.T, objs []*unstructured.Unstructured, kind string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		var role rbacv1.ClusterRole
		convert(t, o, &role)
		var rules []string
		for _, r := range role.Rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						rules = append(rules, g+"/"+res+":"+v+" names="+strings.Join(r.ResourceNames, ","))
					}
				}
			}
		}
		sort.Strings(rules)
		out[key(o)] = rules
	}
	return out
}

func bindings(t *testing.T, objs []*unstructured.Unstructured, kind string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range objs {
		if o.GetKind() != kind {
			continue
		}
		var b rbacv1.ClusterRoleBinding
		convert(t, o, &b)
		var subjects []string
		for _, s := range b.Subjects {
			subjects = append(subjects, s.Kind+" "+s.Namespace+"/"+s.Name)
		}
		sort.Strings(subjects)
		out[key(o)] = b.RoleRef.Kind + " " + b.RoleRef.Name + " -> " + strings.Join(subjects, ",")
	}
	return out
}

func convert(t *testing.T, o *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
		t.Fatalf("%s: %v", key(o), err)
	}
}

func podSpec(t *testing.T, deploy *unstructured.Unstructured) corev1.PodSpec {
	t.Helper()
	raw, _, _ := unstructured.NestedMap(deploy.Object, "spec", "template", "spec")
	var spec corev1.PodSpec
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &spec); err != nil {
		t.Fatal(err)
	}
	return spec
}

func managerContainer(t *testing.T, deploy *unstructured.Unstructured) corev1.Container {
	t.Helper()
	for _, c := range podSpec(t, deploy).Containers {
		if c.Name == "manager" {
			return c
		}
	}
	t.Fatalf("%s has no container named manager", key(deploy))
	return corev1.Container{}
}

func containerArgs(t *testing.T, deploy *unstructured.Unstructured) []string {
	t.Helper()
	return managerContainer(t, deploy).Args
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}
