// Package manifest turns generated objects into the exact form the operator applies, and
// renders them as YAML. The operator, apirulectl and the golden tests share it, so what is
// reviewed is byte for byte what is applied.
package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"
)

// Object is a generated object: typed, with apiVersion and kind set.
type Object interface {
	GetNamespace() string
	GetName() string
	GetObjectKind() schema.ObjectKind
}

// ToUnstructured converts a typed object into the unstructured form server-side apply sends.
// Istio specs are protobuf messages with their own JSON encoding, so the conversion goes
// through JSON. Status and creationTimestamp are dropped: the operator does not own them.
func ToUnstructured(obj Object) (*unstructured.Unstructured, error) {
	raw, err := Encode(obj)
	if err != nil {
		return nil, err
	}
	return Decode(obj, raw)
}

// Encode is the JSON encoding of a typed object that ToUnstructured decodes.
func Encode(obj Object) ([]byte, error) {
	gvk := obj.GetObjectKind().GroupVersionKind()
	if gvk.Empty() {
		return nil, fmt.Errorf("object %s/%s has no apiVersion and kind", obj.GetNamespace(), obj.GetName())
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, fmt.Errorf("encoding %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return raw, nil
}

// Decode is the unstructured form of obj from its encoding (Encode).
func Decode(obj Object, raw []byte) (*unstructured.Unstructured, error) {
	content := map[string]any{}
	if err := json.Unmarshal(raw, &content); err != nil {
		return nil, fmt.Errorf("decoding %s %s/%s: %w", obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	delete(content, "status")
	if m, ok := content["metadata"].(map[string]any); ok {
		delete(m, "creationTimestamp")
	}
	return &unstructured.Unstructured{Object: content}, nil
}

// YAML renders the objects as one multi-document YAML stream, in the given order, with
// sorted keys.
func YAML[T Object](objects []T) ([]byte, error) {
	var out bytes.Buffer
	for _, obj := range objects {
		u, err := ToUnstructured(obj)
		if err != nil {
			return nil, err
		}
		raw, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(raw)
	}
	return out.Bytes(), nil
}
