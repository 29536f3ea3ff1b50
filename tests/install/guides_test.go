package install_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/render"
)

// Shell variables the guides expand inside their APIRules, with the values the guides set.
var guideVariables = map[string]string{
	"SAMPLES": "https://raw.githubusercontent.com/istio/istio/release-1.28/security/tools/jwt/samples",
}

var (
	// An object a guide applies inline, or writes to a file it then applies.
	heredoc    = regexp.MustCompile(`(?ms)^(?:kubectl apply -f -|cat > \S+) <<('?)EOF'?\n(.*?)^EOF$`)
	mergePatch = regexp.MustCompile(`(?m)^kubectl -n (\S+) patch apirule (\S+) --type=merge -p '([^']*)'`)
)

// TestGuidesWork takes every APIRule a guide applies (and every merge patch it makes to one)
// and checks it the way a user's cluster would: the API server accepts it (CRD schema and
// CEL, server-side dry-run), and the operator's translation, given what the guides' setup
// creates, finds no error in it. A guide that drifts from the API fails here.
func TestGuidesWork(t *testing.T) {
	setup := mustRead(t, filepath.Join(root, "tests", "install", "testdata", "guides-context.yaml"))
	ensureNamespace(t, "shop", nil)
	guides, _ := filepath.Glob(filepath.Join(root, "docs", "guides", "*.md"))
	var checked int
	for _, guide := range guides {
		text := string(mustRead(t, guide))
		applied := map[string]map[string]any{}
		// The other objects a guide applies (a ReferenceGrant) are part of its APIRules' context.
		context := setup
		for _, m := range heredoc.FindAllStringSubmatch(text, -1) {
			if !strings.Contains(m[2], "kind: APIRule\n") && strings.Contains(m[2], "kind: ReferenceGrant\n") {
				context = append(append(bytes.Clone(context), []byte("\n---\n")...), m[2]...)
			}
		}
		for _, m := range heredoc.FindAllStringSubmatch(text, -1) {
			doc := m[2]
			if m[1] == "" {
				doc = os.Expand(doc, func(name string) string {
					v, ok := guideVariables[name]
					if !ok {
						t.Errorf("%s: the APIRule uses $%s, which the test does not know; add it to guideVariables", filepath.Base(guide), name)
					}
					return v
				})
			}
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Errorf("%s: %v\n%s", filepath.Base(guide), err, doc)
				continue
			}
			if obj["kind"] != "APIRule" {
				continue
			}
			md := obj["metadata"].(map[string]any)
			ensureNamespace(t, md["namespace"].(string), nil)
			checkGuideAPIRule(t, filepath.Base(guide), context, obj)
			applied[md["namespace"].(string)+"/"+md["name"].(string)] = obj
			checked++
		}
		for _, m := range mergePatch.FindAllStringSubmatch(text, -1) {
			base, ok := applied[m[1]+"/"+m[2]]
			if !ok {
				// The guide patches an APIRule another guide applied.
				base = findApplied(t, guides, m[1], m[2])
			}
			var patch map[string]any
			if err := json.Unmarshal([]byte(m[3]), &patch); err != nil {
				t.Errorf("%s: patch %s: %v", filepath.Base(guide), m[3], err)
				continue
			}
			checkGuideAPIRule(t, filepath.Base(guide)+" (patched)", context, merge(base, patch))
			checked++
		}
	}
	t.Logf("checked %d APIRules from %d guides", checked, len(guides))
	if checked < 4 {
		t.Fatalf("found only %d APIRules in docs/guides; the pattern no longer matches how the guides apply them", checked)
	}
}

func checkGuideAPIRule(t *testing.T, guide string, setup []byte, obj map[string]any) {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var rule apiv2.APIRule
	if err := json.Unmarshal(raw, &rule); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(context.Background(), &rule, client.DryRunAll); err != nil {
		t.Errorf("%s: the API server rejects %s: %v", guide, rule.Name, err)
	}
	input := append(append(bytes.Clone(setup), []byte("\n---\n")...), raw...)
	bundle, err := render.Load(bytes.NewReader(input))
	if err != nil {
		t.Errorf("%s: %v", guide, err)
		return
	}
	results, err := render.Render(bundle, render.DefaultOptions())
	if err != nil {
		t.Errorf("%s: %v", guide, err)
		return
	}
	if render.HasErrors(results) {
		t.Errorf("%s: %s is not served:\n%s", guide, rule.Name, strings.Join(render.FindingLines(results), "\n"))
	}
}

func findApplied(t *testing.T, guides []string, namespace, name string) map[string]any {
	t.Helper()
	for _, g := range guides {
		for _, m := range heredoc.FindAllStringSubmatch(string(mustRead(t, g)), -1) {
			var obj map[string]any
			if yaml.Unmarshal([]byte(m[2]), &obj) != nil || obj["kind"] != "APIRule" {
				continue
			}
			md := obj["metadata"].(map[string]any)
			// Prefer the noAuth guide's APIRule: the other guides build on it.
			if md["namespace"] == namespace && md["name"] == name && strings.HasSuffix(g, "noauth.md") {
				return obj
			}
		}
	}
	t.Fatalf("no guide applies the APIRule %s/%s that another guide patches", namespace, name)
	return nil
}

// merge applies a JSON merge patch (RFC 7386).
func merge(base, patch map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			bv, _ := out[k].(map[string]any)
			out[k] = merge(bv, pv)
		default:
			out[k] = v
		}
	}
	return out
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
