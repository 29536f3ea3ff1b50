// Package schema applies the APIRule CRD's OpenAPI schema and CEL rules offline, as the API
// server applies them when an APIRule is created, so that apirulectl refuses exactly what the
// cluster refuses, with the same field paths and messages.
//
// It uses the API server's own code (k8s.io/apiextensions-apiserver) on the CRD that
// 'make manifests' generates (embedded by config/crd), in the order of the server's create
// path:
//
//  1. decoding: unknown fields are reported (the server's fieldValidation=Strict, which kubectl
//     apply and create use by default), null values of non-nullable fields are dropped, and
//     metadata must decode into ObjectMeta;
//  2. defaulting with the schema's defaults;
//  3. preparing the create: status is dropped (the CRD has a status subresource) and an object
//     without a namespace is placed in "default", as kubectl would submit it;
//  4. validation: apiVersion and kind, ObjectMeta (name, namespace, labels, ...), the OpenAPI
//     schema (types, enums, patterns, formats, bounds, required), embedded resources, list
//     sets and maps (duplicates), and the CEL rules, including the one on metadata.name; as
//     on the server, the CEL rules are skipped when the schema already reports a type, enum,
//     required or size error, and a cause says so.
//
// The verdict is that of an API server of the Kubernetes minor version of the k8s.io modules
// in go.mod (v0.N is 1.N), the version the envtest suites run: tests/crd submits every case of
// its tables both here and to that server and requires the same causes. Other versions may
// differ in CEL functions, cost limits and wording. What the server checks beyond the CRD is
// not covered: admission (webhooks, policies, the namespace existing), name conflicts, quota.
//
// The package is pure: no client, no cluster. It never imports controller-runtime or client-go.
package schema

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structurallisttype "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/listtype"
	schemaobjectmeta "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/objectmeta"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/api/operation"
	metavalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/features"
	utilfeature "k8s.io/apiserver/pkg/util/feature"
	"sigs.k8s.io/yaml"

	"github.com/apirule-operator/apirule-operator/config/crd"
)

// DefaultNamespace is the namespace an APIRule without metadata.namespace is validated in: the
// namespace kubectl submits it to when the context sets none.
const DefaultNamespace = "default"

// UnknownField is the Detail of the error Validate reports for a field the schema does not
// know. The server, with fieldValidation=Strict, refuses such an object with a 400 Bad Request
// whose message lists the fields (strict decoding error: unknown field "spec.x", ...), before
// any other validation; Validate reports one Forbidden error per field, on its path, and
// nothing else, for the same reason.
const UnknownField = "unknown field"

// validator is the compiled CRD: what the API server builds once per CRD version.
type validator struct {
	kind       schema.GroupVersionKind
	structural *structuralschema.Structural
	schema     apiservervalidation.SchemaValidator
	// cel is nil when the schema has no CEL rule.
	cel *cel.Validator
}

// compiled compiles the embedded CRD once: the CEL programs are the expensive part, and the
// server too compiles them once per CRD, not per request.
var compiled = sync.OnceValues(func() (*validator, error) { return compile(crd.APIRules) })

// compile builds the validators from a CRD manifest as the API server's CRD handler does for
// its storage version.
func compile(manifest []byte) (*validator, error) {
	def := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(manifest, def); err != nil {
		return nil, fmt.Errorf("decoding the CRD: %w", err)
	}
	var version *apiextensionsv1.CustomResourceDefinitionVersion
	for i := range def.Spec.Versions {
		if v := &def.Spec.Versions[i]; v.Storage {
			version = v
		}
	}
	if version == nil || version.Schema == nil || version.Schema.OpenAPIV3Schema == nil {
		return nil, errors.New("the CRD has no storage version with a schema")
	}
	if def.Spec.Scope != apiextensionsv1.NamespaceScoped || version.Subresources == nil || version.Subresources.Status == nil {
		// validate assumes both (the namespace default, dropping status); a CRD change that
		// breaks them must fail loudly here rather than validate differently from the server.
		return nil, errors.New("the CRD is expected to be namespaced with a status subresource")
	}
	internal := &apiextensions.CustomResourceValidation{}
	if err := apiextensionsv1.Convert_v1_CustomResourceValidation_To_apiextensions_CustomResourceValidation(version.Schema, internal, nil); err != nil {
		return nil, fmt.Errorf("converting the schema of %s: %w", version.Name, err)
	}
	structural, err := structuralschema.NewStructural(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("the schema of %s is not structural: %w", version.Name, err)
	}
	// The server defaults with a copy whose defaults are pruned of unknown fields.
	structural = structural.DeepCopy()
	if err := structuraldefaulting.PruneDefaults(structural); err != nil {
		return nil, fmt.Errorf("pruning the defaults of %s: %w", version.Name, err)
	}
	schemaValidator, _, err := apiservervalidation.NewSchemaValidator(internal.OpenAPIV3Schema)
	if err != nil {
		return nil, fmt.Errorf("building the schema validator of %s: %w", version.Name, err)
	}
	return &validator{
		kind:       schema.GroupVersionKind{Group: def.Spec.Group, Version: version.Name, Kind: def.Spec.Names.Kind},
		structural: structural,
		schema:     schemaValidator,
		// isResourceRoot: the rules see apiVersion, kind and metadata.name at the root.
		cel: cel.NewValidator(structural, true, celconfig.PerCallLimit),
	}, nil
}

// Validate applies the CRD's defaults, structural schema and CEL rules to obj, an APIRule as
// decoded from YAML or JSON (see Decode), as the API server does when it is created. It returns
// the object as the server would store it (pruned, defaulted, without status, with a
// namespace; without the fields the server sets itself, such as uid or generation) and the
// errors the server would give, each with the field path, type and message of the server's
// cause: for every error e, e.Field is the cause's field and e.ErrorBody() its message.
//
// obj is not modified. Its numbers may be of any Go numeric type: obj is encoded as JSON and
// decoded again, as the server receives it, so that 8000 from a YAML decoder (a float64) is the
// integer the server sees. The returned object is meaningful only without errors; decode it
// strictly into the Go type then.
//
// The first call compiles the CRD (about the cost of a few validations); Validate is safe for
// concurrent use, as the server's validators are.
func Validate(obj map[string]any) (map[string]any, field.ErrorList) {
	v, err := compiled()
	if err != nil {
		return nil, field.ErrorList{field.InternalError(nil, err)}
	}
	return v.validate(obj)
}

// Decode decodes one YAML or JSON document as kubectl sends it and the server reads it: YAML
// is converted to JSON, duplicate keys are an error (the server's strict decoding), and
// numbers are int64 when integral and float64 otherwise.
func Decode(doc []byte) (map[string]any, error) {
	raw, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	return obj, nil
}

func (v *validator) validate(in map[string]any) (map[string]any, field.ErrorList) {
	obj, err := roundTrip(in)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(nil, nil, fmt.Sprintf("the object cannot be encoded as JSON: %v", err))}
	}

	// 1. Decoding (the server's schemaCoercingDecoder).
	unknown, errs := v.decode(obj)
	if len(errs) > 0 {
		return obj, errs
	}
	if len(unknown) > 0 {
		for _, p := range unknown {
			errs = append(errs, &field.Error{Type: field.ErrorTypeForbidden, Field: p, BadValue: "", Detail: UnknownField})
		}
		return obj, errs
	}

	// 2. Defaulting (the server's unstructuredDefaulter).
	structuraldefaulting.Default(obj, v.structural)

	// 3. Preparing the create (rest.BeforeCreate and the strategy's PrepareForCreate).
	delete(obj, "status")
	restoreName := prepareMetadata(obj)

	// 4. Validation (the strategy's Validate, then rest.ValidateCreate's path-segment check).
	errs = v.validateCreate(obj)
	restoreName()
	return obj, errs
}

// decode prunes unknown fields, returning their paths, drops nulls the schema does not allow
// and coerces metadata, as the server does while decoding the request body. The errors are
// those the server answers with a 400 Bad Request and a message; they are reported on the
// field that failed.
func (v *validator) decode(obj map[string]any) ([]string, field.ErrorList) {
	kind, foundKind, err := unstructured.NestedString(obj, "kind")
	if err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("kind"), obj["kind"], err.Error())}
	}
	apiVersion, foundAPIVersion, err := unstructured.NestedString(obj, "apiVersion")
	if err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("apiVersion"), obj["apiVersion"], err.Error())}
	}
	meta, foundMeta, unknown, err := schemaobjectmeta.GetObjectMetaWithOptions(obj, schemaobjectmeta.ObjectMetaOptions{ReturnUnknownFieldPaths: true})
	if err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), obj["metadata"], err.Error())}
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("apiVersion"), apiVersion, err.Error())}
	}
	// As on the server, only an object of the CRD's group and kind is pruned; any other is
	// refused by the type check of validateCreate.
	if gv.Group == v.kind.Group && kind == v.kind.Kind {
		opts := structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true}
		unknown = append(unknown, structuralpruning.PruneWithOptions(obj, v.structural, true, opts)...)
		structuraldefaulting.PruneNonNullableNullsWithoutDefaults(obj, v.structural)
		coerceErr, paths := schemaobjectmeta.CoerceWithOptions(nil, obj, v.structural, false, schemaobjectmeta.CoerceOptions{ReturnUnknownFieldPaths: true})
		if coerceErr != nil {
			return nil, field.ErrorList{coerceErr}
		}
		unknown = append(unknown, paths...)
	}
	// The server then writes the type and metadata back as decoded: metadata in the form
	// ObjectMeta serializes to.
	if foundKind {
		obj["kind"] = kind
	}
	if foundAPIVersion {
		obj["apiVersion"] = apiVersion
	}
	if foundMeta {
		if err := schemaobjectmeta.SetObjectMeta(obj, meta); err != nil {
			return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), nil, err.Error())}
		}
	}
	return unknown, nil
}

// prepareMetadata does what the server does to metadata before validating a create: it puts
// an object without a namespace in the request's namespace, DefaultNamespace offline, and
// generates a name from generateName. The generated name ends in five characters of the
// server's random alphabet; which ones does not change the verdict (they are lower-case
// letters and digits either way), so a fixed suffix keeps the messages reproducible. The
// returned function removes the generated name again: the name the server would pick cannot
// be known offline.
func prepareMetadata(obj map[string]any) (restoreName func()) {
	meta, ok := obj["metadata"].(map[string]any)
	if !ok {
		meta = map[string]any{}
		obj["metadata"] = meta
	}
	if ns, _ := meta["namespace"].(string); ns == "" {
		meta["namespace"] = DefaultNamespace
	}
	name, _ := meta["name"].(string)
	base, _ := meta["generateName"].(string)
	if name != "" || base == "" {
		return func() {}
	}
	const maxBase = 63 - 5 // the server's name generator: at most 63 characters in all
	if len(base) > maxBase {
		base = base[:maxBase]
	}
	meta["name"] = base + "xxxxx"
	return func() { delete(meta, "name") }
}

// validateCreate is the CRD strategy's Validate for a create, followed by the path-segment
// check the server adds when the strategy found nothing.
func (v *validator) validateCreate(obj map[string]any) field.ErrorList {
	if errs := v.validateTypeMeta(obj); len(errs) > 0 {
		return errs
	}
	ctx := context.Background()
	meta, errs := objectMeta(obj)
	if len(errs) > 0 {
		return errs
	}
	errs = append(errs, metavalidation.ValidateObjectMetaDeclaratively(ctx, operation.Create, meta, nil, true,
		metavalidation.NameIsDNSSubdomain, field.NewPath("metadata"), utilfeature.DefaultFeatureGate.Enabled(features.DeclarativeValidationBeta))...)
	errs = append(errs, apiservervalidation.ValidateCustomResource(nil, obj, v.schema)...)
	errs = append(errs, schemaobjectmeta.Validate(ctx, nil, obj, v.structural, false)...)
	errs = append(errs, structurallisttype.ValidateListSetsAndMaps(nil, v.structural, obj)...)
	if v.cel != nil {
		if blocking := blockingError(errs); blocking != nil {
			errs = append(errs, blocking)
		} else {
			celErrs, _ := v.cel.Validate(ctx, nil, v.structural, obj, nil, celconfig.RuntimeCELCostBudget)
			errs = append(errs, celErrs...)
		}
	}
	if len(errs) == 0 {
		errs = metavalidation.ValidateObjectMetaAccessor(meta, true, path.ValidatePathSegmentName, field.NewPath("metadata")) //nolint:staticcheck // SA1019: the API server's generic registry still runs this exact check on create
	}
	return errs
}

func (v *validator) validateTypeMeta(obj map[string]any) field.ErrorList {
	kind, _ := obj["kind"].(string)
	apiVersion, _ := obj["apiVersion"].(string)
	var errs field.ErrorList
	if kind != v.kind.Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), kind, fmt.Sprintf("must be %v", v.kind.Kind)))
	}
	if want := v.kind.GroupVersion().String(); apiVersion != want {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), apiVersion, fmt.Sprintf("must be %v", want)))
	}
	return errs
}

// blockingError is the server's rule for skipping the CEL rules: after a type, enum, required
// or size error their inputs may not have the types the rules were compiled for.
func blockingError(errs field.ErrorList) *field.Error {
	for _, err := range errs {
		switch err.Type {
		case field.ErrorTypeNotSupported, field.ErrorTypeRequired, field.ErrorTypeTooLong, field.ErrorTypeTooMany, field.ErrorTypeTypeInvalid:
			return field.Invalid(nil, nil, "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation")
		}
	}
	return nil
}

// roundTrip copies obj through JSON, the form the server receives: every number becomes an
// int64 or a float64, and typed values (a []string, a struct) become JSON values.
func roundTrip(obj map[string]any) (map[string]any, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := utiljson.Unmarshal(raw, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = map[string]any{}
	}
	return out, nil
}

// objectMeta reads metadata as the strategy's validator does.
func objectMeta(obj map[string]any) (*metav1.ObjectMeta, field.ErrorList) {
	raw := obj["metadata"]
	if raw == nil {
		return &metav1.ObjectMeta{}, nil
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, fmt.Sprintf("expected map[string]interface{}, got %T", raw))}
	}
	meta := &metav1.ObjectMeta{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, meta); err != nil {
		return nil, field.ErrorList{field.Invalid(field.NewPath("metadata"), raw, err.Error())}
	}
	return meta, nil
}
