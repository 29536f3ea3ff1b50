// Package apply writes desired objects under one field manager, new ones with a create and
// changed ones with server-side apply, in an order that never exposes a route before the
// policies that protect it, makes them exactly what the translator computed, and prunes
// children that are no longer desired.
package apply

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// Applier applies and prunes the children of APIRules. Its client reads from the cache.
type Applier struct {
	Client client.Client
	// Creator creates the objects the cache does not know; nil: Client does.
	Creator Creator
}

// Result counts what a call changed.
type Result struct {
	// Applied and Pruned count objects by kind.
	Applied map[string]int
	Pruned  map[string]int
}

func (r *Result) count(into *map[string]int, kind string) {
	if *into == nil {
		*into = map[string]int{}
	}
	(*into)[kind]++
}

// Apply writes the objects, sorted by the apply rank of their kind, and stops at the first
// failure, so an object later in the order (a route) is never written when one before it
// (its policy) was not. An object whose cached version already has the desired labels, owner
// references and exactly the desired state is not sent at all: a settled APIRule costs no
// API request.
func (a *Applier) Apply(ctx context.Context, objects []client.Object) (Result, error) {
	var result Result
	ordered := InApplyOrder(objects)
	encoded := make([]*desiredObject, 0, len(ordered))
	// Every object is encoded and its kind checked before the first write, so a bad object
	// fails the call before anything is written.
	for _, obj := range ordered {
		d, err := encode(obj)
		if err != nil {
			return result, err
		}
		encoded = append(encoded, d)
	}
	for _, d := range encoded {
		obj, kind := d.obj, d.kind.GVK.Kind
		current := obj.DeepCopyObject().(client.Object)
		switch err := a.Client.Get(ctx, client.ObjectKeyFromObject(obj), current); {
		case err == nil:
			// A typed read through a client without a cache leaves apiVersion and kind empty.
			current.GetObjectKind().SetGroupVersionKind(d.kind.GVK)
			upToDate, err := d.matches(current)
			if err != nil {
				return result, err
			}
			if upToDate {
				continue
			}
		case !apierrors.IsNotFound(err):
			return result, fmt.Errorf("reading %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
		default:
			switch created, err := a.create(ctx, d); {
			case err != nil:
				return result, fmt.Errorf("creating %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
			case created:
				result.count(&result.Applied, kind)
				continue
			}
		}
		desired, err := d.unstructured()
		if err != nil {
			return result, err
		}
		if err := a.write(ctx, desired); err != nil {
			return result, fmt.Errorf("applying %s %s/%s: %w", kind, obj.GetNamespace(), obj.GetName(), err)
		}
		result.count(&result.Applied, kind)
	}
	return result, nil
}

// desiredObject is an object to apply, encoded once: its JSON, from which the digest of its
// state is read, and its unstructured form, decoded only when a write or a comparison field
// by field needs it. A settled child of a kind cached as a digest is verified from the JSON
// alone.
type desiredObject struct {
	obj  client.Object
	kind Kind
	json []byte
	u    *unstructured.Unstructured
}

func encode(obj client.Object) (*desiredObject, error) {
	raw, err := manifest.Encode(obj)
	if err != nil {
		return nil, err
	}
	gvk := obj.GetObjectKind().GroupVersionKind()
	kind, known := KindOf(gvk)
	if !known {
		return nil, fmt.Errorf("%s %s/%s: not a kind of generated object", gvk.Kind, obj.GetNamespace(), obj.GetName())
	}
	return &desiredObject{obj: obj, kind: kind, json: raw}, nil
}

func (d *desiredObject) unstructured() (*unstructured.Unstructured, error) {
	if d.u == nil {
		u, err := manifest.Decode(d.obj, d.json)
		if err != nil {
			return nil, err
		}
		d.u = u
	}
	return d.u, nil
}

// create writes an object the cache does not know with a POST, which costs the API server
// less than a server-side apply, whose body it parses as YAML and merges by the schema
// (docs/performance.md has the figures). The body is the encoding the digests are read from,
// and the object the API server stored is checked from the JSON of the reply
// (storedAsSent), as write checks an applied one. false without an error: write must make the object desired,
// because it existed after all (the cache was behind, or someone else created it) or because
// what was stored differs from what was sent (an admission webhook changed it). The fields a
// create sets belong to the operator's update, not to an apply: write removes what a later
// apply leaves behind in the state; a label or owner reference the operator stopped setting
// would stay, which cannot happen today: a child's labels and owner reference follow from its
// owner alone.
func (a *Applier) create(ctx context.Context, d *desiredObject) (bool, error) {
	creator := a.Creator
	if creator == nil {
		creator = clientCreator{a.Client}
	}
	reply, err := creator.Create(ctx, d.kind.GVK, d.obj.GetNamespace(), d.json)
	switch {
	case apierrors.IsAlreadyExists(err):
		return false, nil
	case err != nil:
		return false, err
	}
	// A digest annotation on a reply is not the cache's: the reply's own state is digested.
	return d.storedAsSent(reply)
}

// write makes the stored object exactly desired: the desired labels and owner references
// (others may add more), none of the labels and annotations by which Istio enforces it
// differently (ownership.EnforcementLabels and EnforcementAnnotations), and the desired state
// (spec, or a Secret's type and data) with nothing added.
//
// Server-side apply with force takes back every field the operator sets, but by design it
// never removes a field another field manager set (an action: AUDIT, an exportTo, a selector
// key added by hand): the object would keep it for good. So the object the apply returns is
// checked, and only when it still differs is its state replaced with a JSON patch. Writes:
// none for a settled object (Apply skips it), one for a changed desired state or an edit of
// the operator's own fields (the apply), two only when another manager added fields. A new
// object takes one create instead (Apply). The alternatives cost more or lose something:
// patching without the apply first would compute the patch from the cache, which may be
// stale, and would merge labels and owner references by hand; an Update (PUT) replaces the whole object, which the cache holds
// only slimmed (no annotations, Secret values masked), so it would take a live read first
// and needs the update verb on every kind.
//
// The patch sets the resourceVersion the apply returned, so the API server's optimistic lock
// applies it only to the version that was checked and answers 409 Conflict otherwise; the
// apply and the check are then repeated on the newer version. A JSON patch "test" of the
// resourceVersion would fail with 422 Invalid instead, which cannot be told from a broken
// patch and would not be retried.
func (a *Applier) write(ctx context.Context, desired *unstructured.Unstructured) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		applied := desired.DeepCopy()
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(applied),
			client.FieldOwner(ownership.FieldManager), client.ForceOwnership); err != nil {
			return err
		}
		stored, err := normalized(applied.Object)
		if err != nil {
			return err
		}
		ops := append(stateReplacement(desired.Object, stored), enforcementRemoval(desired, applied)...)
		if len(ops) == 0 {
			return nil
		}
		ops = append([]PatchOp{{Op: "replace", Path: "/metadata/resourceVersion", Value: applied.GetResourceVersion()}}, ops...)
		raw, err := json.Marshal(ops)
		if err != nil {
			return err
		}
		return a.Client.Patch(ctx, applied, client.RawPatch(types.JSONPatchType, raw), client.FieldOwner(ownership.FieldManager))
	})
}

// PatchOp is one operation of a JSON patch (RFC 6902).
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// stateReplacement returns the JSON patch operations that make the state of current exactly
// the desired state: each differing field is set whole or removed.
func stateReplacement(desired, current map[string]any) []PatchOp {
	var ops []PatchOp
	for _, field := range stateFields(desired, current) {
		want, wanted := desired[field]
		have, had := current[field]
		path := "/" + jsonPointerEscaper.Replace(field)
		switch {
		case wanted && (!had || !equality.Semantic.DeepEqual(want, have)):
			ops = append(ops, PatchOp{Op: "add", Path: path, Value: want}) // add replaces a member
		case !wanted && had:
			ops = append(ops, PatchOp{Op: "remove", Path: path})
		}
	}
	return ops
}

var jsonPointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

// stateFields are the top-level fields of either object that hold desired state: all but
// type and object metadata and status. That is spec for the Istio objects, type and data
// for Secrets; a field only one side has counts as a difference too.
func stateFields(desired, current map[string]any) []string {
	var fields []string
	for _, obj := range []map[string]any{desired, current} {
		for field := range obj {
			switch field {
			case "apiVersion", "kind", "metadata", "status":
				continue
			}
			if !slices.Contains(fields, field) {
				fields = append(fields, field)
			}
		}
	}
	slices.Sort(fields)
	return fields
}

// normalized returns the object as ToUnstructured would: every number a float64, as JSON
// decodes numbers into a map. An object read from the API server holds int64 for integers
// instead. The object is converted in place (callers pass the reply of their own request);
// a value of another type than JSON's fails, as encoding it would.
func normalized(obj map[string]any) (map[string]any, error) {
	for k, v := range obj {
		n, err := normalizedValue(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		obj[k] = n
	}
	return obj, nil
}

func normalizedValue(v any) (any, error) {
	switch v := v.(type) {
	case nil, bool, string, float64:
		return v, nil
	case int64:
		return float64(v), nil
	case map[string]any:
		return normalized(v)
	case []any:
		for i, item := range v {
			n, err := normalizedValue(item)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			v[i] = n
		}
		return v, nil
	default:
		return nil, fmt.Errorf("a value of type %T, not one JSON decodes into", v)
	}
}

// StateDigestAnnotation holds, on an object in the operator's cache only, the StateDigest of
// the state the API server sent for it: the cache keeps the digest of a large state (a
// VirtualService's routes) instead of the state itself (internal/slim). The transform that
// slims the object computes it from what was sent and replaces whatever the stored object
// carries under this key, so it always describes the live object; the cache's default
// transform removes the key from every other object.
const StateDigestAnnotation = "apirule.io/cached-state-digest"

// StateDigest is a digest of the state of an object in its unstructured form (the fields
// stateFields lists). Between two objects decoded from JSON with the same digest
// stateReplacement finds nothing to change; the converse fails only for a number spelled
// another way (-0 and 0), which costs a write too many, never one too few.
func StateDigest(obj map[string]any) (string, error) {
	state := map[string]any{}
	for _, field := range stateFields(obj, nil) {
		state[field] = obj[field]
	}
	raw, err := json.Marshal(state) // map keys sorted: a canonical encoding
	if err != nil {
		return "", fmt.Errorf("encoding the state: %w", err)
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// matches says whether the current object carries everything desired: every desired label
// and owner reference, and exactly the desired state. Labels and owner references others add
// are left alone: they do not change what the object does. A cached object of a kind the
// cache holds as a digest (Kind.CachedAsDigest) is compared by its StateDigestAnnotation,
// without converting it or decoding the desired object: over a restart, converting every
// cached child and decoding every desired one were a third of what the operator allocated.
func (d *desiredObject) matches(current client.Object) (bool, error) {
	if !hasOwnedMeta(d.obj, current) {
		return false, nil
	}
	if digest, cached := current.GetAnnotations()[StateDigestAnnotation]; cached && d.kind.CachedAsDigest {
		// ObjectStateDigest, from the encoding already made.
		want, err := StateDigestOfJSON(d.json)
		return err == nil && want == digest, err
	}
	desired, err := d.unstructured()
	if err != nil {
		return false, err
	}
	actual, err := manifest.ToUnstructured(current)
	if err != nil {
		return false, err
	}
	return len(stateReplacement(desired.Object, actual.Object)) == 0, nil
}

// hasOwnedMeta says whether an object carries the desired labels and owner references (others
// may add more), and the labels and annotations by which Istio enforces it differently
// (ownership.EnforcementLabels and EnforcementAnnotations) exactly as desired: none of them,
// as the operator sets none.
func hasOwnedMeta(desired, actual metav1.Object) bool {
	have := actual.GetLabels()
	for k, v := range desired.GetLabels() {
		if value, ok := have[k]; !ok || value != v {
			return false
		}
	}
	if !sameEntries(desired.GetLabels(), have, ownership.EnforcementLabels) ||
		!sameEntries(desired.GetAnnotations(), actual.GetAnnotations(), ownership.EnforcementAnnotations) {
		return false
	}
	refs := actual.GetOwnerReferences()
	for _, ref := range desired.GetOwnerReferences() {
		// DeepEqual follows the pointers: controller and blockOwnerDeletion compare by value,
		// and an unset one differs from a false one, as in the objects' JSON.
		if !slices.ContainsFunc(refs, func(r metav1.OwnerReference) bool { return reflect.DeepEqual(r, ref) }) {
			return false
		}
	}
	return true
}

// sameEntries says whether two maps hold the same entries under the keys: both the same value,
// or neither the key.
func sameEntries(a, b map[string]string, keys []string) bool {
	for _, k := range keys {
		va, inA := a[k]
		vb, inB := b[k]
		if inA != inB || va != vb {
			return false
		}
	}
	return true
}

// enforcementRemoval returns the JSON patch operations that remove from current the labels and
// annotations by which Istio enforces it differently and that desired does not set.
func enforcementRemoval(desired, current metav1.Object) []PatchOp {
	var ops []PatchOp
	for _, field := range []struct {
		path          string
		desired, have map[string]string
		keys          []string
	}{
		{"/metadata/labels/", desired.GetLabels(), current.GetLabels(), ownership.EnforcementLabels},
		{"/metadata/annotations/", desired.GetAnnotations(), current.GetAnnotations(), ownership.EnforcementAnnotations},
	} {
		for _, k := range field.keys {
			if _, set := field.have[k]; set {
				if _, wanted := field.desired[k]; !wanted {
					ops = append(ops, PatchOp{Op: "remove", Path: field.path + jsonPointerEscaper.Replace(k)})
				}
			}
		}
	}
	return ops
}

// Prune deletes the children of owner that are not in keep, kind by kind in the prune order
// of the kinds table (routes first, then their policies). Children are found by owner labels
// in every namespace.
func (a *Applier) Prune(ctx context.Context, owner types.NamespacedName, keep []client.Object) (Result, error) {
	var result Result
	wanted := map[string]bool{}
	for _, obj := range keep {
		wanted[key(obj.GetObjectKind().GroupVersionKind().Kind, obj.GetNamespace(), obj.GetName())] = true
	}
	for _, kind := range inPruneOrder() {
		list := kind.List.DeepCopyObject().(client.ObjectList)
		// Through the owner index: a label selector would scan every object of the kind in the
		// cache, which made each reconcile cost more the more APIRules there are.
		if err := OwnerIndex.List(ctx, a.Client, list, owner.String()); err != nil {
			return result, fmt.Errorf("listing children of %s: %w", owner, err)
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return result, err
		}
		name := kind.GVK.Kind
		for _, item := range items {
			obj := item.(client.Object)
			if wanted[key(name, obj.GetNamespace(), obj.GetName())] {
				continue
			}
			uid := obj.GetUID()
			if err := a.Client.Delete(ctx, obj, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
				return result, fmt.Errorf("deleting stale %s %s/%s: %w", name, obj.GetNamespace(), obj.GetName(), err)
			}
			result.count(&result.Pruned, name)
		}
	}
	return result, nil
}

func key(kind, namespace, name string) string {
	return kind + "/" + namespace + "/" + name
}
