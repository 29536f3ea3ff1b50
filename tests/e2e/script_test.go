package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGuideScriptChecksStatusCodes(t *testing.T) {
	guide := "# A guide\n\n```sh\nkubectl apply -f - <<'EOF'\nkind: APIRule\ncurl https://inside.heredoc/ # 200\nEOF\n" +
		"gw() { curl -k -s -o /dev/null -w '%{http_code}\\n' \"$@\"; }\n" +
		"gw https://a.example.com/x      # 403: no token\n" +
		"curl -k --connect-to ::$GATEWAY \\\n  -X DELETE https://a.example.com/x   # 404: not routed\n" +
		"curl -k https://a.example.com/h | grep -i x-user  # 200\n" +
		"echo done\n```\n\n```yaml\ncurl https://not.run/ # 500\n```\n\n```sh\nexport GATEWAY=1.2.3.4:443\n```\n"
	s, err := GuideScript(guide)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"curl https://inside.heredoc/ # 200\nEOF\n",
		"expect_code 403 gw https://a.example.com/x\n",
		"expect_code 404 curl -s -o /dev/null -w '%{http_code}\\n' -k --connect-to ::$GATEWAY -X DELETE https://a.example.com/x\n",
		"curl -k https://a.example.com/h | grep -i x-user  # 200\n",
		"echo done\n",
	} {
		if !strings.Contains(s.Bash, want) {
			t.Errorf("script lacks %q:\n%s", want, s.Bash)
		}
	}
	for _, never := range []string{"not.run", "export GATEWAY"} {
		if strings.Contains(s.Bash, never) {
			t.Errorf("script runs %q:\n%s", never, s.Bash)
		}
	}
	if s.Checks != 2 {
		t.Errorf("%d checks, want 2", s.Checks)
	}
}

// Every guide becomes a script bash accepts, and each guide that calls the gateway checks
// status codes: a guide whose commands drift from the form the runner reads fails here.
func TestEveryGuideBecomesACheckedScript(t *testing.T) {
	guides, err := filepath.Glob(filepath.Join("..", "..", "docs", "guides", "*.md"))
	if err != nil || len(guides) < 5 {
		t.Fatalf("guides: %v %v", guides, err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range guides {
		raw, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		s, err := GuideScript(string(raw))
		if err != nil {
			t.Errorf("%s: %v", g, err)
			continue
		}
		if filepath.Base(g) != "README.md" && s.Checks == 0 {
			t.Errorf("%s checks no status code", filepath.Base(g))
		}
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(s.Bash)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: bash -n: %v\n%s", filepath.Base(g), err, out)
		}
		t.Logf("%s: %d checked commands", filepath.Base(g), s.Checks)
	}
}
