// Package render translates APIRules offline: it reads a multi-document YAML of APIRules and
// the objects they depend on (Services, Istio Gateways, the mesh config ConfigMap, and
// optionally RenderOptions) and produces the same objects the operator would apply.
// apirulectl and the golden tests use it.
package render

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/config"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/translate"
	"github.com/apirule-operator/apirule-operator/internal/validate"
)

// OptionsAPIVersion and OptionsKind identify a RenderOptions document.
const (
	OptionsAPIVersion = "apirulectl.apirule.io/v1"
	OptionsKind       = "RenderOptions"
)

// Options are the operator settings a rendering uses. A RenderOptions document in the input
// sets them; command-line flags override it.
type Options struct {
	APIVersion      string `json:"apiVersion"`
	Kind            string `json:"kind"`
	config.Settings `json:",inline"`
	// Now is the time certificates are checked against; the current time when unset.
	Now *metav1.Time `json:"now,omitempty"`
}

// DefaultOptions are the operator's defaults.
func DefaultOptions() Options {
	return Options{APIVersion: OptionsAPIVersion, Kind: OptionsKind, Settings: config.Defaults()}
}

// Bundle is a decoded input.
type Bundle struct {
	APIRules   []*apiv2.APIRule
	Gateways   map[types.NamespacedName]*translate.Gateway
	Services   map[types.NamespacedName]translate.Service
	ConfigMaps map[types.NamespacedName]*corev1.ConfigMap
	Secrets    map[types.NamespacedName]*translate.Secret
	// Options is the RenderOptions document, if the input has one.
	Options *Options
}

// DefaultNamespace is the namespace of objects that set none, as with kubectl.
const DefaultNamespace = "default"

// Load decodes a multi-document YAML stream strictly: an unknown field or an unsupported kind
// is an error naming the document.
func Load(r io.Reader) (*Bundle, error) {
	b := &Bundle{
		Gateways:   map[types.NamespacedName]*translate.Gateway{},
		Services:   map[types.NamespacedName]translate.Service{},
		ConfigMaps: map[types.NamespacedName]*corev1.ConfigMap{},
		Secrets:    map[types.NamespacedName]*translate.Secret{},
	}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for n := 1; ; n++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		if err := b.add(doc); err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
	}
	return b, nil
}

func stripComments(doc []byte) []byte {
	var out bytes.Buffer
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

func (b *Bundle) add(doc []byte) error {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return err
	}
	switch meta.APIVersion + " " + meta.Kind {
	case apiv2.GroupVersion.String() + " APIRule":
		rule := &apiv2.APIRule{}
		if err := yaml.UnmarshalStrict(doc, rule); err != nil {
			return fmt.Errorf("APIRule: %w", err)
		}
		defaultNamespace(&rule.Namespace)
		b.APIRules = append(b.APIRules, rule)
	case "v1 Service":
		svc := &corev1.Service{}
		if err := yaml.UnmarshalStrict(doc, svc); err != nil {
			return fmt.Errorf("Service: %w", err) //nolint:staticcheck // ST1005: the error starts with the kind, spelled as in YAML
		}
		defaultNamespace(&svc.Namespace)
		b.Services[types.NamespacedName{Namespace: svc.Namespace, Name: svc.Name}] = translate.ServiceFromCore(svc)
	case networkingclientv1.SchemeGroupVersion.String() + " Gateway":
		gw := &networkingclientv1.Gateway{}
		if err := yaml.UnmarshalStrict(doc, gw); err != nil {
			return fmt.Errorf("Gateway: %w", err) //nolint:staticcheck // ST1005: the error starts with the kind, spelled as in YAML
		}
		defaultNamespace(&gw.Namespace)
		b.Gateways[types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}] = translate.GatewayFromIstio(gw)
	case "v1 ConfigMap":
		cm := &corev1.ConfigMap{}
		if err := yaml.UnmarshalStrict(doc, cm); err != nil {
			return fmt.Errorf("ConfigMap: %w", err)
		}
		defaultNamespace(&cm.Namespace)
		b.ConfigMaps[types.NamespacedName{Namespace: cm.Namespace, Name: cm.Name}] = cm
	case "v1 Secret":
		secret := &corev1.Secret{}
		if err := yaml.UnmarshalStrict(doc, secret); err != nil {
			return fmt.Errorf("Secret: %w", err) //nolint:staticcheck // ST1005: the error starts with the kind, spelled as in YAML
		}
		defaultNamespace(&secret.Namespace)
		for k, v := range secret.StringData {
			if secret.Data == nil {
				secret.Data = map[string][]byte{}
			}
			secret.Data[k] = []byte(v)
		}
		b.Secrets[types.NamespacedName{Namespace: secret.Namespace, Name: secret.Name}] = translate.SecretFromCore(secret)
	case OptionsAPIVersion + " " + OptionsKind:
		opts := DefaultOptions()
		if err := yaml.UnmarshalStrict(doc, &opts); err != nil {
			return fmt.Errorf("RenderOptions: %w", err)
		}
		b.Options = &opts
	default:
		return fmt.Errorf("unsupported object %s %s: the input may hold APIRules (%s), Services (v1), Gateways (%s), "+
			"the mesh config ConfigMap (v1), the Secrets of mTLS APIRules (v1) and RenderOptions (%s)",
			meta.APIVersion, meta.Kind, apiv2.GroupVersion, networkingclientv1.SchemeGroupVersion, OptionsAPIVersion)
	}
	return nil
}

func defaultNamespace(ns *string) {
	if *ns == "" {
		*ns = DefaultNamespace
	}
}

// Result is the rendering of one APIRule.
type Result struct {
	APIRule  *apiv2.APIRule
	Objects  []translate.Object
	Findings translate.Findings
}

// Render translates every APIRule of the bundle, sorted by namespace and name.
func Render(b *Bundle, opts Options) ([]Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now.Time
	}
	mesh, err := b.mesh(opts)
	if err != nil {
		return nil, err
	}
	rules := slices.Clone(b.APIRules)
	slices.SortFunc(rules, func(x, y *apiv2.APIRule) int {
		return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
	})
	translateOpts := opts.Translate()
	var out []Result
	for _, rule := range rules {
		in := translate.Input{APIRule: rule, Services: b.Services, Mesh: mesh, Options: translateOpts, Now: now}
		if ref, ok := translate.GatewayRef(rule, translateOpts); ok {
			in.Gateway = b.Gateways[ref]
		}
		if rule.Spec.MTLS != nil {
			credential, ca, caCopy := translate.MTLSSecretRefs(rule, translateOpts)
			in.MTLS = &translate.MTLSSecrets{Credential: b.Secrets[credential], CA: b.Secrets[ca], CACopy: b.Secrets[caCopy]}
			for _, gw := range b.Gateways {
				in.OtherGateways = append(in.OtherGateways, *gw)
			}
			slices.SortFunc(in.OtherGateways, func(x, y translate.Gateway) int {
				return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
			})
		}
		result := validate.Translate(in)
		out = append(out, Result{APIRule: rule, Objects: result.Objects.InApplyOrder(), Findings: explainMissing(result.Findings)})
	}
	return out, nil
}

// mesh returns the extension providers of the mesh config ConfigMap in the input, or nil when
// the input has none.
func (b *Bundle) mesh(opts Options) (*translate.MeshConfig, error) {
	key := opts.MeshConfigKey()
	cm, ok := b.ConfigMaps[key]
	if !ok {
		return nil, nil
	}
	mesh, err := meshconfig.Parse(cm.Data[meshconfig.Key])
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s: %w", key, err)
	}
	return mesh, nil
}

// explainMissing adds to each unresolved reference what to add to the input: offline, the
// only cluster is the input file.
func explainMissing(findings translate.Findings) translate.Findings {
	out := slices.Clone(findings)
	for i, f := range out {
		if f.Condition != conditions.ResolvedRefs {
			continue
		}
		switch f.Reason {
		case conditions.ReasonGatewayNotFound:
			out[i].Message += " (offline: add the Gateway to the input)"
		case conditions.ReasonServiceNotFound:
			out[i].Message += " (offline: add the Service to the input)"
		case conditions.ReasonMeshConfigNotFound:
			out[i].Message += " (offline: add the mesh config ConfigMap to the input)"
		case conditions.ReasonSecretNotFound:
			out[i].Message += " (offline: add the Secret to the input)"
		}
	}
	return out
}

// Objects returns the objects of all results, in order.
func Objects(results []Result) []translate.Object {
	var out []translate.Object
	for _, r := range results {
		out = append(out, r.Objects...)
	}
	return out
}

// YAML renders the objects of all results as the operator would apply them.
func YAML(results []Result) ([]byte, error) {
	return manifest.YAML(Objects(results))
}

// FindingLines formats every finding as "<severity> <namespace>/<name>: <field>: <message>
// [<reason>]", one per line.
func FindingLines(results []Result) []string {
	var out []string
	for _, r := range results {
		for _, f := range r.Findings {
			out = append(out, fmt.Sprintf("%s %s/%s: %s: %s [%s/%s]", f.Severity, r.APIRule.Namespace, r.APIRule.Name,
				f.Field, f.Message, f.Condition, f.Reason))
		}
	}
	return out
}

// HasErrors says whether any finding blocks an APIRule.
func HasErrors(results []Result) bool {
	for _, r := range results {
		if len(r.Findings.Errors()) > 0 {
			return true
		}
	}
	return false
}
