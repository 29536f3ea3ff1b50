package install_test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestHelmChartLints runs helm lint in strict mode: warnings fail too.
func TestHelmChartLints(t *testing.T) {
	out, err := execCommand(t, tool(t, "APIRULE_HELM", "helm"), "lint", "--strict", "charts/apirule-operator").CombinedOutput()
	if err != nil {
		t.Fatalf("helm lint --strict: %v\n%s", err, out)
	}
}

// TestHelmRefusesBadValues: values.schema.json turns typos and impossible values into an
// error naming the value, before anything reaches the cluster.
func TestHelmRefusesBadValues(t *testing.T) {
	helm := tool(t, "APIRULE_HELM", "helm")
	for set, want := range map[string]string{
		"replica=2":                                     "additional properties 'replica' not allowed",
		"webhook.failurePolicy=Sometimes":               "/webhook/failurePolicy",
		"defaultGateway.name=public-gateway":            "/defaultGateway/name",
		"metrics.port=70000":                            "/metrics/port",
		"ingressGateway.principal=istio-ingressgateway": "/ingressGateway/principal",
		"ingressGateway.serviceAccount=":                "/ingressGateway/serviceAccount",
		"fullnameOverride=Operator":                     "/fullnameOverride",
		"metrics.serviceMonitor.interval=often":         "/metrics/serviceMonitor/interval",
		"podDisruptionBudget.minAvailable=1":            "additional properties 'minAvailable' not allowed",
		"webhook.certManager.issuerRef.kind=Other":      "/webhook/certManager/issuerRef/kind",
		"extraArgs[0]=zap-devel":                        "/extraArgs/0",
	} {
		out, err := execCommand(t, helm, "template", "x", "charts/apirule-operator", "--set", set).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("--set %s: want an error mentioning %q, got err=%v:\n%s", set, want, err, out)
		}
	}
}

// TestDockerfileCopiesEveryPackage: the image build copies only some directories (and
// .dockerignore keeps the rest out of the context); each package the manager is built from
// must be in one of them, or the image build breaks where make test does not.
func TestDockerfileCopiesEveryPackage(t *testing.T) {
	f, err := os.Open(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	copyLine := regexp.MustCompile(`^COPY\s+([a-z0-9_-]+)/\s`)
	copied := map[string]bool{}
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if m := copyLine.FindStringSubmatch(scanner.Text()); m != nil {
			copied[m[1]] = true
		}
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := execCommand(t, "go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/manager").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var packages int
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		packages++
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !copied[top] {
			t.Errorf("the manager needs %s, but the Dockerfile does not copy %s/", rel, top)
		}
		if !strings.Contains(string(ignore), "!"+top+"/") {
			t.Errorf("the manager needs %s, but .dockerignore does not let %s/ into the build context", rel, top)
		}
	}
	if packages < 5 {
		t.Fatalf("go list found only %d packages of the module", packages)
	}
}

// TestHelmRefusesBadCombinations: what the schema cannot express the templates refuse, with
// a message that names the values and the fix.
func TestHelmRefusesBadCombinations(t *testing.T) {
	helm := tool(t, "APIRULE_HELM", "helm")
	for _, c := range []struct {
		set  []string
		want []string
	}{
		{[]string{"leaderElection.enabled=false"}, []string{"replicaCount is 2", "leaderElection.enabled", "set leaderElection.enabled=true or replicaCount=1"}},
		{[]string{"replicaCount=3", "leaderElection.enabled=false"}, []string{"replicaCount is 3", "leaderElection.enabled"}},
		{[]string{"replicas=2"}, []string{"replicaCount"}},
		{[]string{"ingressGateway.namespace=gateways", "ingressGateway.principal=cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"},
			[]string{"ingressGateway.principal", `"istio-system"`, "ingressGateway.namespace", `"gateways"`, "leave ingressGateway.principal empty"}},
		{[]string{"ingressGateway.principal=cluster.local/ns/gateways/sa/edge"}, []string{"ingressGateway.namespace", `"istio-system"`}},
		{[]string{"serviceAccount.create=false"}, []string{"serviceAccount.name"}},
		{[]string{"metrics.enabled=false", "metrics.serviceMonitor.enabled=true"}, []string{"metrics.serviceMonitor.enabled", "metrics.enabled=true"}},
	} {
		args := []string{"template", "x", "charts/apirule-operator"}
		for _, s := range c.set {
			args = append(args, "--set", s)
		}
		out, err := execCommand(t, helm, args...).CombinedOutput()
		if err == nil {
			t.Errorf("--set %v: rendered, want a refusal", c.set)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(string(out), w) {
				t.Errorf("--set %v: the refusal does not mention %q:\n%s", c.set, w, out)
			}
		}
	}
	// The single-replica variant of the first refusal is fine.
	if out, err := execCommand(t, helm, "template", "x", "charts/apirule-operator", "--set", "leaderElection.enabled=false", "--set", "replicaCount=1").CombinedOutput(); err != nil {
		t.Errorf("replicaCount=1 without leader election: %v\n%s", err, out)
	}
}
