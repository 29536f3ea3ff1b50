package install_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

var (
	managerBuild    sync.Once
	managerBin      string
	managerBuildErr string
)

// builtManager builds cmd/manager once per test binary.
func builtManager(t *testing.T) string {
	t.Helper()
	managerBuild.Do(func() {
		dir, err := os.MkdirTemp("", "apirule-manager-")
		if err != nil {
			managerBuildErr = err.Error()
			return
		}
		managerBin = filepath.Join(dir, "manager")
		if out, err := execCommand(t, "go", "build", "-o", managerBin, "./cmd/manager").CombinedOutput(); err != nil {
			managerBuildErr = "building the manager: " + err.Error() + "\n" + string(out)
		}
	})
	if managerBuildErr != "" {
		t.Fatal(managerBuildErr)
	}
	return managerBin
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestConfigurationDocsCoverEveryFlag: docs/configuration.md documents each flag the manager
// defines, so a new flag cannot ship undocumented.
func TestConfigurationDocsCoverEveryFlag(t *testing.T) {
	doc := readDoc(t, "configuration.md")
	flags := managerFlags(t, builtManager(t))
	if len(flags) < 10 {
		t.Fatalf("parsed only %d flags from the manager: %v", len(flags), flags)
	}
	for _, f := range flags {
		if !strings.Contains(doc, "`--"+f+"`") {
			t.Errorf("docs/configuration.md does not document the manager flag --%s", f)
		}
	}
}

// TestConfigurationDocsCoverEveryHelmValue: each leaf of the chart's values.yaml (maps that
// users fill themselves, like podLabels, count as one value) appears in docs/configuration.md.
func TestConfigurationDocsCoverEveryHelmValue(t *testing.T) {
	doc := readDoc(t, "configuration.md")
	raw, err := os.ReadFile(filepath.Join(root, "charts", "apirule-operator", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	var paths []string
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		m, ok := v.(map[string]any)
		if !ok || len(m) == 0 || prefix == "resources" || prefix == "networkPolicy.metricsNamespaceSelector" {
			paths = append(paths, prefix)
			return
		}
		for k, child := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, child)
		}
	}
	walk("", values)
	sort.Strings(paths)
	if len(paths) < 20 {
		t.Fatalf("found only %d values: %v", len(paths), paths)
	}
	for _, p := range paths {
		if !strings.Contains(doc, "`"+p+"`") {
			t.Errorf("docs/configuration.md does not document the Helm value %s", p)
		}
	}
}

// TestTroubleshootingCoversEveryReason: docs/troubleshooting.md has an entry for each
// condition reason the operator can write (the Reason constants of internal/conditions).
func TestTroubleshootingCoversEveryReason(t *testing.T) {
	doc := readDoc(t, "troubleshooting.md")
	reasons := conditionReasons(t)
	if len(reasons) < 20 {
		t.Fatalf("found only %d reasons in internal/conditions: %v", len(reasons), reasons)
	}
	for _, r := range reasons {
		if !strings.Contains(doc, "**`"+r+"`**") {
			t.Errorf("docs/troubleshooting.md has no entry **`%s`**", r)
		}
	}
}

// TestEveryReasonIsEmitted: no reason is documented that the operator never writes. Each
// Reason constant of internal/conditions is used by code outside that package and its tests.
func TestEveryReasonIsEmitted(t *testing.T) {
	var code strings.Builder
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "bin" || d.Name() == "tests" || d.Name() == ".git" || path == filepath.Join(root, "internal", "conditions")) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			b, err := os.ReadFile(path)
			code.Write(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := conditionReasonNames(t)
	if len(names) < 20 {
		t.Fatalf("found only %d reasons", len(names))
	}
	for _, name := range names {
		if !strings.Contains(code.String(), "conditions."+name) {
			t.Errorf("conditions.%s is never written by the operator: emit it or remove it and its documentation", name)
		}
	}
}

// conditionReasonNames reads the names of every constant of type Reason in internal/conditions.
func conditionReasonNames(t *testing.T) []string {
	var names []string
	for _, vs := range reasonSpecs(t) {
		for _, n := range vs.Names {
			names = append(names, n.Name)
		}
	}
	return names
}

// conditionReasons reads the values of every constant of type Reason in internal/conditions.
func conditionReasons(t *testing.T) []string {
	var reasons []string
	for _, vs := range reasonSpecs(t) {
		for _, v := range vs.Values {
			if lit, ok := v.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				s, _ := strconv.Unquote(lit.Value)
				reasons = append(reasons, s)
			}
		}
	}
	return reasons
}

// reasonSpecs are the declarations of the constants of type Reason in internal/conditions.
func reasonSpecs(t *testing.T) []*ast.ValueSpec {
	t.Helper()
	fset := token.NewFileSet()
	pkgDir := filepath.Join(root, "internal", "conditions")
	entries, err := os.ReadDir(pkgDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*ast.ValueSpec
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, filepath.Join(pkgDir, e.Name()), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				if ident, ok := vs.Type.(*ast.Ident); ok && ident.Name == "Reason" {
					out = append(out, vs)
				}
			}
		}
	}
	return out
}
