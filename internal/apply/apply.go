// Package apply writes desired objects with server-side apply under one field manager, in an
// order that never exposes a route before the policies that protect it, and prunes children
// that are no longer desired.
package apply

import (
	"context"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// Applier applies and prunes the children of APIRules. Its client reads from the cache.
type Applier struct {
	Client client.Client
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

// Apply server-side-applies the objects, sorted by the apply rank of their kind, and stops at
// the first failure, so an object later in the order (a route) is never written when one
// before it (its policy) was not. An object whose cached version already has the desired
// labels, owner references and spec is not sent at all: a settled APIRule costs no API
// request.
func (a *Applier) Apply(ctx context.Context, objects []client.Object) (Result, error) {
	var result Result
	ordered := InApplyOrder(objects)
	converted := make([]*unstructured.Unstructured, 0, len(ordered))
	// Every object is converted and its kind checked before the first write, so a bad object
	// fails the call before anything is written.
	for _, obj := range ordered {
		u, err := manifest.ToUnstructured(obj)
		if err != nil {
			return result, err
		}
		if _, known := KindOf(u.GroupVersionKind()); !known {
			return result, fmt.Errorf("%s %s/%s: not a kind of generated object", u.GetKind(), u.GetNamespace(), u.GetName())
		}
		converted = append(converted, u)
	}
	for i, obj := range ordered {
		desired := converted[i]
		current := obj.DeepCopyObject().(client.Object)
		switch err := a.Client.Get(ctx, client.ObjectKeyFromObject(obj), current); {
		case err == nil:
			upToDate, err := matches(desired.Object, current)
			if err != nil {
				return result, err
			}
			if upToDate {
				continue
			}
		case !apierrors.IsNotFound(err):
			return result, fmt.Errorf("reading %s %s/%s: %w", desired.GetKind(), desired.GetNamespace(), desired.GetName(), err)
		}
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired),
			client.FieldOwner(ownership.FieldManager), client.ForceOwnership); err != nil {
			return result, fmt.Errorf("applying %s %s/%s: %w", desired.GetKind(), desired.GetNamespace(), desired.GetName(), err)
		}
		result.count(&result.Applied, desired.GetKind())
	}
	return result, nil
}

// matches says whether the current object carries everything desired: every desired label
// and owner reference, and exactly the desired state (spec, or a Secret's type and data).
func matches(desired map[string]any, current client.Object) (bool, error) {
	actual, err := manifest.ToUnstructured(current)
	if err != nil {
		return false, err
	}
	// Everything but metadata and status is desired state: spec for the Istio objects, type
	// and data for Secrets.
	for field, want := range desired {
		switch field {
		case "apiVersion", "kind", "metadata", "status":
			continue
		}
		if !equality.Semantic.DeepEqual(want, actual.Object[field]) {
			return false, nil
		}
	}
	want, have := metaOf(desired), metaOf(actual.Object)
	for k, v := range want.labels {
		if have.labels[k] != v {
			return false, nil
		}
	}
	for _, ref := range want.ownerRefs {
		if !containsRef(have.ownerRefs, ref) {
			return false, nil
		}
	}
	return true, nil
}

// ownedMeta is the metadata the operator sets on a child.
type ownedMeta struct {
	labels    map[string]any
	ownerRefs []any
}

func metaOf(obj map[string]any) ownedMeta {
	md, _ := obj["metadata"].(map[string]any)
	labels, _ := md["labels"].(map[string]any)
	refs, _ := md["ownerReferences"].([]any)
	return ownedMeta{labels: labels, ownerRefs: refs}
}

func containsRef(refs []any, ref any) bool {
	for _, r := range refs {
		if reflect.DeepEqual(r, ref) {
			return true
		}
	}
	return false
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
		if err := a.Client.List(ctx, list, client.MatchingLabelsSelector{Selector: ownership.Selector(owner)}); err != nil {
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
