package install_test

import (
	"context"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func execCommand(t *testing.T, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	return cmd
}

// checkWiring follows the references between the rendered objects: the webhook
// configuration calls the webhook Service, which selects the manager's Pods on the port the
// manager serves the webhook on; the Pods run as the ServiceAccount the roles are bound to.
func checkWiring(t *testing.T, install string, objs []*unstructured.Unstructured) {
	t.Helper()
	deploy := find(t, objs, "Deployment", "apirule-operator-controller-manager")
	pod := podSpec(t, deploy)
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	container := managerContainer(t, deploy)

	hook := find(t, objs, "ValidatingWebhookConfiguration", "apirule-operator-validating-webhook-configuration")
	webhooks, _, _ := unstructured.NestedSlice(hook.Object, "webhooks")
	for _, w := range webhooks {
		svc, _, _ := unstructured.NestedStringMap(w.(map[string]any), "clientConfig", "service")
		if svc["name"] != "apirule-operator-webhook-service" || svc["namespace"] != operatorNamespace {
			t.Errorf("%s: the webhook calls Service %s/%s, want %s/apirule-operator-webhook-service", install, svc["namespace"], svc["name"], operatorNamespace)
		}
	}
	for _, name := range []string{"apirule-operator-webhook-service", "apirule-operator-metrics-service"} {
		svc := find(t, objs, "Service", name)
		selector, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		if len(selector) == 0 {
			t.Errorf("%s: Service %s selects nothing", install, name)
		}
		for k, v := range selector {
			if podLabels[k] != v {
				t.Errorf("%s: Service %s selects %s=%s, which the manager's Pods do not carry (%v)", install, name, k, v, podLabels)
			}
		}
		ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
		for _, p := range ports {
			target, _, _ := unstructured.NestedString(p.(map[string]any), "targetPort")
			if containerPort(container, target) == 0 {
				t.Errorf("%s: Service %s targets port %q, which the manager does not declare", install, name, target)
			}
		}
	}
	if containerPort(container, "webhook-server") != 9443 {
		t.Errorf("%s: the webhook-server port is %d, want 9443 (the manager's --webhook-port default)", install, containerPort(container, "webhook-server"))
	}

	sa := find(t, objs, "ServiceAccount", pod.ServiceAccountName)
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for _, o := range objs {
			if o.GetKind() != kind {
				continue
			}
			subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			var bound bool
			for _, s := range subjects {
				m := s.(map[string]any)
				bound = bound || (m["kind"] == "ServiceAccount" && m["name"] == sa.GetName() && m["namespace"] == sa.GetNamespace())
			}
			if !bound {
				t.Errorf("%s: %s does not bind the manager's ServiceAccount %s/%s: %v", install, key(o), sa.GetNamespace(), sa.GetName(), subjects)
			}
		}
	}

	var env []string
	for _, e := range container.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			env = append(env, e.Name+"="+e.ValueFrom.FieldRef.FieldPath)
		case e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil:
			env = append(env, e.Name+"="+e.ValueFrom.ResourceFieldRef.Resource)
		}
	}
	if !slices.Contains(env, "POD_NAMESPACE=metadata.namespace") {
		t.Errorf("%s: POD_NAMESPACE does not come from the downward API: %v", install, container.Env)
	}
	if !slices.Contains(env, "GOMEMLIMIT=limits.memory") {
		t.Errorf("%s: GOMEMLIMIT does not come from the container's memory limit: %v", install, container.Env)
	}
	if container.LivenessProbe == nil || container.LivenessProbe.HTTPGet == nil || container.LivenessProbe.HTTPGet.Path != "/healthz" ||
		container.ReadinessProbe == nil || container.ReadinessProbe.HTTPGet == nil || container.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: want liveness /healthz and readiness /readyz probes, got %+v and %+v", install, container.LivenessProbe, container.ReadinessProbe)
	}
	for _, probe := range []*corev1.Probe{container.LivenessProbe, container.ReadinessProbe} {
		if probe != nil && probe.HTTPGet != nil && containerPort(container, probe.HTTPGet.Port.String()) != 8081 {
			t.Errorf("%s: a probe uses port %s, want the health port 8081", install, probe.HTTPGet.Port.String())
		}
	}
	args := container.Args
	for _, want := range []string{"--leader-elect=true", "--health-probe-bind-address=:8081", "--metrics-bind-address=:8443", "--metrics-secure=true"} {
		if !slices.Contains(args, want) {
			t.Errorf("%s: manager args lack %s: %v", install, want, args)
		}
	}
	if container.Resources.Requests.Cpu().IsZero() || container.Resources.Requests.Memory().IsZero() || container.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: the manager needs CPU and memory requests and a memory limit: %+v", install, container.Resources)
	}
	var certDir bool
	for _, m := range container.VolumeMounts {
		certDir = certDir || m.MountPath == "/tmp/k8s-webhook-server/serving-certs"
	}
	if !certDir {
		t.Errorf("%s: nothing is mounted at the webhook certificate directory; the root filesystem is read-only", install)
	}
}

// TestManagerPodIsRestricted creates the manager's Pod, as each install's Deployment would,
// in a namespace that enforces the restricted Pod Security Standard, with server-side
// dry-run: the API server's PodSecurity admission decides. A privileged variant of the same
// Pod must be refused, which shows the namespace does enforce.
func TestManagerPodIsRestricted(t *testing.T) {
	const namespace = "restricted"
	ensureNamespace(t, namespace, map[string]string{"pod-security.kubernetes.io/enforce": "restricted"})
	ctx := context.Background()
	for install, objs := range map[string][]*unstructured.Unstructured{
		"config/default": kustomize(t, "config/default"),
		"helm":           helmTemplate(t),
	} {
		spec := podSpec(t, find(t, objs, "Deployment", "apirule-operator-controller-manager"))
		// The ServiceAccount admission plugin wants the account to exist.
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: spec.ServiceAccountName, Namespace: namespace}}
		if err := k8s.Create(ctx, sa); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "manager", Namespace: namespace}, Spec: spec}
		if err := k8s.Create(ctx, pod, client.DryRunAll); err != nil {
			t.Errorf("%s: the manager Pod violates the restricted Pod Security Standard: %v", install, err)
		}

		privileged := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "manager", Namespace: namespace}, Spec: *spec.DeepCopy()}
		privileged.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = ptr.To(true)
		err := k8s.Create(ctx, privileged, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), "PodSecurity") {
			t.Errorf("%s: a privilege-escalating Pod was not refused by PodSecurity admission (err=%v): the check above proves nothing", install, err)
		}
	}
}

// TestManagerKnowsEveryFlag runs the manager binary with -help and checks that the default
// installs pass it only flags it defines: an unknown flag stops the manager at start-up.
func TestManagerKnowsEveryFlag(t *testing.T) {
	known := managerFlags(t, builtManager(t))
	if !slices.Contains(known, "leader-elect") {
		t.Fatalf("parsed no flags from the manager's -help: %v", known)
	}
	for install, objs := range map[string][]*unstructured.Unstructured{
		"config/default": kustomize(t, "config/default"),
		"helm":           helmTemplate(t),
	} {
		for _, arg := range containerArgs(t, find(t, objs, "Deployment", "apirule-operator-controller-manager")) {
			name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
			if !slices.Contains(known, name) {
				t.Errorf("%s passes %s, which the manager does not define", install, arg)
			}
		}
	}
}

var flagLine = regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`)

// managerFlags lists the flags the manager defines, from its -help output.
func managerFlags(t *testing.T, bin string) []string {
	t.Helper()
	// -help exits 0 and prints the flags to stderr.
	out, err := execCommand(t, bin, "-help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s -help: %v\n%s", bin, err, out)
	}
	var names []string
	for _, m := range flagLine.FindAllStringSubmatch(string(out), -1) {
		names = append(names, m[1])
	}
	return names
}
