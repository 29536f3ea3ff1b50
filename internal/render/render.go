// Package render runs the operator offline: it reads a multi-document YAML of APIRules and
// the objects they depend on (Services, Pods, Istio Gateways and VirtualServices, the mesh
// config ConfigMap, the Secrets of mTLS APIRules, and optionally RenderOptions) into an
// in-memory store with the operator's own indexes, and takes each APIRule through what the
// cluster would do with it: the CRD's schema, the admission webhook's checks, then the
// operator's gatherer, checks and translator, exactly the code the reconciler runs. The
// objects of each served APIRule go into the store, so a later APIRule sees its host claims
// as it would in the cluster. apirulectl and the golden tests use it.
package render

import (
	"k8s.io/apimachinery/pkg/runtime/serializer"
	clienttesting "k8s.io/client-go/testing"
	"os"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/check"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/config"
	"github.com/apirule-operator/apirule-operator/internal/gather"
	"github.com/apirule-operator/apirule-operator/internal/index"
	"github.com/apirule-operator/apirule-operator/internal/kubescheme"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/pipeline"
	"github.com/apirule-operator/apirule-operator/internal/schema"
	"github.com/apirule-operator/apirule-operator/internal/slim"
	"github.com/apirule-operator/apirule-operator/internal/translate"
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
	// APIRules in input order, each with the document it was decoded from.
	APIRules []*apiv2.APIRule
	// Objects are the other objects of the input.
	Objects []client.Object
	// Options is the RenderOptions document, if the input has one.
	Options *Options
	// refusals are the schema errors of each APIRule, by index in APIRules.
	refusals map[int]field.ErrorList
	// cluster is set when the bundle was read from a cluster (LoadCluster).
	cluster *cluster
}

// DefaultNamespace is the namespace of objects that set none, as with kubectl.
const DefaultNamespace = "default"

// Load decodes a multi-document YAML stream strictly: an unknown field or an unsupported kind
// is an error naming the document.
func Load(r io.Reader) (*Bundle, error) {
	b := &Bundle{refusals: map[int]field.ErrorList{}}
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
	decode := func(obj client.Object) error {
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return fmt.Errorf("%s: %w", meta.Kind, err)
		}
		ns := obj.GetNamespace()
		defaultNamespace(&ns)
		obj.SetNamespace(ns)
		b.Objects = append(b.Objects, obj)
		return nil
	}
	switch meta.APIVersion + " " + meta.Kind {
	case apiv2.GroupVersion.String() + " APIRule":
		return b.addAPIRule(doc)
	case "v1 Service":
		return decode(&corev1.Service{})
	case "v1 Pod":
		return decode(&corev1.Pod{})
	case networkingclientv1.SchemeGroupVersion.String() + " Gateway":
		return decode(&networkingclientv1.Gateway{})
	case networkingclientv1.SchemeGroupVersion.String() + " VirtualService":
		return decode(&networkingclientv1.VirtualService{})
	case "v1 ConfigMap":
		return decode(&corev1.ConfigMap{})
	case gatewayv1beta1.GroupVersion.String() + " ReferenceGrant", gatewayv1.GroupVersion.String() + " ReferenceGrant":
		// Both versions have one schema; the store keeps the version the operator reads.
		grant := &gatewayv1beta1.ReferenceGrant{}
		if err := decode(grant); err != nil {
			return err
		}
		grant.TypeMeta = metav1.TypeMeta{}
	case "v1 Secret":
		secret := &corev1.Secret{}
		if err := decode(secret); err != nil {
			return err
		}
		for k, v := range secret.StringData {
			if secret.Data == nil {
				secret.Data = map[string][]byte{}
			}
			secret.Data[k] = []byte(v)
		}
		secret.StringData = nil
	case OptionsAPIVersion + " " + OptionsKind:
		opts := DefaultOptions()
		if err := yaml.UnmarshalStrict(doc, &opts); err != nil {
			return fmt.Errorf("RenderOptions: %w", err)
		}
		b.Options = &opts
	default:
		return fmt.Errorf("unsupported object %s %s: the input may hold APIRules (%s), Services and Pods (v1), Gateways and "+
			"VirtualServices (%s), the mesh config ConfigMap (v1), the Secrets of mTLS APIRules (v1), ReferenceGrants (%s or %s) "+
			"and RenderOptions (%s)",
			meta.APIVersion, meta.Kind, apiv2.GroupVersion, networkingclientv1.SchemeGroupVersion, gatewayv1.GroupVersion,
			gatewayv1beta1.GroupVersion, OptionsAPIVersion)
	}
	return nil
}

// addAPIRule validates an APIRule document against the CRD's schema as the API server does
// (a document it refuses is kept, with its errors, for Render to report) and decodes it.
func (b *Bundle) addAPIRule(doc []byte) error {
	raw, err := schema.Decode(doc)
	if err != nil {
		return fmt.Errorf("APIRule: %w", err)
	}
	defaulted, errs := schema.Validate(raw)
	rule := &apiv2.APIRule{}
	if len(errs) == 0 {
		if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(defaulted, rule, true); err != nil {
			return fmt.Errorf("APIRule: %w", err)
		}
	} else {
		// Only the identity of a refused APIRule is needed, to name it in the report.
		md, _ := raw["metadata"].(map[string]any)
		rule.Name, _ = md["name"].(string)
		rule.Namespace, _ = md["namespace"].(string)
		b.refusals[len(b.APIRules)] = errs
	}
	defaultNamespace(&rule.Namespace)
	b.APIRules = append(b.APIRules, rule)
	return nil
}

func defaultNamespace(ns *string) {
	if *ns == "" {
		*ns = DefaultNamespace
	}
}

// Result is the rendering of one APIRule.
type Result struct {
	APIRule *apiv2.APIRule
	Objects []translate.Object
	// Findings are the schema's and the webhook's refusals of an APIRule the API server
	// would not store; otherwise the operator's findings, which its status would show.
	Findings check.Findings
	// Refused says the API server (its schema or the webhook) would refuse the APIRule.
	Refused bool
}

// inputEpoch is the creation time given to the first APIRule of an input that sets none.
var inputEpoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// OptionsOrDefault are the bundle's RenderOptions document, or DefaultOptions when it has none.
func (b *Bundle) OptionsOrDefault() Options {
	if b.Options != nil {
		return *b.Options
	}
	return DefaultOptions()
}

// RenderFile loads one input file and renders it with its own options (OptionsOrDefault).
func RenderFile(path string) ([]Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	bundle, err := Load(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	results, err := Render(bundle, bundle.OptionsOrDefault())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return results, nil
}

// Render takes every APIRule of the bundle through admission and the operator, in input order
// (as if applied one after the other), and returns the results sorted by namespace and name.
func Render(b *Bundle, opts Options) ([]Result, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now.Time
	}
	modelOpts := opts.Translate()
	// Offline, the input stands for the cluster: a ReferenceGrant in it is the consent it
	// would be there. A cluster's grants count when it serves them, as in the operator.
	modelOpts.ReferenceGrants = b.cluster == nil || b.cluster.referenceGrants
	store, err := newStore(b, modelOpts, opts.MeshConfigKey())
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	gatherer := &gather.Gatherer{
		Reader: store, Options: modelOpts, MeshConfig: opts.MeshConfigKey(),
		Now: func() time.Time { return now },
		// A cluster's Pods are all read: none running is a finding there. Gateway certificates
		// are not read, neither from files nor from a cluster (that would fetch private keys).
		SkipPods: b.cluster == nil && !b.hasPods(), SkipCredentials: true,
	}
	var out []Result
	for i, rule := range b.APIRules {
		result := Result{APIRule: rule}
		if errs, refused := b.refusals[i]; refused {
			result.Refused, result.Findings = true, schemaFindings(errs)
			out = append(out, result)
			continue
		}
		// A cluster's APIRule is already stored: the webhook sees it as an update that
		// changes nothing, which lets its hosts pass to the operator's own host check.
		var old *apiv2.APIRule
		if b.cluster != nil {
			old = rule
		}
		admission, err := gather.Admission(ctx, store, rule, old, modelOpts, opts.MeshConfigKey())
		if err != nil {
			return nil, err
		}
		if admission.HasErrors() {
			result.Refused, result.Findings = true, admission
			out = append(out, result)
			continue
		}
		stored := rule
		if b.cluster == nil {
			// Input order is creation order: an earlier APIRule is the older owner of what
			// both claim, as it would be in the cluster.
			stored = rule.DeepCopy()
			if stored.CreationTimestamp.IsZero() {
				stored.CreationTimestamp = metav1.NewTime(inputEpoch.Add(time.Duration(i) * time.Second))
			}
			if err := store.Create(ctx, stored); err != nil {
				return nil, fmt.Errorf("APIRule %s/%s: %w", rule.Namespace, rule.Name, err)
			}
		}
		in, err := gatherer.Gather(ctx, stored)
		if err != nil {
			return nil, err
		}
		run := pipeline.Run(in)
		result.Findings = run.Findings
		if b.cluster == nil {
			result.Findings = explainMissing(run.Findings)
		}
		result.Objects = apply.InApplyOrder(run.Objects.All())
		for _, obj := range result.Objects {
			// In a cluster the operator's objects are there already: the rendering replaces
			// them, as the operator's apply would.
			if err := storeObject(ctx, store, obj, b.cluster != nil); err != nil {
				return nil, err
			}
		}
		out = append(out, result)
	}
	slices.SortStableFunc(out, func(x, y Result) int {
		return strings.Compare(x.APIRule.Namespace+"/"+x.APIRule.Name, y.APIRule.Namespace+"/"+y.APIRule.Name)
	})
	return out, nil
}

func (b *Bundle) hasPods() bool {
	return slices.ContainsFunc(b.Objects, func(obj client.Object) bool { _, ok := obj.(*corev1.Pod); return ok })
}

// newStore is an in-memory client holding the input, with the operator's indexes.
func newStore(b *Bundle, opts model.Options, meshConfig types.NamespacedName) (client.Client, error) {
	scheme, err := kubescheme.New()
	if err != nil {
		return nil, err
	}
	// A tracker without field management: the fake client's default one cannot walk the Go
	// types of Istio's protobuf-based objects, and nothing here applies.
	tracker := clienttesting.NewObjectTracker(scheme, serializer.NewCodecFactory(scheme).UniversalDecoder())
	defs := index.Definitions(opts, meshConfig)
	builder := fake.NewClientBuilder().WithScheme(scheme).WithObjectTracker(tracker)
	for _, d := range defs {
		builder = builder.WithIndex(d.Object, d.Index.Field(), d.Stored)
	}
	// The fake client matches index values in any namespace; the operator's cache does not.
	checkScope := index.ScopeCheck(defs)
	builder = builder.WithInterceptorFuncs(interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			if err := checkScope((&client.ListOptions{}).ApplyOptions(opts)); err != nil {
				return err
			}
			return c.List(ctx, list, opts...)
		},
	})
	store := builder.Build()
	objects := b.Objects
	if b.cluster != nil {
		// The operator's cache holds every APIRule of the cluster from the start: the checks
		// across APIRules see them all, whatever their order.
		for _, rule := range b.APIRules {
			objects = append(objects, rule)
		}
	}
	for _, obj := range objects {
		if pod, ok := obj.(*corev1.Pod); ok {
			// As the operator's cache holds it: the checks read the marks of its sidecar and
			// its end (slim.PodHasSidecar, slim.PodFinished).
			slimmed, _ := slim.Pod(pod)
			obj = slimmed.(client.Object)
		}
		if err := storeObject(context.Background(), store, obj, false); err != nil {
			return nil, err
		}
	}
	return store, nil
}

// storeObject adds a copy of an object to the store; with replace, it replaces the object of
// that name if there is one.
func storeObject(ctx context.Context, store client.Client, obj client.Object, replace bool) error {
	copied := obj.DeepCopyObject().(client.Object)
	err := store.Create(ctx, copied)
	if apierrors.IsAlreadyExists(err) && replace {
		current := obj.DeepCopyObject().(client.Object)
		if err = store.Get(ctx, client.ObjectKeyFromObject(obj), current); err == nil {
			copied = obj.DeepCopyObject().(client.Object)
			copied.SetResourceVersion(current.GetResourceVersion())
			err = store.Update(ctx, copied)
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s/%s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// schemaFindings are the schema's refusals, as the API server reports them.
func schemaFindings(errs field.ErrorList) check.Findings {
	out := make(check.Findings, 0, len(errs))
	for _, e := range errs {
		f := check.Finding{
			Severity: check.Error, Condition: conditions.Accepted, Reason: conditions.ReasonInvalidSpec,
			Value: e.BadValue, Message: e.ErrorBody(),
		}
		if e.Field != "" {
			f.Field = field.NewPath(e.Field)
		}
		out = append(out, f)
	}
	return out
}

// explainMissing adds to each unresolved reference what to add to the input: offline, the
// only cluster is the input file.
func explainMissing(findings check.Findings) check.Findings {
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

// JSON renders the objects of all results as one v1 List, the form kubectl reads and prints:
// the items in the order YAML gives them, each as the operator would apply it, with sorted
// keys and a trailing newline.
func JSON(results []Result) ([]byte, error) {
	items := []any{}
	for _, obj := range Objects(results) {
		u, err := manifest.ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		items = append(items, u.Object)
	}
	out, err := json.MarshalIndent(map[string]any{"apiVersion": "v1", "kind": "List", "items": items}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
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
		if r.Findings.HasErrors() {
			return true
		}
	}
	return false
}
