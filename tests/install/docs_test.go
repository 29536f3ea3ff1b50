package install_test

import (
	"crypto/x509"
	"encoding/pem"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

// TestLogTimeEncodingMatchesDocs: docs/configuration.md gives the default --zap-time-encoding
// as the manager's logs show it. controller-runtime's own help text says 'epoch', while its
// unset encoder writes RFC 3339; the manager's first log line (here: no cluster to talk to)
// shows which.
func TestLogTimeEncodingMatchesDocs(t *testing.T) {
	bin := builtManager(t)
	firstLine := func(args ...string) map[string]any {
		cmd := execCommand(t, bin, args...)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(t.TempDir(), "missing"), "KUBERNETES_SERVICE_HOST=", "HOME="+t.TempDir())
		out, _ := cmd.CombinedOutput()
		for _, line := range strings.Split(string(out), "\n") {
			var entry map[string]any
			if yaml.Unmarshal([]byte(line), &entry) == nil && entry["ts"] != nil {
				return entry
			}
		}
		t.Fatalf("manager %v logged no JSON line with ts:\n%s", args, out)
		return nil
	}
	ts, ok := firstLine()["ts"].(string)
	if !ok {
		t.Fatalf("default log time %v is not a string", firstLine()["ts"])
	}
	if _, err := time.Parse(time.RFC3339, ts); err != nil {
		t.Errorf("default log time %q is not RFC 3339: %v", ts, err)
	}
	// The check can tell the encodings apart: epoch is a number.
	if _, isNumber := firstLine("--zap-time-encoding=epoch")["ts"].(float64); !isNumber {
		t.Error("--zap-time-encoding=epoch did not log a number; the test cannot distinguish the encodings")
	}
	doc := readDoc(t, "configuration.md")
	if !strings.Contains(doc, "| `--zap-time-encoding` | `rfc3339` |") {
		t.Error("docs/configuration.md does not give rfc3339 as the default of --zap-time-encoding")
	}
	if !strings.Contains(doc, "| `--zap-encoder` | `json` |") {
		t.Error("docs/configuration.md does not give json as the default of --zap-encoder, which the lines above are")
	}
}

// TestInstallDocsNameRealVersions: the install commands name the image tag the manifests use
// (config/manager/kustomization.yaml, the chart's appVersion) or a placeholder, and a remote
// kustomize base is pinned to a placeholder ref: no release tag exists that the docs could
// name, and a made-up one fails at 'kubectl apply -k'.
func TestInstallDocsNameRealVersions(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "config", "manager", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`(?m)^\s*newTag:\s*(\S+)`).FindSubmatch(raw)
	if tag == nil {
		t.Fatal("config/manager/kustomization.yaml has no newTag")
	}
	chart := string(mustRead(t, filepath.Join(root, "charts", "apirule-operator", "Chart.yaml")))
	if !strings.Contains(chart, "appVersion: \""+string(tag[1])+"\"") {
		t.Errorf("the chart's appVersion is not the manifests' tag %s", tag[1])
	}
	tags := regexp.MustCompile(`(?:newTag:\s*|image\.tag=|IMG=[^\s:]+:)(\S+)`)
	refs := regexp.MustCompile(`\?ref=([^\s)]+)`)
	for _, name := range []string{filepath.Join("docs", "install.md"), "README.md"} {
		text := string(mustRead(t, filepath.Join(root, name)))
		var found int
		for _, m := range tags.FindAllStringSubmatch(text, -1) {
			found++
			if m[1] != string(tag[1]) && !strings.HasPrefix(m[1], "<") {
				t.Errorf("%s uses the image tag %s; the manifests use %s", name, m[1], tag[1])
			}
		}
		if found == 0 {
			t.Errorf("%s names no image tag; the pattern no longer matches", name)
		}
		for _, m := range refs.FindAllStringSubmatch(text, -1) {
			if !strings.HasPrefix(m[1], "<") {
				t.Errorf("%s pins a remote base to ?ref=%s; no such tag is published, say how to pick a real ref", name, m[1])
			}
		}
	}
}

// TestDocsIndexListsEachPageOnce: docs/README.md links every page of docs/ exactly once.
func TestDocsIndexListsEachPageOnce(t *testing.T) {
	index := readDoc(t, "README.md")
	pages, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if len(pages) < 10 {
		t.Fatalf("found only %d pages in docs/", len(pages))
	}
	for _, p := range pages {
		name := filepath.Base(p)
		if name == "README.md" {
			continue
		}
		if n := strings.Count(index, "]("+name+")"); n != 1 {
			t.Errorf("docs/README.md links %s %d times, want once", name, n)
		}
	}
}

// TestSampleCertificatesAreValid: the certificates of config/samples/context.yaml, which the
// README's render command and the demo's mTLS sample use, are valid now and for years to come,
// so rendering the samples shows no certificate finding.
func TestSampleCertificatesAreValid(t *testing.T) {
	raw := string(mustRead(t, filepath.Join(root, "config", "samples", "context.yaml")))
	blocks := regexp.MustCompile(`(?s)-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----`).FindAllString(raw, -1)
	if len(blocks) < 2 {
		t.Fatalf("found %d certificates in config/samples/context.yaml, want the server certificate and the CA", len(blocks))
	}
	now := time.Now()
	for _, b := range blocks {
		var lines []string
		for _, l := range strings.Split(b, "\n") {
			lines = append(lines, strings.TrimSpace(l))
		}
		block, _ := pem.Decode([]byte(strings.Join(lines, "\n")))
		if block == nil {
			t.Fatalf("unreadable PEM block:\n%s", b)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if now.Before(cert.NotBefore) || now.AddDate(10, 0, 0).After(cert.NotAfter) {
			t.Errorf("sample certificate %s is valid from %s to %s; reissue it with go run ./hack/samplecerts", cert.Subject, cert.NotBefore, cert.NotAfter)
		}
	}
}
