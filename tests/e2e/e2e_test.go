//go:build e2e

package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGuides runs the guides' setup, then each guide, against the cluster of the current
// kubeconfig, which hack/e2e/run.sh prepares (kind, Istio, the operator from this checkout).
// GATEWAY is the ingress gateway's HTTPS address, as the guides' setup would export it, and
// GATEWAY_HTTP its plain HTTP one (the default-gateway guide).
func TestGuides(t *testing.T) {
	if os.Getenv("GATEWAY") == "" {
		t.Fatal("GATEWAY is not set: run make e2e, which creates the cluster and sets it")
	}
	work := t.TempDir()
	run := func(t *testing.T, name, guide string) {
		t.Helper()
		raw, err := os.ReadFile(guide)
		if err != nil {
			t.Fatal(err)
		}
		s, err := GuideScript(string(raw))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cmd := exec.Command("bash", "-c", s.Bash)
		cmd.Dir = work
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s (%d checked commands): %v", name, s.Checks, err)
		}
	}
	guides := filepath.Join("..", "..", "docs", "guides")
	run(t, "setup", filepath.Join(guides, "README.md"))
	// Every guide, as TestEveryGuideBecomesACheckedScript converts them: a new guide is run
	// without being listed here.
	all, err := filepath.Glob(filepath.Join(guides, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, guide := range all {
		if name := filepath.Base(guide); name != "README.md" {
			t.Run(name, func(t *testing.T) { run(t, name, guide) })
		}
	}
}
