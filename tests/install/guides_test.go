package install_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/render"
)

// Shell variables the guides expand inside their APIRules, with the values the guides set.
var guideVariables = map[string]string{
	"SAMPLES": "https://raw.githubusercontent.com/istio/istio/release-1.28/security/tools/jwt/samples",
}

// Findings the offline context cannot avoid, per guide: the IP-restriction guide sets
// numTrustedProxies on the ingress gateway's Deployment (TestGuidesSetTrustedProxies checks
// that it does), and the context models no gateway Pods that would carry it.
var allowedGuideFindings = map[string][]conditions.Reason{
	"ip-restriction.md": {conditions.ReasonNoTrustedProxies},
}

var (
	// Secrets a guide creates from files, and the openssl commands that make the files.
	createSecret = regexp.MustCompile(`(?m)^\s*kubectl -n (\S+) create secret (tls|generic) (\S+)(.*)$`)
	opensslOut   = regexp.MustCompile(`(?m)^\s*openssl .*-out (\S+).*$`)
	sanDNS       = regexp.MustCompile(`DNS:([^,' ]+)`)
	// Helm values a guide sets.
	helmSet = regexp.MustCompile(`--set ([a-zA-Z.]+)=(\S*)`)
	// A curl command line (continuation lines joined).
	curlLine = regexp.MustCompile(`(?m)^\s*curl .*$`)
)

// joinContinuations joins shell lines ending in a backslash.
func joinContinuations(text string) string {
	return strings.ReplaceAll(text, "\\\n", " ")
}

// guideSecrets returns, as YAML documents, the Secrets a guide creates with kubectl create
// secret: a TLS Secret holds a certificate for the DNS names of the openssl command that made
// its --cert file, a generic one a generated CA under each --from-file key. A Secret made of a
// file the guide does not produce is an error: the reader could not follow the guide.
func guideSecrets(t *testing.T, text string) []byte {
	t.Helper()
	text = joinContinuations(text)
	made := map[string]string{}
	for _, m := range opensslOut.FindAllStringSubmatch(text, -1) {
		made[m[1]] = m[0]
	}
	var out []byte
	add := func(s *corev1.Secret) {
		s.APIVersion, s.Kind = "v1", "Secret"
		raw, err := yaml.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(append(out, []byte("\n---\n")...), raw...)
	}
	for _, m := range createSecret.FindAllStringSubmatch(text, -1) {
		namespace, kind, name, flags := m[1], m[2], m[3], strings.Fields(m[4])
		ca, err := fixtures.NewCA(name+"-ca", time.Now().AddDate(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		switch kind {
		case "tls":
			certFile := flagValue(flags, "--cert")
			cmd, ok := made[certFile]
			if !ok {
				t.Errorf("the guide creates Secret %s/%s from %q, which none of its openssl commands makes", namespace, name, certFile)
				continue
			}
			var names []string
			for _, n := range sanDNS.FindAllStringSubmatch(cmd, -1) {
				names = append(names, n[1])
			}
			if len(names) == 0 {
				t.Errorf("the openssl command for %s names no subjectAltName DNS names: %s", certFile, cmd)
				continue
			}
			server, err := ca.NewServerCertificate(time.Now().AddDate(0, 0, 30), names...)
			if err != nil {
				t.Fatal(err)
			}
			add(server.TLSSecret(namespace, name))
		case "generic":
			secret := ca.CASecret(namespace, name)
			secret.Data = map[string][]byte{}
			for i, f := range flags {
				if f != "--from-file" && !strings.HasPrefix(f, "--from-file=") {
					continue
				}
				spec := strings.TrimPrefix(f, "--from-file=")
				if f == "--from-file" && i+1 < len(flags) {
					spec = flags[i+1]
				}
				key, file, _ := strings.Cut(spec, "=")
				if _, ok := made[file]; !ok {
					t.Errorf("the guide creates Secret %s/%s from %q, which none of its openssl commands makes", namespace, name, file)
				}
				secret.Data[key] = ca.CertPEM
			}
			add(secret)
		}
	}
	return out
}

// flagValue returns the value of a flag written --name=value or --name value.
func flagValue(flags []string, name string) string {
	for i, f := range flags {
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
		if f == name && i+1 < len(flags) {
			return flags[i+1]
		}
	}
	return ""
}

// managedGateway is the Gateway the operator keeps with --manage-default-gateway, for the
// context: HTTPS on *.<domain> with the credential, HTTP redirected.
func managedGateway(t *testing.T, name, domain, credential string) []byte {
	t.Helper()
	namespace, gwName, ok := strings.Cut(name, "/")
	if !ok || domain == "" || credential == "" {
		t.Fatalf("the guide manages the default Gateway %q without a domain (%q) or a credential (%q)", name, domain, credential)
	}
	return []byte(fmt.Sprintf(`
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: %s, namespace: %s}
spec:
  selector: {istio: ingressgateway}
  servers:
    - port: {number: 443, name: https, protocol: HTTPS}
      hosts: ["*.%s"]
      tls: {mode: SIMPLE, credentialName: %s}
    - port: {number: 80, name: http, protocol: HTTP}
      hosts: ["*.%s"]
      tls: {httpsRedirect: true}
`, gwName, namespace, domain, credential, domain))
}

// TestGuidesCallTheGateway: every curl a guide sends to an example.com host goes to the
// ingress gateway as the setup describes (--connect-to ::$GATEWAY, or $GATEWAY_HTTP for
// plain HTTP) and accepts the setup's self-signed certificate (-k): without them the command
// fails on the reader's machine before it reaches the gateway.
func TestGuidesCallTheGateway(t *testing.T) {
	guides, _ := filepath.Glob(filepath.Join(root, "docs", "guides", "*.md"))
	var calls int
	for _, guide := range guides {
		for _, line := range curlLine.FindAllString(joinContinuations(string(mustRead(t, guide))), -1) {
			if !strings.Contains(line, ".example.com") {
				continue
			}
			calls++
			command, _, _ := strings.Cut(line, "#")
			fields := strings.Fields(command)
			insecure := slices.ContainsFunc(fields, func(f string) bool {
				return f == "--insecure" || (strings.HasPrefix(f, "-") && !strings.HasPrefix(f, "--") && strings.Contains(f, "k"))
			})
			switch {
			case strings.Contains(command, "https://"):
				if !strings.Contains(command, "--connect-to ::$GATEWAY ") || !insecure {
					t.Errorf("%s: %q does not call the gateway with -k --connect-to ::$GATEWAY", filepath.Base(guide), strings.TrimSpace(command))
				}
			case strings.Contains(command, "http://"):
				if !strings.Contains(command, "--connect-to ::$GATEWAY_HTTP ") {
					t.Errorf("%s: %q does not call the gateway's HTTP port with --connect-to ::$GATEWAY_HTTP", filepath.Base(guide), strings.TrimSpace(command))
				}
			}
		}
	}
	if calls < 10 {
		t.Fatalf("found only %d curl calls to example.com hosts in the guides", calls)
	}
}

// TestGuidesSetTrustedProxies: the IP-restriction guide's requests are decided by the
// X-Forwarded-For entry curl writes, which needs numTrustedProxies 1 on the gateway.
func TestGuidesSetTrustedProxies(t *testing.T) {
	text := string(mustRead(t, filepath.Join(root, "docs", "guides", "ip-restriction.md")))
	if !strings.Contains(text, `kubectl -n istio-system patch deployment istio-ingressgateway`) ||
		!strings.Contains(text, `\"numTrustedProxies\":1`) {
		t.Error("ip-restriction.md no longer sets numTrustedProxies 1 on the ingress gateway; its curl calls depend on it")
	}
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
	// The Secrets the setup creates (the Gateway's certificate) are generated here.
	setup = append(setup, guideSecrets(t, string(mustRead(t, filepath.Join(root, "docs", "guides", "README.md"))))...)
	ensureNamespace(t, "shop", nil)
	guides, _ := filepath.Glob(filepath.Join(root, "docs", "guides", "*.md"))
	var checked int
	for _, guide := range guides {
		text := string(mustRead(t, guide))
		applied := map[string]map[string]any{}
		// The other objects a guide creates (a ReferenceGrant, Secrets, the managed default
		// Gateway) are part of its APIRules' context.
		context := setup
		if filepath.Base(guide) != "README.md" {
			context = append(bytes.Clone(context), guideSecrets(t, text)...)
		}
		opts := render.DefaultOptions()
		if m := helmSet.FindAllStringSubmatch(text, -1); m != nil {
			values := map[string]string{}
			// The first setting counts: a clean-up section may reset the value later.
			for _, kv := range m {
				if _, seen := values[kv[1]]; !seen {
					values[kv[1]] = kv[2]
				}
			}
			if name := values["defaultGateway.name"]; name != "" && values["defaultGateway.manage"] == "true" {
				opts.DefaultGateway = name
				context = append(context, managedGateway(t, name, values["defaultGateway.domain"], values["defaultGateway.credentialName"])...)
			}
		}
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
			checkGuideAPIRule(t, filepath.Base(guide), context, opts, obj)
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
			checkGuideAPIRule(t, filepath.Base(guide)+" (patched)", context, opts, merge(base, patch))
			checked++
		}
	}
	t.Logf("checked %d APIRules from %d guides", checked, len(guides))
	if checked < 4 {
		t.Fatalf("found only %d APIRules in docs/guides; the pattern no longer matches how the guides apply them", checked)
	}
}

func checkGuideAPIRule(t *testing.T, guide string, setup []byte, opts render.Options, obj map[string]any) {
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
	results, err := render.Render(bundle, opts)
	if err != nil {
		t.Errorf("%s: %v", guide, err)
		return
	}
	if render.HasErrors(results) {
		t.Errorf("%s: %s is not served:\n%s", guide, rule.Name, strings.Join(render.FindingLines(results), "\n"))
	}
	// A reference the setup does not provide (a provider, a Service, a Secret) leaves a rule
	// unserved even where it is only a warning: the guide would not work as written.
	for _, r := range results {
		for _, f := range r.Findings {
			if f.Condition == conditions.ResolvedRefs && !slices.Contains(allowedGuideFindings[strings.TrimSuffix(guide, " (patched)")], f.Reason) {
				t.Errorf("%s: %s refers to something the guides' setup does not create: %s: %s [%s]", guide, rule.Name, f.Field, f.Message, f.Reason)
			}
		}
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
