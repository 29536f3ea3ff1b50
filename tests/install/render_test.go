package install_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// Both installs put the operator in this namespace.
const operatorNamespace = "apirule-system"

var (
	env  *testenv.Environment
	k8s  client.Client
	root string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if root, err = testenv.RepoRoot(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
		}
	}()
	if k8s, err = env.Client(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if managerBin != "" {
		os.RemoveAll(filepath.Dir(managerBin))
	}
	return code
}

// tool returns the pinned binary the Makefile exports in env (APIRULE_KUSTOMIZE,
// APIRULE_HELM), or the single version-stamped one in bin/ when the test runs outside make.
func tool(t *testing.T, env, name string) string {
	t.Helper()
	if path := os.Getenv(env); path != "" {
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("%s=%s: %v; run 'make tools'", env, path, err)
		}
		return path
	}
	matches, _ := filepath.Glob(filepath.Join(root, "bin", name+"-v*"))
	if len(matches) != 1 {
		t.Fatalf("%s is not set and bin/ holds %d %s binaries; run the tests with 'make test', which builds the pinned %s", env, len(matches), name, name)
	}
	return matches[0]
}

func execute(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// kustomize renders a kustomization directory of the repository.
func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, execute(t, tool(t, "APIRULE_KUSTOMIZE", "kustomize"), "build", dir))
}

// helmTemplate renders the chart, CRDs included, into the operator namespace with the given
// --set values.
func helmTemplate(t *testing.T, set ...string) []*unstructured.Unstructured {
	t.Helper()
	return helmTemplateOn(t, "", set...)
}

// helmTemplateOn is helmTemplate for a cluster of the given Kubernetes version (Helm's
// default when empty).
func helmTemplateOn(t *testing.T, kubeVersion string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	var flags []string
	if kubeVersion != "" {
		flags = []string{"--kube-version", kubeVersion}
	}
	return helmTemplateWith(t, flags, set...)
}

// helmTemplateWith is helmTemplate with more flags of helm template (--api-versions, ...).
func helmTemplateWith(t *testing.T, flags []string, set ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", "apirule-operator", "charts/apirule-operator", "--namespace", operatorNamespace, "--include-crds"}, flags...)
	for _, s := range set {
		args = append(args, "--set", s)
	}
	return decode(t, execute(t, tool(t, "APIRULE_HELM", "helm"), args...))
}

func decode(t *testing.T, raw []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := reader.Read()
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("reading rendered manifests: %v", err)
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			t.Fatalf("decoding rendered manifests: %v\n%s", err, doc)
		}
		if string(js) == "null" {
			continue
		}
		// Unstructured's own decoder keeps integers as int64, as the API machinery expects.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(js); err != nil {
			t.Fatalf("decoding rendered manifests: %v\n%s", err, doc)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		t.Fatal("nothing rendered")
	}
	return objs
}

// key identifies an object across the two installs.
func key(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), ns, o.GetName())
	}
	return o.GetKind() + " " + o.GetName()
}

func keys(objs []*unstructured.Unstructured, skipKinds ...string) []string {
	var out []string
	for _, o := range objs {
		if !contains(skipKinds, o.GetKind()) {
			out = append(out, key(o))
		}
	}
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s rendered; rendered: %v", kind, name, keys(objs))
	return nil
}

// dryRunApply applies every object with server-side apply and dry-run, so the API server
// validates and admits it without storing it.
func dryRunApply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	for _, o := range objs {
		// The namespaces exist in a cluster the operator is installed in: its own, Istio's.
		if ns := o.GetNamespace(); ns != "" {
			ensureNamespace(t, ns, nil)
		}
	}
	for _, o := range objs {
		obj := o.DeepCopy()
		obj.SetResourceVersion("")
		// The control plane already holds the CRD (testenv installed it); force takes over
		// its fields as kubectl apply --server-side --force-conflicts would.
		if err := k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.DryRunAll, client.ForceOwnership, client.FieldOwner("install-test")); err != nil {
			t.Errorf("%s rejected by the API server: %v", key(o), err)
		}
	}
}
