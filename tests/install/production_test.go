package install_test

import (
	"maps"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The optional kustomize components (config/prometheus, config/network-policy) on top of
// config/default, as docs/install.md shows an overlay.
const optionalComponents = "tests/install/testdata/optional-components"

// podLabelsOf returns the labels of the Deployment's Pod template.
func podLabelsOf(t *testing.T, deploy *unstructured.Unstructured) map[string]string {
	t.Helper()
	labels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	return labels
}

// selects says whether every matchLabels pair is among the labels (an empty selector selects
// nothing here: none of the installs means everything).
func selects(matchLabels, labels map[string]string) bool {
	if len(matchLabels) == 0 {
		return false
	}
	for k, v := range matchLabels {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func withoutKinds(objs []*unstructured.Unstructured, kinds ...string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if !slices.Contains(kinds, o.GetKind()) {
			out = append(out, o)
		}
	}
	return out
}

// TestMetricsAreServedSecurely: both installs run the manager with HTTPS metrics behind the
// API server's authentication and authorization, grant it the reviews that needs, offer
// scrapers a role for GET /metrics, and expose the port as https.
func TestMetricsAreServedSecurely(t *testing.T) {
	for install, objs := range map[string][]*unstructured.Unstructured{
		"config/default": kustomize(t, "config/default"),
		"helm":           helmTemplate(t),
	} {
		t.Run(install, func(t *testing.T) {
			deploy := find(t, objs, "Deployment", "apirule-operator-controller-manager")
			args := containerArgs(t, deploy)
			for _, want := range []string{"--metrics-secure=true", "--metrics-bind-address=:8443"} {
				if !slices.Contains(args, want) {
					t.Errorf("manager args lack %s: %v", want, args)
				}
			}
			svc := find(t, objs, "Service", "apirule-operator-metrics-service")
			var spec corev1.ServiceSpec
			raw, _, _ := unstructured.NestedMap(svc.Object, "spec")
			convert(t, &unstructured.Unstructured{Object: raw}, &spec)
			if len(spec.Ports) != 1 || spec.Ports[0].Name != "https" || spec.Ports[0].Port != 8443 || spec.Ports[0].TargetPort.String() != "metrics" {
				t.Errorf("metrics Service ports %+v, want https 8443 -> metrics", spec.Ports)
			}
			if got := containerPort(managerContainer(t, deploy), "metrics"); got != 8443 {
				t.Errorf("metrics container port %d, want 8443", got)
			}

			var auth rbacv1.ClusterRole
			convert(t, find(t, objs, "ClusterRole", "apirule-operator-metrics-auth-role"), &auth)
			for _, want := range []string{"authentication.k8s.io/tokenreviews:create", "authorization.k8s.io/subjectaccessreviews:create"} {
				if !slices.ContainsFunc(auth.Rules, func(r rbacv1.PolicyRule) bool {
					return slices.Contains(r.APIGroups, strings.Split(want, "/")[0]) &&
						slices.Contains(r.Resources, strings.Split(strings.Split(want, "/")[1], ":")[0]) && slices.Contains(r.Verbs, "create")
				}) {
					t.Errorf("metrics-auth-role lacks %s: %+v", want, auth.Rules)
				}
			}
			var binding rbacv1.ClusterRoleBinding
			convert(t, find(t, objs, "ClusterRoleBinding", "apirule-operator-metrics-auth-rolebinding"), &binding)
			if binding.RoleRef.Name != "apirule-operator-metrics-auth-role" || len(binding.Subjects) != 1 ||
				binding.Subjects[0].Name != podSpec(t, deploy).ServiceAccountName || binding.Subjects[0].Namespace != operatorNamespace {
				t.Errorf("metrics-auth-rolebinding %+v does not bind the role to the manager's ServiceAccount", binding)
			}
			var reader rbacv1.ClusterRole
			convert(t, find(t, objs, "ClusterRole", "apirule-operator-metrics-reader"), &reader)
			if len(reader.Rules) != 1 || !slices.Equal(reader.Rules[0].NonResourceURLs, []string{"/metrics"}) || !slices.Equal(reader.Rules[0].Verbs, []string{"get"}) {
				t.Errorf("metrics-reader rules %+v, want get on /metrics only", reader.Rules)
			}
		})
	}

	plain := helmTemplate(t, "metrics.secure=false")
	if args := containerArgs(t, find(t, plain, "Deployment", "apirule-operator-controller-manager")); !slices.Contains(args, "--metrics-secure=false") {
		t.Errorf("metrics.secure=false: args %v", args)
	}
	for _, gone := range []string{"ClusterRole apirule-operator-metrics-auth-role", "ClusterRole apirule-operator-metrics-reader"} {
		if slices.Contains(keys(plain), gone) {
			t.Errorf("metrics.secure=false still renders %s", gone)
		}
	}
	ports, _, _ := unstructured.NestedSlice(find(t, plain, "Service", "apirule-operator-metrics-service").Object, "spec", "ports")
	if name := ports[0].(map[string]any)["name"]; name != "http" {
		t.Errorf("metrics.secure=false: Service port named %v, want http", name)
	}
}

// TestServiceMonitors: the ServiceMonitor of config/prometheus and of the chart's
// metrics.serviceMonitor.enabled scrapes the metrics Service's port with the scheme it
// serves. envtest has no ServiceMonitor CRD, so it is checked by field; the rest of the
// install is dry-run.
func TestServiceMonitors(t *testing.T) {
	if slices.ContainsFunc(kustomize(t, "config/default"), func(o *unstructured.Unstructured) bool { return o.GetKind() == "ServiceMonitor" }) {
		t.Error("config/default installs a ServiceMonitor; it belongs in the optional config/prometheus")
	}
	if slices.ContainsFunc(helmTemplate(t), func(o *unstructured.Unstructured) bool { return o.GetKind() == "ServiceMonitor" }) {
		t.Error("the chart installs a ServiceMonitor by default")
	}
	for install, objs := range map[string][]*unstructured.Unstructured{
		"config/prometheus": kustomize(t, optionalComponents),
		"helm":              helmTemplate(t, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prometheus"),
		"helm plain":        helmTemplate(t, "metrics.serviceMonitor.enabled=true", "metrics.secure=false"),
	} {
		t.Run(install, func(t *testing.T) {
			ensureNamespace(t, operatorNamespace, nil)
			dryRunApply(t, withoutKinds(objs, "ServiceMonitor", "Namespace"))
			monitor := find(t, objs, "ServiceMonitor", "apirule-operator-controller-manager-metrics-monitor")
			if monitor.GetAPIVersion() != "monitoring.coreos.com/v1" || monitor.GetNamespace() != operatorNamespace {
				t.Errorf("ServiceMonitor %s in %q", monitor.GetAPIVersion(), monitor.GetNamespace())
			}
			if install == "helm" && monitor.GetLabels()["release"] != "prometheus" {
				t.Errorf("metrics.serviceMonitor.labels did not reach the ServiceMonitor: %v", monitor.GetLabels())
			}
			svc := find(t, objs, "Service", "apirule-operator-metrics-service")
			selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
			if !selects(selector, svc.GetLabels()) {
				t.Errorf("the ServiceMonitor selects %v; the metrics Service carries %v", selector, svc.GetLabels())
			}
			if webhook := find(t, objs, "Service", "apirule-operator-webhook-service"); selects(selector, webhook.GetLabels()) {
				t.Errorf("the ServiceMonitor also selects the webhook Service")
			}
			endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
			ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			if len(endpoints) != 1 || len(ports) != 1 {
				t.Fatalf("%d endpoints, %d Service ports; want one each", len(endpoints), len(ports))
			}
			ep, port := endpoints[0].(map[string]any), ports[0].(map[string]any)
			if ep["port"] != port["name"] || ep["path"] != "/metrics" {
				t.Errorf("endpoint %v does not scrape /metrics on the Service's port %v", ep, port["name"])
			}
			args := containerArgs(t, find(t, objs, "Deployment", "apirule-operator-controller-manager"))
			wantScheme := "http"
			if slices.Contains(args, "--metrics-secure=true") {
				wantScheme = "https"
				if ep["bearerTokenFile"] == nil {
					t.Errorf("secure metrics but the endpoint presents no token: %v", ep)
				}
			}
			if ep["scheme"] != wantScheme {
				t.Errorf("endpoint scheme %v, the manager serves %s", ep["scheme"], wantScheme)
			}
		})
	}
	out, err := execCommand(t, tool(t, "APIRULE_HELM", "helm"), "template", "x", "charts/apirule-operator",
		"--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.enabled=false").CombinedOutput()
	if err == nil {
		t.Errorf("a ServiceMonitor without metrics rendered:\n%s", out)
	}
}

// TestNetworkPolicies: config/network-policy and networkPolicy.enabled select the manager's
// Pods and admit only the webhook port (from anywhere: the API server) and the metrics port
// (from labelled namespaces). The API server accepts them.
func TestNetworkPolicies(t *testing.T) {
	for _, objs := range [][]*unstructured.Unstructured{kustomize(t, "config/default"), helmTemplate(t)} {
		if slices.ContainsFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "NetworkPolicy" }) {
			t.Error("a default install renders a NetworkPolicy; it is optional")
		}
	}
	for install, objs := range map[string][]*unstructured.Unstructured{
		"config/network-policy": kustomize(t, optionalComponents),
		"helm":                  helmTemplate(t, "networkPolicy.enabled=true"),
		"helm custom selector": helmTemplate(t, "networkPolicy.enabled=true",
			"networkPolicy.metricsNamespaceSelector.matchLabels.metrics=null",
			"networkPolicy.metricsNamespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring"),
	} {
		t.Run(install, func(t *testing.T) {
			ensureNamespace(t, operatorNamespace, nil)
			dryRunApply(t, withoutKinds(objs, "ServiceMonitor", "Namespace"))
			deploy := find(t, objs, "Deployment", "apirule-operator-controller-manager")
			container := managerContainer(t, deploy)
			wantFrom := map[string]string{"metrics": "enabled"}
			if install == "helm custom selector" {
				wantFrom = map[string]string{"kubernetes.io/metadata.name": "monitoring"}
			}
			for name, wantPort := range map[string]string{
				"apirule-operator-allow-webhook-traffic": "webhook-server",
				"apirule-operator-allow-metrics-traffic": "metrics",
			} {
				var np networkingv1.NetworkPolicy
				convert(t, find(t, objs, "NetworkPolicy", name), &np)
				if np.Namespace != operatorNamespace || !selects(np.Spec.PodSelector.MatchLabels, podLabelsOf(t, deploy)) {
					t.Errorf("%s in %q selects %v, not the manager's Pods %v", name, np.Namespace, np.Spec.PodSelector.MatchLabels, podLabelsOf(t, deploy))
				}
				if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Ingress) != 1 {
					t.Fatalf("%s: policy types %v, %d ingress rules", name, np.Spec.PolicyTypes, len(np.Spec.Ingress))
				}
				rule := np.Spec.Ingress[0]
				if len(rule.Ports) != 1 || rule.Ports[0].Port.String() != wantPort || containerPort(container, wantPort) == 0 {
					t.Errorf("%s admits ports %+v, want the manager's %s port only", name, rule.Ports, wantPort)
				}
				switch wantPort {
				case "webhook-server":
					if len(rule.From) != 0 {
						t.Errorf("%s restricts the sources %+v: the API server would be cut off", name, rule.From)
					}
				case "metrics":
					if len(rule.From) != 1 || rule.From[0].NamespaceSelector == nil || !maps.Equal(rule.From[0].NamespaceSelector.MatchLabels, wantFrom) {
						t.Errorf("%s admits %+v, want namespaces labelled %v", name, rule.From, wantFrom)
					}
				}
			}
		})
	}
}

// TestReplicasAreHighlyAvailable: both installs run two replicas under leader election,
// spread over nodes when possible, and keep one through drains.
func TestReplicasAreHighlyAvailable(t *testing.T) {
	for install, objs := range map[string][]*unstructured.Unstructured{
		"config/default": kustomize(t, "config/default"),
		"helm":           helmTemplate(t),
	} {
		t.Run(install, func(t *testing.T) {
			deploy := find(t, objs, "Deployment", "apirule-operator-controller-manager")
			if got, _, _ := unstructured.NestedInt64(deploy.Object, "spec", "replicas"); got != 2 {
				t.Errorf("replicas = %d, want 2", got)
			}
			if !slices.Contains(containerArgs(t, deploy), "--leader-elect=true") {
				t.Error("two replicas without --leader-elect=true")
			}
			var pdb policyv1.PodDisruptionBudget
			convert(t, find(t, objs, "PodDisruptionBudget", "apirule-operator-controller-manager"), &pdb)
			if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || pdb.Spec.MaxUnavailable != nil {
				t.Errorf("PodDisruptionBudget minAvailable %v maxUnavailable %v, want minAvailable 1", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
			}
			if pdb.Spec.Selector == nil || !selects(pdb.Spec.Selector.MatchLabels, podLabelsOf(t, deploy)) {
				t.Errorf("the budget selects %v, not the manager's Pods", pdb.Spec.Selector)
			}
			spread := podSpec(t, deploy).TopologySpreadConstraints
			if len(spread) != 1 || spread[0].TopologyKey != "kubernetes.io/hostname" || spread[0].WhenUnsatisfiable != corev1.ScheduleAnyway ||
				spread[0].MaxSkew != 1 || spread[0].LabelSelector == nil || !selects(spread[0].LabelSelector.MatchLabels, podLabelsOf(t, deploy)) {
				t.Errorf("topology spread %+v, want maxSkew 1 by hostname, ScheduleAnyway, over the manager's Pods", spread)
			}
		})
	}
	single := helmTemplate(t, "replicaCount=1")
	if slices.Contains(keys(single), "PodDisruptionBudget apirule-system/apirule-operator-controller-manager") {
		t.Error("replicaCount=1 renders a PodDisruptionBudget, which would block every drain")
	}
	if slices.Contains(keys(helmTemplate(t, "podDisruptionBudget.enabled=false")), "PodDisruptionBudget apirule-system/apirule-operator-controller-manager") {
		t.Error("podDisruptionBudget.enabled=false still renders one")
	}
	if spread := podSpec(t, find(t, helmTemplate(t, "topologySpreadConstraints=null"), "Deployment", "apirule-operator-controller-manager")).TopologySpreadConstraints; len(spread) != 0 {
		t.Errorf("topologySpreadConstraints=null still spreads: %+v", spread)
	}
	zones := helmTemplate(t, "topologySpreadConstraints[0].maxSkew=2", "topologySpreadConstraints[0].topologyKey=topology.kubernetes.io/zone",
		"topologySpreadConstraints[0].whenUnsatisfiable=DoNotSchedule")
	spread := podSpec(t, find(t, zones, "Deployment", "apirule-operator-controller-manager")).TopologySpreadConstraints
	if len(spread) != 1 || spread[0].TopologyKey != "topology.kubernetes.io/zone" || spread[0].MaxSkew != 2 || spread[0].LabelSelector == nil {
		t.Errorf("custom topology spread %+v", spread)
	}
}

// TestHelmPodValues: the values for the manager's Pod reach it.
func TestHelmPodValues(t *testing.T) {
	ensureNamespace(t, operatorNamespace, nil)
	objs := helmTemplate(t,
		"podAnnotations.example\\.com/team=edge", "podLabels.team=edge",
		"nodeSelector.kubernetes\\.io/os=linux",
		"tolerations[0].key=dedicated", "tolerations[0].operator=Equal", "tolerations[0].value=operators", "tolerations[0].effect=NoSchedule",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].key=kubernetes.io/arch",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].operator=In",
		"affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values[0]=amd64",
		"extraArgs[0]=--zap-encoder=console", "resources.requests.cpu=250m", "priorityClassName=system-cluster-critical",
	)
	dryRunApply(t, objs)
	deploy := find(t, objs, "Deployment", "apirule-operator-controller-manager")
	annotations, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "annotations")
	if annotations["example.com/team"] != "edge" || annotations["sidecar.istio.io/inject"] != "false" {
		t.Errorf("Pod annotations %v", annotations)
	}
	if labels := podLabelsOf(t, deploy); labels["team"] != "edge" || labels["control-plane"] != "controller-manager" {
		t.Errorf("Pod labels %v", labels)
	}
	spec := podSpec(t, deploy)
	if spec.NodeSelector["kubernetes.io/os"] != "linux" {
		t.Errorf("nodeSelector %v", spec.NodeSelector)
	}
	if len(spec.Tolerations) != 1 || spec.Tolerations[0].Key != "dedicated" || spec.Tolerations[0].Effect != corev1.TaintEffectNoSchedule {
		t.Errorf("tolerations %+v", spec.Tolerations)
	}
	if spec.Affinity == nil || spec.Affinity.NodeAffinity == nil ||
		spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Values[0] != "amd64" {
		t.Errorf("affinity %+v", spec.Affinity)
	}
	if spec.PriorityClassName != "system-cluster-critical" {
		t.Errorf("priorityClassName %q", spec.PriorityClassName)
	}
	container := managerContainer(t, deploy)
	if !slices.Contains(container.Args, "--zap-encoder=console") {
		t.Errorf("extraArgs missing from %v", container.Args)
	}
	if got := container.Resources.Requests.Cpu().String(); got != "250m" {
		t.Errorf("CPU request %s, want 250m", got)
	}
}

// TestHelmNamesAndServiceAccount: fullnameOverride renames every object and passes the
// manager the webhook names that follow; the RBAC rules limited to named objects follow too.
// serviceAccount.* choose the account the Pods run as and the roles are bound to.
func TestHelmNamesAndServiceAccount(t *testing.T) {
	ensureNamespace(t, operatorNamespace, nil)
	objs := helmTemplate(t, "fullnameOverride=edge-api", "nameOverride=edge", "serviceAccount.name=edge-manager",
		"serviceAccount.annotations.iam\\.example\\.com/role=edge", "networkPolicy.enabled=true", "metrics.serviceMonitor.enabled=true")
	dryRunApply(t, withoutKinds(objs, "ServiceMonitor"))
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetName(), "edge-api-") && o.GetName() != "edge-manager" {
			t.Errorf("%s does not carry the fullnameOverride", key(o))
		}
	}
	deploy := find(t, objs, "Deployment", "edge-api-controller-manager")
	if labels := podLabelsOf(t, deploy); labels["app.kubernetes.io/name"] != "edge" {
		t.Errorf("nameOverride did not reach the Pod labels: %v", labels)
	}
	args := containerArgs(t, deploy)
	for _, want := range []string{"--webhook-service-name=edge-api-webhook-service",
		"--webhook-configuration-name=edge-api-validating-webhook-configuration", "--webhook-secret-name=edge-api-webhook-server-cert"} {
		if !slices.Contains(args, want) {
			t.Errorf("manager args lack %s: %v", want, args)
		}
	}
	for _, kind := range []string{"ValidatingWebhookConfiguration"} {
		name := "edge-api-" + strings.ToLower(strings.TrimSuffix(kind, "WebhookConfiguration")) + "-webhook-configuration"
		hook := find(t, objs, kind, name)
		webhooks, _, _ := unstructured.NestedSlice(hook.Object, "webhooks")
		if svc, _, _ := unstructured.NestedString(webhooks[0].(map[string]any), "clientConfig", "service", "name"); svc != "edge-api-webhook-service" {
			t.Errorf("%s: the webhook calls Service %s", kind, svc)
		}
	}
	if policy, _, _ := unstructured.NestedString(find(t, objs, "MutatingAdmissionPolicyBinding", "edge-api-finalizer").Object, "spec", "policyName"); policy != "edge-api-finalizer" {
		t.Errorf("the finalizer policy's binding names policy %q, want edge-api-finalizer", policy)
	}
	// Before Kubernetes 1.36 the finalizer webhook's configuration follows the name too.
	older := helmTemplateOn(t, "1.35.0", "fullnameOverride=edge-api")
	if want := "--webhook-mutating-configuration-name=edge-api-mutating-webhook-configuration"; !slices.Contains(containerArgs(t, find(t, older, "Deployment", "edge-api-controller-manager")), want) {
		t.Errorf("on Kubernetes 1.35 the manager args lack %s", want)
	}
	if rules := rulesByName(t, older, "ClusterRole")["ClusterRole edge-api-manager-role"]; !slices.Contains(rules, "admissionregistration.k8s.io/mutatingwebhookconfigurations:update names=edge-api-mutating-webhook-configuration") {
		t.Errorf("on Kubernetes 1.35 the manager may not keep the finalizer webhook's caBundle: %v", rules)
	}
	hooks, _, _ := unstructured.NestedSlice(find(t, older, "MutatingWebhookConfiguration", "edge-api-mutating-webhook-configuration").Object, "webhooks")
	if svc, _, _ := unstructured.NestedString(hooks[0].(map[string]any), "clientConfig", "service", "name"); svc != "edge-api-webhook-service" {
		t.Errorf("the finalizer webhook calls Service %s", svc)
	}
	for _, name := range []string{"edge-api-webhook-service", "edge-api-metrics-service"} {
		selector, _, _ := unstructured.NestedStringMap(find(t, objs, "Service", name).Object, "spec", "selector")
		if !selects(selector, podLabelsOf(t, deploy)) {
			t.Errorf("Service %s selects %v, not the Pods %v", name, selector, podLabelsOf(t, deploy))
		}
	}
	var names []string
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, rules := range rulesByName(t, objs, kind) {
			for _, r := range rules {
				if _, n, ok := strings.Cut(r, "names="); ok && n != "" {
					names = append(names, n)
				}
			}
		}
	}
	slices.Sort(names)
	if want := []string{"edge-api-validating-webhook-configuration", "edge-api-validating-webhook-configuration", "edge-api-validating-webhook-configuration",
		"edge-api-webhook-server-cert", "edge-api-webhook-server-cert"}; !slices.Equal(names, want) {
		t.Errorf("rules limited to names %v, want %v", names, want)
	}
	sa := find(t, objs, "ServiceAccount", "edge-manager")
	if sa.GetAnnotations()["iam.example.com/role"] != "edge" {
		t.Errorf("ServiceAccount annotations %v", sa.GetAnnotations())
	}
	if got := podSpec(t, deploy).ServiceAccountName; got != "edge-manager" {
		t.Errorf("the Pods run as %s", got)
	}
	for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
		for b, binding := range bindings(t, objs, kind) {
			if !strings.HasSuffix(binding, "ServiceAccount apirule-system/edge-manager") {
				t.Errorf("%s binds %s", b, binding)
			}
		}
	}

	existing := helmTemplate(t, "serviceAccount.create=false", "serviceAccount.name=platform-operator")
	if slices.ContainsFunc(existing, func(o *unstructured.Unstructured) bool { return o.GetKind() == "ServiceAccount" }) {
		t.Error("serviceAccount.create=false still renders a ServiceAccount")
	}
	if got := podSpec(t, find(t, existing, "Deployment", "apirule-operator-controller-manager")).ServiceAccountName; got != "platform-operator" {
		t.Errorf("serviceAccount.create=false: the Pods run as %s", got)
	}
	for b, binding := range bindings(t, existing, "RoleBinding") {
		if !strings.HasSuffix(binding, "ServiceAccount apirule-system/platform-operator") {
			t.Errorf("%s binds %s", b, binding)
		}
	}
}

// TestHelmPrincipalFollowsTheGateway: without ingressGateway.principal the chart derives it
// from the ingress gateway's namespace and service account, and writes it into the args.
func TestHelmPrincipalFollowsTheGateway(t *testing.T) {
	for want, set := range map[string][]string{
		"cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account": nil,
		"cluster.local/ns/gateways/sa/istio-ingressgateway-service-account":     {"ingressGateway.namespace=gateways"},
		"cluster.local/ns/gateways/sa/edge":                                     {"ingressGateway.namespace=gateways", "ingressGateway.serviceAccount=edge"},
		"example.org/ns/gateways/sa/edge":                                       {"ingressGateway.namespace=gateways", "ingressGateway.principal=example.org/ns/gateways/sa/edge"},
	} {
		args := containerArgs(t, find(t, helmTemplate(t, set...), "Deployment", "apirule-operator-controller-manager"))
		if !slices.Contains(args, "--ingress-gateway-principal="+want) {
			t.Errorf("--set %v: args %v, want --ingress-gateway-principal=%s", set, args, want)
		}
	}
}

// TestConfigMapsAreReadOnlyInTheIstioNamespace: no install grants ConfigMaps cluster-wide; the
// mesh config is read through a Role in the Istio namespace, which the chart puts in
// istio.namespace even when the ingress gateway runs elsewhere.
func TestConfigMapsAreReadOnlyInTheIstioNamespace(t *testing.T) {
	configMapRoles := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, kind := range []string{"ClusterRole", "Role"} {
			for role, rules := range rulesByName(t, objs, kind) {
				if slices.ContainsFunc(rules, func(r string) bool { return strings.HasPrefix(r, "/configmaps:") }) {
					out = append(out, role)
				}
			}
		}
		slices.Sort(out)
		return out
	}
	want := []string{"Role istio-system/apirule-operator-manager-role"}
	for install, objs := range map[string][]*unstructured.Unstructured{"config/default": kustomize(t, "config/default"), "helm": helmTemplate(t)} {
		if got := configMapRoles(objs); !slices.Equal(got, want) {
			t.Errorf("%s: ConfigMaps are granted by %v, want %v", install, got, want)
		}
	}
	ensureNamespace(t, operatorNamespace, nil)
	split := helmTemplate(t, "istio.namespace=mesh", "ingressGateway.namespace=gateways")
	dryRunApply(t, split)
	if got := configMapRoles(split); !slices.Equal(got, []string{"Role mesh/apirule-operator-manager-role"}) {
		t.Errorf("istio.namespace=mesh: ConfigMaps are granted by %v", got)
	}
	mesh := rulesByName(t, split, "Role")["Role mesh/apirule-operator-manager-role"]
	if !slices.Equal(mesh, []string{"/configmaps:get names=", "/configmaps:list names=", "/configmaps:watch names="}) {
		t.Errorf("the Role in the Istio namespace grants %v, want reading ConfigMaps only", mesh)
	}
	gateways := rulesByName(t, split, "Role")["Role gateways/apirule-operator-manager-role"]
	if !slices.Contains(gateways, "networking.istio.io/gateways:create names=") || !slices.Contains(gateways, "/secrets:create names=") {
		t.Errorf("the Role in the ingress gateway namespace grants %v, want the Gateway and CA copy writes", gateways)
	}
	if b := bindings(t, split, "RoleBinding")["RoleBinding mesh/apirule-operator-manager-rolebinding"]; b == "" {
		t.Error("no RoleBinding in the Istio namespace mesh")
	}
}
