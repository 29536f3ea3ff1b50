// Package harness loads a golden translation case (input and generated output), has Istio's
// own code generate the xDS for the ingress gateway and for one sidecar per backend workload,
// and runs requests through that configuration with package envoyeval.
package harness

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Doc is one YAML document of a case file.
type Doc struct {
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	// YAML is the document as written.
	YAML []byte
	// Object is the document decoded into generic JSON values.
	Object map[string]any
}

// Ref names a document for messages: Kind namespace/name.
func (d Doc) Ref() string { return d.Kind + " " + d.Namespace + "/" + d.Name }

// Case is one golden case: <name>.in.yaml, <name>.out.yaml and, when present,
// <name>.expect.yaml.
type Case struct {
	Name   string
	Input  []Doc
	Output []Doc
	// ExpectPath is the expectations file, "" when there is none.
	ExpectPath string
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// ParseDocs splits multi-document YAML and decodes each non-empty document.
func ParseDocs(data []byte) ([]Doc, error) {
	var docs []Doc
	for i, part := range docSeparator.Split(string(data), -1) {
		if strings.TrimSpace(stripComments(part)) == "" {
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(part), &obj); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		d := Doc{YAML: []byte(part), Object: obj}
		d.APIVersion, _ = obj["apiVersion"].(string)
		d.Kind, _ = obj["kind"].(string)
		if md, ok := obj["metadata"].(map[string]any); ok {
			d.Name, _ = md["name"].(string)
			d.Namespace, _ = md["namespace"].(string)
		}
		if d.Kind == "" {
			return nil, fmt.Errorf("document %d has no kind", i)
		}
		docs = append(docs, d)
	}
	return docs, nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line + "\n")
	}
	return b.String()
}

// LoadCases reads every <name>.in.yaml in dir with its .out.yaml and optional .expect.yaml.
func LoadCases(dir string) ([]Case, error) {
	ins, err := filepath.Glob(filepath.Join(dir, "*.in.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(ins)
	var cases []Case
	for _, in := range ins {
		name := strings.TrimSuffix(filepath.Base(in), ".in.yaml")
		c, err := LoadCase(dir, name)
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// LoadCase reads one case.
func LoadCase(dir, name string) (Case, error) {
	c := Case{Name: name}
	read := func(suffix string) ([]Doc, error) {
		data, err := os.ReadFile(filepath.Join(dir, name+suffix))
		if err != nil {
			return nil, err
		}
		docs, err := ParseDocs(data)
		if err != nil {
			return nil, fmt.Errorf("%s%s: %w", name, suffix, err)
		}
		return docs, nil
	}
	var err error
	if c.Input, err = read(".in.yaml"); err != nil {
		return c, err
	}
	if c.Output, err = read(".out.yaml"); err != nil {
		return c, err
	}
	if p := filepath.Join(dir, name+".expect.yaml"); fileExists(p) {
		c.ExpectPath = p
	}
	return c, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// IsIstioConfig says whether a document is Istio configuration, which istiod validates and
// turns into xDS. The CA copies of mTLS APIRules are core Secrets: the gateway reads them over
// SDS, not as configuration.
func (d Doc) IsIstioConfig() bool { return strings.Contains(d.APIVersion, ".istio.io/") }

// IstioConfig returns the documents that are Istio configuration.
func IstioConfig(docs []Doc) []Doc {
	var out []Doc
	for _, d := range docs {
		if d.IsIstioConfig() {
			out = append(out, d)
		}
	}
	return out
}

// Of returns the documents of a kind.
func Of(docs []Doc, kind string) []Doc {
	var out []Doc
	for _, d := range docs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// JoinYAML concatenates documents into one multi-document YAML stream.
func JoinYAML(docs []Doc) string {
	var b bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			b.WriteString("\n---\n")
		}
		b.Write(bytes.TrimSpace([]byte(stripComments(string(d.YAML)))))
	}
	return b.String()
}
