package schema

import (
	"strings"
	"testing"

	"github.com/apirule-operator/apirule-operator/config/crd"
)

// TestCompileRefusesCRDsItWouldMisjudge: validate drops status and defaults the namespace,
// which is right only for a namespaced CRD with a status subresource; another CRD must be an
// error, not a silently different verdict.
func TestCompileRefusesCRDsItWouldMisjudge(t *testing.T) {
	if _, err := compile(crd.APIRules); err != nil {
		t.Fatalf("the embedded CRD does not compile: %v", err)
	}
	for name, edit := range map[string]func(string) string{
		"cluster-scoped": func(s string) string { return strings.Replace(s, "scope: Namespaced", "scope: Cluster", 1) },
		"no status subresource": func(s string) string {
			return strings.Replace(s, "subresources:\n      status: {}", "subresources: {}", 1)
		},
		"not a CRD": func(string) string { return "kind: [" },
	} {
		manifest := edit(string(crd.APIRules))
		if manifest == string(crd.APIRules) {
			t.Fatalf("%s: the edit changed nothing; the CRD's layout changed", name)
		}
		if _, err := compile([]byte(manifest)); err == nil {
			t.Errorf("%s: compiles", name)
		}
	}
}
