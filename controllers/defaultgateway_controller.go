package controllers

import (
	"context"
	"fmt"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// DefaultGatewayReconciler keeps the default Gateway as the operator's settings describe it:
// created at start, restored when it is edited or deleted. When the setting is switched off
// the Gateway stays: it may serve traffic, and removing it is the administrator's decision.
type DefaultGatewayReconciler struct {
	Client client.Client
	// Creator creates the Gateway when the cache does not know it; nil: Client does.
	Creator apply.Creator
	// Gateway is the namespace/name of the default Gateway.
	Gateway        types.NamespacedName
	Domain         string
	CredentialName string
	Selector       map[string]string
}

// Reconcile applies the desired default Gateway when the cached one differs.
func (r *DefaultGatewayReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	desired := translate.DefaultGateway(r.Gateway, r.Domain, r.CredentialName, r.Selector)
	applied, err := (&apply.Applier{Client: r.Client, Creator: r.Creator}).Apply(ctx, []client.Object{desired})
	metrics.CountApplied(applied.Applied)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("keeping the default Gateway %s: %w", r.Gateway, err)
	}
	return ctrl.Result{}, nil
}

// SetupWithManager watches the default Gateway and triggers one reconcile at start, so a
// Gateway that does not exist yet is created.
func (r *DefaultGatewayReconciler) SetupWithManager(mgr ctrl.Manager) error {
	start := make(chan event.TypedGenericEvent[*networkingclientv1.Gateway], 1)
	seed := &networkingclientv1.Gateway{}
	seed.Namespace, seed.Name = r.Gateway.Namespace, r.Gateway.Name
	start <- event.TypedGenericEvent[*networkingclientv1.Gateway]{Object: seed}
	isDefault := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetNamespace() == r.Gateway.Namespace && obj.GetName() == r.Gateway.Name
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("default-gateway").
		For(&networkingclientv1.Gateway{}, builder.WithPredicates(isDefault)).
		WatchesRawSource(source.Channel(start, &handler.TypedEnqueueRequestForObject[*networkingclientv1.Gateway]{})).
		Complete(r)
}
