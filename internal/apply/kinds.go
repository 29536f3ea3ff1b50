package apply

import (
	"cmp"
	"slices"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/lookup"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// OwnerIndex is the cache index that lists the generated objects of each kind by the
// namespace/name of the APIRule they belong to (ownership.OwnerFromLabels): pruning lists an
// APIRule's children through it.
var OwnerIndex = lookup.Hashed("apirule.io/owner", func(obj client.Object) []string {
	if owner, ok := ownership.OwnerFromLabels(obj.GetLabels()); ok {
		return []string{owner.String()}
	}
	return nil
})

// Kind is one kind of object the operator generates.
type Kind struct {
	GVK schema.GroupVersionKind
	// Object is an empty object of the kind, the prototype its cache index is registered on.
	Object client.Object
	// List is an empty list of the kind, the prototype Prune lists children with.
	List client.ObjectList
	// ApplyRank orders writes: lower first. PruneRank orders deletions: lower first.
	ApplyRank, PruneRank int
	// CachedAsDigest: the operator's cache holds the kind's state only as its digest
	// (StateDigestAnnotation, set as the cache lists and watches the kind: internal/slim). Of every other
	// kind the digest annotation is never believed, whoever set it.
	CachedAsDigest bool
}

// Kinds are the kinds of generated objects: the one place that says in which order they are
// written and deleted, each so that traffic never sees a moment in between two writes that
// is less protected than before or after:
//
//   - Apply: a route is never live before the policies that protect it, a policy requiring a
//     token never before the RequestAuthentication that validates it, and a Gateway asking
//     for client certificates never before the CA bundle it verifies them with.
//   - Prune: the route goes first, before the Gateway it is bound to and the policies that
//     protect it; a policy before the RequestAuthentication its token check relies on; the
//     CA bundle last, after the Gateway that reads it.
var Kinds = []Kind{
	{GVK: securityclientv1.SchemeGroupVersion.WithKind("RequestAuthentication"), Object: &securityclientv1.RequestAuthentication{},
		List: &securityclientv1.RequestAuthenticationList{}, ApplyRank: 0, PruneRank: 3, CachedAsDigest: true},
	{GVK: securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"), Object: &securityclientv1.AuthorizationPolicy{},
		List: &securityclientv1.AuthorizationPolicyList{}, ApplyRank: 1, PruneRank: 2, CachedAsDigest: true},
	{GVK: corev1.SchemeGroupVersion.WithKind("Secret"), Object: &corev1.Secret{},
		List: &corev1.SecretList{}, ApplyRank: 2, PruneRank: 4},
	{GVK: networkingclientv1.SchemeGroupVersion.WithKind("Gateway"), Object: &networkingclientv1.Gateway{},
		List: &networkingclientv1.GatewayList{}, ApplyRank: 3, PruneRank: 1},
	{GVK: networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"), Object: &networkingclientv1.VirtualService{},
		List: &networkingclientv1.VirtualServiceList{}, ApplyRank: 4, PruneRank: 0, CachedAsDigest: true},
}

// KindOf returns the table entry of a GroupVersionKind.
func KindOf(gvk schema.GroupVersionKind) (Kind, bool) {
	i := slices.IndexFunc(Kinds, func(k Kind) bool { return k.GVK == gvk })
	if i < 0 {
		return Kind{}, false
	}
	return Kinds[i], true
}

// InApplyOrder returns the objects sorted by the apply rank of their kind, keeping the order
// of objects of one kind. An object of a kind not in the table sorts last; Apply refuses it.
func InApplyOrder[T runtime.Object](objects []T) []T {
	rank := func(obj T) int {
		if k, ok := KindOf(obj.GetObjectKind().GroupVersionKind()); ok {
			return k.ApplyRank
		}
		return len(Kinds)
	}
	out := slices.Clone(objects)
	slices.SortStableFunc(out, func(a, b T) int { return cmp.Compare(rank(a), rank(b)) })
	return out
}

// inPruneOrder returns the table sorted by prune rank.
func inPruneOrder() []Kind {
	out := slices.Clone(Kinds)
	slices.SortFunc(out, func(a, b Kind) int { return cmp.Compare(a.PruneRank, b.PruneRank) })
	return out
}
