package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/apirule-operator/apirule-operator/internal/version"
)

// allFlags returns every flag of every command, as typed: -x or --name.
func allFlags() []string {
	seen := map[string]bool{}
	var out []string
	for _, c := range commands() {
		for _, f := range c.flagNames() {
			if !seen[f] {
				seen[f] = true
				out = append(out, f)
			}
		}
	}
	return out
}

// Help is asked for at any level and answered on stdout with exit 0, always with the whole
// text: every command and every flag.
func TestHelpIsCompleteAtEveryLevel(t *testing.T) {
	help := helpText()
	for _, name := range commandNames() {
		if !strings.Contains(help, "  "+name+" ") && !strings.Contains(help, "apirulectl "+name) {
			t.Errorf("help does not name the command %s", name)
		}
	}
	flags := allFlags()
	if len(flags) < 20 {
		t.Fatalf("found only %d flags: %v", len(flags), flags)
	}
	for _, f := range flags {
		if !regexp.MustCompile(`(?m)^  (-[A-Za-z], )?`+regexp.QuoteMeta(f)+`( |$)`).MatchString(help) &&
			!regexp.MustCompile(`(?m)^  `+regexp.QuoteMeta(f)+`, `).MatchString(help) {
			t.Errorf("help does not describe the flag %s", f)
		}
	}
	asks := [][]string{{"--help"}, {"-h"}, {"help"}, {"-help"}}
	for _, c := range commands() {
		asks = append(asks, []string{c.name, "--help"}, []string{c.name, "-h"})
	}
	asks = append(asks, []string{"render", "-f", "x.yaml", "--help"}, []string{"validate", "-n", "shop", "-h"},
		[]string{"completion", "bash", "--help"})
	for _, args := range asks {
		code, stdout, stderr := runCLI(t, "", args...)
		if code != 0 || stdout != help || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q, stdout the help text: %v; want exit 0 and the help text on stdout only",
				args, code, stderr, stdout == help)
		}
	}
}

// Usage errors go to stderr with exit 2 and say where the usage is; stdout stays clean for
// pipes.
func TestUsageErrorsGoToStderr(t *testing.T) {
	for name, c := range map[string]struct {
		args []string
		want string
	}{
		"no command":            {nil, "Usage:"},
		"unknown command":       {[]string{"rendr"}, `unknown command "rendr"`},
		"unknown flag":          {[]string{"render", "--nope"}, "flag provided but not defined: -nope"},
		"flag of another":       {[]string{"render", "--strict", "-f", "x"}, "flag provided but not defined: -strict"},
		"missing value":         {[]string{"validate", "-f"}, "flag needs an argument: -f"},
		"positional":            {[]string{"render", "x.yaml"}, `unexpected argument "x.yaml"`},
		"bad output":            {[]string{"render", "-f", "x", "-o", "xml"}, `-o "xml": use yaml`},
		"no shell":              {[]string{"completion"}, "name one shell"},
		"unknown shell":         {[]string{"completion", "tcsh"}, `unknown shell "tcsh"`},
		"files and cluster":     {[]string{"validate", "-f", "x", "--kubeconfig", "k"}, "exclude each other"},
		"namespace and all":     {[]string{"validate", "-n", "shop", "-A"}, "-n and -A exclude each other"},
		"convert without files": {[]string{"convert"}, "-f FILE is required"},
	} {
		code, stdout, stderr := runCLI(t, "", c.args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2, nothing on stdout and %q", name, code, stdout, stderr, c.want)
		}
		if name != "no command" && !strings.Contains(stderr, "apirulectl --help") {
			t.Errorf("%s: stderr does not point at --help: %q", name, stderr)
		}
	}
}

// -o json prints one v1 List whose items are, in order, the documents of -o yaml.
func TestRenderJSONIsTheYAMLAsAList(t *testing.T) {
	input := filepath.Join("..", "..", "config", "samples", "context.yaml")
	sample := filepath.Join("..", "..", "config", "samples", "gateway_v2_apirule_jwt.yaml")
	code, yamlOut, stderr := runCLI(t, "", "render", "-f", input, "-f", sample)
	if code != 0 {
		t.Fatalf("yaml: exit %d: %s", code, stderr)
	}
	code, jsonOut, stderr := runCLI(t, "", "render", "-f", input, "-f", sample, "-o", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, stderr)
	}
	var list struct {
		APIVersion string           `json:"apiVersion"`
		Kind       string           `json:"kind"`
		Items      []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(jsonOut), &list); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, jsonOut)
	}
	if list.APIVersion != "v1" || list.Kind != "List" {
		t.Errorf("json output is %s %s, want v1 List", list.APIVersion, list.Kind)
	}
	var docs []map[string]any
	reader := utilyaml.NewYAMLReader(bufioReader(yamlOut))
	for {
		doc, err := reader.Read()
		if err != nil {
			break
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatal(err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	if len(docs) < 3 || len(docs) != len(list.Items) {
		t.Fatalf("yaml has %d documents, json %d items", len(docs), len(list.Items))
	}
	for i := range docs {
		want, _ := json.Marshal(docs[i])
		got, _ := json.Marshal(list.Items[i])
		if !bytes.Equal(want, got) {
			t.Errorf("item %d differs from document %d:\n%s\n%s", i, i, got, want)
		}
	}
	if _, again, _ := runCLI(t, "", "render", "-f", input, "-f", sample, "-o", "json"); again != jsonOut {
		t.Error("two runs print different json")
	}
	// With nothing to print, the list is empty, not null: consumers iterate items.
	broken := "apiVersion: gateway.apirule.io/v2\nkind: APIRule\nmetadata: {name: x}\nspec: {hosts: [a.example.com], rules: []}\n"
	code, out, _ := runCLI(t, broken, "render", "-f", "-", "-o", "json")
	if code != 1 || !strings.Contains(out, `"items": []`) {
		t.Errorf("refused APIRule: exit %d, output %s", code, out)
	}
}

func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "", "version")
	if code != 0 || !strings.HasPrefix(stdout, "apirulectl ") || !strings.Contains(stdout, "\ncommit: ") ||
		!strings.Contains(stdout, "\ngo: "+runtime.Version()+"\n") {
		t.Errorf("exit %d, output %q", code, stdout)
	}
	build := version.Get()
	if want := "apirulectl " + build.Version + "\ncommit: " + build.Commit + "\n"; !strings.HasPrefix(stdout, want) {
		t.Errorf("output %q, want it to start with %q (internal/version, as the manager reports)", stdout, want)
	}
}

// Each script completes every command and every flag of each command; bash checks the
// syntax of its script, and zsh and fish theirs where installed.
func TestCompletionScriptsNameEveryCommandAndFlag(t *testing.T) {
	for _, shell := range shells {
		code, script, stderr := runCLI(t, "", "completion", shell)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", shell, code, stderr)
		}
		for _, name := range commandNames() {
			if !strings.Contains(script, name) {
				t.Errorf("%s: the script does not complete the command %s", shell, name)
			}
		}
		for _, c := range commands() {
			if c.positional != "" {
				for _, v := range strings.Split(c.positional, "|") {
					if !strings.Contains(script, v) {
						t.Errorf("%s: the script does not complete %s %s", shell, c.name, v)
					}
				}
			}
			for _, f := range c.flagNames() {
				want := f
				if shell == "fish" {
					bare := strings.TrimLeft(f, "-")
					want = "-n '__fish_seen_subcommand_from " + c.name + "' -l " + bare
					if len(bare) == 1 {
						want = "-n '__fish_seen_subcommand_from " + c.name + "' -s " + bare
					}
				}
				if !strings.Contains(script, want) {
					t.Errorf("%s: the script does not complete %s %s", shell, c.name, f)
				}
			}
		}
		if path, err := exec.LookPath(shell); err == nil {
			file := filepath.Join(t.TempDir(), "completion."+shell)
			if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"-n", file}
			if shell == "fish" {
				args = []string{"--no-execute", file}
			}
			if out, err := exec.Command(path, args...).CombinedOutput(); err != nil {
				t.Errorf("%s does not parse its script: %v\n%s", shell, err, out)
			}
		} else if shell == "bash" {
			t.Errorf("bash is not installed: %v", err)
		}
	}
}

// The bash script completes what a user types: commands, a command's flags, flag values.
func TestBashCompletionCompletes(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is not installed: %v", err)
	}
	_, script, _ := runCLI(t, "", "completion", "bash")
	file := filepath.Join(t.TempDir(), "apirulectl.bash")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{
		"apirulectl val":             "validate",
		"apirulectl c":               "convert completion",
		"apirulectl render -o ":      "yaml json",
		"apirulectl validate --all":  "--all-namespaces --allow-cross-namespace-backends",
		"apirulectl convert --s":     "--strict",
		"apirulectl completion ":     "bash zsh fish",
		"apirulectl render --strict": "",
	} {
		words := strings.Fields(line)
		if strings.HasSuffix(line, " ") {
			words = append(words, "")
		}
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		cmd := exec.Command(bash, "-c", fmt.Sprintf(`source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _apirulectl; echo "${COMPREPLY[*]}"`,
			file, strings.Join(quoted, " "), len(words)-1))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != want {
			t.Errorf("%q completes to %q (%v), want %q", line, strings.TrimSpace(string(out)), err, want)
		}
	}
}

// docs/apirulectl.md lists each flag in its tables, so a new flag cannot ship undocumented.
func TestDocsListEveryFlag(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "docs", "apirulectl.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows strings.Builder
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "|") {
			rows.WriteString(line + "\n")
		}
	}
	for _, f := range allFlags() {
		if !strings.Contains(rows.String(), "`"+f+"`") {
			t.Errorf("docs/apirulectl.md has no table row with `%s`", f)
		}
	}
}

func bufioReader(s string) *bufio.Reader { return bufio.NewReader(strings.NewReader(s)) }
