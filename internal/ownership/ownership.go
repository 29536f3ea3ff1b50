// Package ownership defines how generated objects are tied to the APIRule they come from:
// owner labels on every child, deterministic child names, and the field manager name.
package ownership

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
)

const (
	// FieldManager owns every field the operator writes with server-side apply.
	FieldManager = "apirule-operator"

	// LabelName and LabelNamespace name the APIRule a child belongs to. Children in another
	// namespace cannot carry an ownerReference, so these labels are what finds them.
	LabelName      = "apirule.io/name"
	LabelNamespace = "apirule.io/namespace"

	// LabelManagedBy marks every generated object so caches can select only those.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "apirule-operator"

	// Finalizer is set on an APIRule before its first child is written; it removes the
	// children, routes first, when the APIRule is deleted.
	Finalizer = "gateway.apirule.io/children"

	// maxNameLength keeps generated names within the 63 characters of a DNS label so they are
	// valid for every kind we emit and can be used as label values.
	maxNameLength = 63
	hashLength    = 10
)

// EnforcementLabels and EnforcementAnnotations are the labels and annotations by which Istio
// enforces a configuration object differently, or not at all: istio.io/rev hides it from
// every istiod of another revision, istio.io/dry-run makes an AuthorizationPolicy one whose
// decisions are only logged. The operator sets none of them, and a generated object that
// carries one is not the desired object: whoever set it (a person, a mutating webhook) would
// have switched a policy off. They are kept in the operator's cache and removed from the
// object like any other drift.
var (
	EnforcementLabels      = []string{"istio.io/rev"}
	EnforcementAnnotations = []string{"istio.io/dry-run"}
)

// Labels returns the labels every child of the APIRule carries.
func Labels(owner types.NamespacedName) map[string]string {
	return map[string]string{
		LabelName:      owner.Name,
		LabelNamespace: owner.Namespace,
		LabelManagedBy: ManagedByValue,
	}
}

// ManagedSelector selects every object the operator generated.
func ManagedSelector() labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelManagedBy: ManagedByValue})
}

// ChildName returns <apirule>-<purpose>-<hash>. The hash covers the owner's namespace and name
// and the parts that distinguish children of the same purpose, so names are stable across
// reconciles, unique per owner even when the name had to be shortened, and distinct for two
// APIRules of the same name in different namespaces that place children in one namespace.
func ChildName(owner types.NamespacedName, purpose string, parts ...string) string {
	h := sha256.New()
	for _, p := range append([]string{owner.Namespace, owner.Name, purpose}, parts...) {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := hex.EncodeToString(h.Sum(nil))[:hashLength]
	suffix := "-" + purpose + "-" + sum
	prefix := owner.Name
	if room := maxNameLength - len(suffix); len(prefix) > room {
		prefix = strings.TrimRight(prefix[:room], "-.")
	}
	return prefix + suffix
}

// OwnerFromLabels returns the APIRule a generated object belongs to, from its owner labels.
func OwnerFromLabels(objLabels map[string]string) (types.NamespacedName, bool) {
	name, namespace := objLabels[LabelName], objLabels[LabelNamespace]
	if name == "" || namespace == "" || objLabels[LabelManagedBy] != ManagedByValue {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: namespace, Name: name}, true
}
