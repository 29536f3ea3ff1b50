// Package architecture checks the dependency rules of the design: the API imports nothing
// internal; the translator, the checks, the model and the offline schema validation never reach
// a Kubernetes client; the checks and the translator do not import each other; the webhook
// does not import the reconciler.
package architecture

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/apirule-operator/apirule-operator"

func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestAPIImportsNothingInternal(t *testing.T) {
	for _, dep := range deps(t, module+"/api/...") {
		if strings.HasPrefix(dep, module+"/") && !strings.HasPrefix(dep, module+"/api/") {
			t.Errorf("the API package depends on %s", dep)
		}
	}
}

func TestTranslatorAndChecksArePure(t *testing.T) {
	clients := []string{
		"sigs.k8s.io/controller-runtime",
		"k8s.io/client-go",
		"istio.io/client-go/pkg/clientset",
		"istio.io/client-go/pkg/informers",
	}
	for pkg, forbidden := range map[string][]string{
		"internal/translate": slices.Concat(clients, []string{"os/exec", module + "/internal/check"}),
		"internal/check":     slices.Concat(clients, []string{"os/exec", module + "/internal/translate"}),
		"internal/model":     slices.Concat(clients, []string{"os/exec"}),
		// internal/schema runs the API server's validation code offline, for apirulectl: it
		// must not need a cluster either. os/exec is not checked: the OpenAPI code the server
		// uses links gnostic's plugin runner, which nothing on this path calls.
		"internal/schema": clients,
	} {
		for _, dep := range deps(t, module+"/"+pkg) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}

// The webhook and apirulectl's renderer run the checks and the gatherer; they never need the
// reconciler.
func TestWebhookAndRendererDoNotImportTheController(t *testing.T) {
	for _, pkg := range []string{"internal/webhook", "internal/render"} {
		for _, dep := range deps(t, module+"/"+pkg) {
			if dep == module+"/controllers" {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
