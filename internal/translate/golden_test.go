package translate_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apirule-operator/apirule-operator/internal/render"
)

var update = flag.Bool("update", false, "rewrite the golden files testdata/*.out.yaml from the current translation")

// Golden tests: testdata/<behaviour>.in.yaml holds APIRules and their context as
// apirulectl reads them; <behaviour>.out.yaml holds the findings and the objects, exactly as
// apirulectl render prints them and the operator applies them. Review changes as YAML diffs;
// regenerate with: go test ./internal/translate -update
func TestGolden(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "*.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(inputs) == 0 {
		t.Fatal("no golden inputs in testdata/")
	}
	for _, input := range inputs {
		name := strings.TrimSuffix(filepath.Base(input), ".in.yaml")
		t.Run(name, func(t *testing.T) {
			got := renderGolden(t, input)
			golden := filepath.Join("testdata", name+".out.yaml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/translate -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the translation; if the change is intended, run go test ./internal/translate -update "+
					"and review the diff.\n--- got:\n%s", golden, got)
			}
			if again := renderGolden(t, input); !bytes.Equal(got, again) {
				t.Errorf("two renderings of %s differ", input)
			}
		})
	}
}

func renderGolden(t *testing.T, input string) []byte {
	t.Helper()
	results, err := render.RenderFile(input)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := render.YAML(results)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	out.WriteString("# Generated from " + filepath.Base(input) + " by go test ./internal/translate -update. Do not edit.\n")
	if lines := render.FindingLines(results); len(lines) > 0 {
		out.WriteString("# findings:\n")
		for _, line := range lines {
			out.WriteString("#   " + line + "\n")
		}
	} else {
		out.WriteString("# findings: none\n")
	}
	out.Write(objects)
	return out.Bytes()
}
