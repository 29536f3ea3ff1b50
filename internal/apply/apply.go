// Package apply writes desired objects with server-side apply under one field manager, in an
// order that never exposes a route before the policies that protect it, and prunes children
// that are no longer desired.
package apply

import (
	"context"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// Applier applies and prunes the children of APIRules.
type Applier struct {
	Client client.Client
}

// Apply server-side-applies the objects in the given order and stops at the first failure, so
// an object later in the list (a route) is never written when one before it (its policy) was
// not.
func (a *Applier) Apply(ctx context.Context, objects []client.Object) error {
	for _, obj := range objects {
		u, err := manifest.ToUnstructured(obj)
		if err != nil {
			return err
		}
		if err := a.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
			client.FieldOwner(ownership.FieldManager), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
	}
	return nil
}

// Prune deletes the children of owner of each listed kind that are not in keep, kind by kind
// in the given order (routes first, then their policies). Children are found by owner labels
// in every namespace.
func (a *Applier) Prune(ctx context.Context, owner types.NamespacedName, kinds []schema.GroupVersionKind, keep []client.Object) error {
	wanted := map[string]bool{}
	for _, obj := range keep {
		wanted[key(obj.GetObjectKind().GroupVersionKind(), obj.GetNamespace(), obj.GetName())] = true
	}
	for _, gvk := range kinds {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := a.Client.List(ctx, list, client.MatchingLabelsSelector{Selector: ownership.Selector(owner)}); err != nil {
			return fmt.Errorf("listing %s of %s: %w", gvk.Kind, owner, err)
		}
		for i := range list.Items {
			item := &list.Items[i]
			if wanted[key(gvk, item.GetNamespace(), item.GetName())] {
				continue
			}
			if err := a.Client.Delete(ctx, item, client.Preconditions{UID: ptr(item.GetUID())}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("deleting stale %s %s/%s: %w", gvk.Kind, item.GetNamespace(), item.GetName(), err)
			}
		}
	}
	return nil
}

func key(gvk schema.GroupVersionKind, namespace, name string) string {
	return gvk.GroupKind().String() + "/" + namespace + "/" + name
}

func ptr[T any](v T) *T { return &v }
