package render

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/slim"
)

// cluster marks a bundle read from a cluster: its APIRules are stored objects, not ones
// about to be applied.
type cluster struct {
	// referenceGrants says the cluster serves ReferenceGrants, as the operator decides at
	// start.
	referenceGrants bool
}

// LoadCluster reads the APIRules of a cluster and what the operator reads for them into a
// bundle, so that Render reports what the operator's status would say. It reads what the
// operator's cache holds, no more: every APIRule (host claims cross namespaces), Gateway and
// VirtualService (unmanaged ones only as hosts and gateways); the Services and Pods of the
// backends' namespaces and the ingress gateway's namespace (Pods only as labels, container
// names and the proxy-config annotation); the mTLS APIRules' Secrets, of which only the
// certificates are kept (the API server sends the whole Secret, private key included; it is
// dropped at once, as the operator's cache drops it); the mesh
// config ConfigMap; and ReferenceGrants, when the cluster serves them. The APIRules are in
// creation order, the order the operator's host ownership follows.
func LoadCluster(ctx context.Context, reader client.Reader, mapper meta.RESTMapper, opts Options) (*Bundle, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	modelOpts := opts.Translate()
	b := &Bundle{refusals: map[int]field.ErrorList{}, cluster: &cluster{}}

	rules := &apiv2.APIRuleList{}
	if err := list(ctx, reader, rules, "APIRules", "gateway.apirule.io/v2 APIRule: install the operator's CRD"); err != nil {
		return nil, err
	}
	slices.SortStableFunc(rules.Items, func(x, y apiv2.APIRule) int {
		if c := x.CreationTimestamp.Compare(y.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
	})
	namespaces := []string{modelOpts.IngressGatewayNamespace}
	var secrets []types.NamespacedName
	for i := range rules.Items {
		rule := &rules.Items[i]
		forStore(rule)
		b.APIRules = append(b.APIRules, rule)
		for _, ref := range model.BackendRefs(rule) {
			if !slices.Contains(namespaces, ref.Namespace) {
				namespaces = append(namespaces, ref.Namespace)
			}
		}
		if rule.Spec.MTLS != nil {
			credential, ca, caCopy := model.MTLSSecretRefs(rule, modelOpts)
			secrets = append(secrets, credential, ca, caCopy)
		}
	}
	slices.Sort(namespaces)

	gateways := &networkingclientv1.GatewayList{}
	if err := list(ctx, reader, gateways, "Gateways", "networking.istio.io/v1 Gateway: install Istio's CRDs"); err != nil {
		return nil, err
	}
	for _, gw := range gateways.Items {
		b.Objects = append(b.Objects, forStore(gw))
	}
	routes := &networkingclientv1.VirtualServiceList{}
	if err := list(ctx, reader, routes, "VirtualServices", "networking.istio.io/v1 VirtualService: install Istio's CRDs"); err != nil {
		return nil, err
	}
	for _, vs := range routes.Items {
		slim, _ := slim.VirtualService(vs)
		b.Objects = append(b.Objects, forStore(slim.(client.Object)))
	}
	for _, ns := range namespaces {
		services := &corev1.ServiceList{}
		if err := list(ctx, reader, services, "Services", "", client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for i := range services.Items {
			slim, _ := slim.Service(&services.Items[i])
			b.Objects = append(b.Objects, forStore(slim.(client.Object)))
		}
		pods := &corev1.PodList{}
		if err := list(ctx, reader, pods, "Pods", "", client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for i := range pods.Items {
			// Slimmed as the store takes it (newStore).
			b.Objects = append(b.Objects, forStore(&pods.Items[i]))
		}
	}
	slices.SortFunc(secrets, func(x, y types.NamespacedName) int { return strings.Compare(x.String(), y.String()) })
	for _, key := range slices.Compact(secrets) {
		secret := &corev1.Secret{}
		switch err := reader.Get(ctx, key, secret); {
		case apierrors.IsNotFound(err):
			continue // the operator reports it; so does Render
		case err != nil:
			return nil, fmt.Errorf("reading Secret %s: %w", key, err)
		}
		// Only the certificates: a value that is not one is replaced before it is kept.
		slim, _ := slim.Secret(secret)
		b.Objects = append(b.Objects, forStore(slim.(client.Object)))
	}
	mesh := &corev1.ConfigMap{}
	switch err := reader.Get(ctx, opts.MeshConfigKey(), mesh); {
	case err == nil:
		b.Objects = append(b.Objects, forStore(mesh))
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("reading the mesh config %s: %w", opts.MeshConfigKey(), err)
	}

	gv := gatewayv1beta1.GroupVersion
	switch _, err := mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: "ReferenceGrant"}, gv.Version); {
	case meta.IsNoMatchError(err):
	case err != nil:
		return nil, fmt.Errorf("looking up the ReferenceGrant API: %w", err)
	default:
		b.cluster.referenceGrants = true
		grants := &gatewayv1beta1.ReferenceGrantList{}
		if err := list(ctx, reader, grants, "ReferenceGrants", ""); err != nil {
			return nil, err
		}
		for i := range grants.Items {
			b.Objects = append(b.Objects, forStore(&grants.Items[i]))
		}
	}
	return b, nil
}

// list lists objects, naming what failed and, for a kind the cluster does not serve, what
// to install.
func list(ctx context.Context, reader client.Reader, into client.ObjectList, what, install string, opts ...client.ListOption) error {
	err := reader.List(ctx, into, opts...)
	switch {
	case err == nil:
		return nil
	case meta.IsNoMatchError(err) && install != "":
		return fmt.Errorf("listing %s: the cluster does not serve %s", what, install)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("listing %s: %w (apirulectl reads what the operator reads: grant list on them, or use a kubeconfig that may)", what, err)
	default:
		return fmt.Errorf("listing %s: %w", what, err)
	}
}

// forStore prepares a read object for the in-memory store: it takes no resourceVersion on
// create, and managedFields are never read.
func forStore[T client.Object](obj T) T {
	obj.SetResourceVersion("")
	obj.SetManagedFields(nil)
	return obj
}
