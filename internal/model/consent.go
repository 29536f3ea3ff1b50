package model

import (
	"k8s.io/apimachinery/pkg/types"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

// ReferenceGrant is what the consent check needs of a Gateway API ReferenceGrant: the owner of
// a namespace lets the listed kinds of the listed namespaces refer to its objects. An APIRule
// whose backend is in another namespace needs one there, from kind APIRule of the APIRule's
// group in the APIRule's namespace, to kind Service (all Services, or the one named).
type ReferenceGrant struct {
	Namespace string
	Name      string
	From      []GrantFrom
	To        []GrantTo
}

// GrantFrom is one from entry of a ReferenceGrant.
type GrantFrom struct {
	Group, Kind, Namespace string
}

// GrantTo is one to entry of a ReferenceGrant; an empty Name is every object of the kind.
type GrantTo struct {
	Group, Kind, Name string
}

// APIRuleKind is the kind a ReferenceGrant names to let APIRules in.
const APIRuleKind = "APIRule"

// ReferenceGrantFromGatewayAPI takes what the consent check needs from a ReferenceGrant.
func ReferenceGrantFromGatewayAPI(g *gatewayv1beta1.ReferenceGrant) ReferenceGrant {
	out := ReferenceGrant{Namespace: g.Namespace, Name: g.Name}
	for _, f := range g.Spec.From {
		out.From = append(out.From, GrantFrom{Group: string(f.Group), Kind: string(f.Kind), Namespace: string(f.Namespace)})
	}
	for _, t := range g.Spec.To {
		to := GrantTo{Group: string(t.Group), Kind: string(t.Kind)}
		if t.Name != nil {
			to.Name = string(*t.Name)
		}
		out.To = append(out.To, to)
	}
	return out
}

// Permits says whether the grant lets APIRules of namespace from send traffic to the Service.
// As Gateway API defines it, the grant must be in the Service's namespace, and any from entry
// together with any to entry is enough; the core group is the empty string.
func (g ReferenceGrant) Permits(from string, service types.NamespacedName) bool {
	if g.Namespace != service.Namespace {
		return false
	}
	fromOK := false
	for _, f := range g.From {
		fromOK = fromOK || (f.Group == apiv2.GroupVersion.Group && f.Kind == APIRuleKind && f.Namespace == from)
	}
	if !fromOK {
		return false
	}
	for _, t := range g.To {
		if t.Group == "" && t.Kind == "Service" && (t.Name == "" || t.Name == service.Name) {
			return true
		}
	}
	return false
}

// Consented says whether the Service's namespace lets APIRules of namespace from send traffic
// to it: it is their own namespace, the operator runs with --allow-cross-namespace-backends
// (opts), or one of grants, the ReferenceGrants of the Service's namespace, permits it. The
// spec check, the check of what serves now and the workload peers all decide by this.
func Consented(opts Options, grants []ReferenceGrant, from string, service types.NamespacedName) bool {
	if from == service.Namespace || opts.CrossNamespaceBackends {
		return true
	}
	for _, g := range grants {
		if g.Permits(from, service) {
			return true
		}
	}
	return false
}
