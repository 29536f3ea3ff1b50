package istio_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/apirule-operator/apirule-operator/tests/istio/harness"
)

var repoRoot = filepath.Join("..", "..")

// apirulectl returns the CLI to render with: $APIRULECTL (make sets it) or a fresh build
// from this checkout.
func apirulectl(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("APIRULECTL"); p != "" {
		return p
	}
	out := filepath.Join(t.TempDir(), "apirulectl")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/apirulectl")
	cmd.Dir = repoRoot
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building apirulectl: %v\n%s", err, b)
	}
	return out
}

// What apirulectl renders for the samples is what users apply first; Istio must admit it.
func TestSampleRendersPassIstioValidation(t *testing.T) {
	samples, err := filepath.Glob(filepath.Join(repoRoot, "config", "samples", "gateway_v2_apirule_*.yaml"))
	if err != nil || len(samples) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	v, err := harness.IstioValidator()
	if err != nil {
		t.Fatal(err)
	}
	bin := apirulectl(t)
	for _, s := range samples {
		t.Run(filepath.Base(s), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "render", "-f", filepath.Join(repoRoot, "config", "samples", "context.yaml"), "-f", s)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("apirulectl render: %v\n%s", err, stderr.String())
			}
			docs, err := harness.ParseDocs(stdout.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) == 0 {
				t.Fatalf("the sample renders no objects:\n%s", stderr.String())
			}
			for _, d := range docs {
				if !d.IsIstioConfig() {
					continue
				}
				if err := v.Validate(d); err != nil {
					t.Errorf("%s: %v", d.Ref(), err)
				}
			}
		})
	}
}
