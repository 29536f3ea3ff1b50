// Package architecture checks the dependency rules of the design: the API imports nothing
// internal, and the translator and the validator never reach a Kubernetes client.
package architecture

import (
	"os/exec"
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

func TestTranslatorAndValidatorArePure(t *testing.T) {
	forbidden := []string{
		"sigs.k8s.io/controller-runtime",
		"k8s.io/client-go",
		"istio.io/client-go/pkg/clientset",
		"istio.io/client-go/pkg/informers",
		"os/exec",
	}
	for _, pkg := range []string{"internal/translate", "internal/validate"} {
		for _, dep := range deps(t, module+"/"+pkg) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s depends on %s", pkg, dep)
				}
			}
		}
	}
}
