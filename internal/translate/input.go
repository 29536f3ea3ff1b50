// Package translate turns an APIRule and what was read from the cluster into the Istio
// objects that enforce it. It is a pure function: no Kubernetes client, no clock, no globals.
// The same input always gives byte-identical output.
package translate

import (
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

// DefaultTimeoutSeconds is the request timeout of a rule when neither the rule nor the
// APIRule sets one.
const DefaultTimeoutSeconds = 180

// Input is everything the translation depends on.
type Input struct {
	// APIRule to translate.
	APIRule *apiv2.APIRule
	// Gateway is the resolved Istio Gateway, or nil when it does not exist.
	Gateway *Gateway
	// Services are the backend Services that exist, by namespace/name. A backend that is
	// referenced but missing here is reported as unresolved.
	Services map[types.NamespacedName]Service
	// Mesh is what was read of the Istio mesh config, or nil when it was not found.
	Mesh *MeshConfig
	// HostClaims are the other VirtualServices that route one of the APIRule's hosts through
	// its Gateway, by host.
	HostClaims map[string][]HostClaim
	// ServedHosts are the hosts this APIRule's VirtualService routes now.
	ServedHosts []string
	// Options are the operator's settings.
	Options Options
}

// MeshConfig is what the translation needs of the Istio mesh config.
type MeshConfig struct {
	// ExtensionProviders are the declared extension providers by name.
	ExtensionProviders map[string]ProviderKind
}

// ProviderKind is the kind of a mesh-config extension provider.
type ProviderKind string

// The provider kinds. Only the ext-authz kinds can serve an extAuth rule.
const (
	ProviderExtAuthzHTTP ProviderKind = "envoyExtAuthzHttp"
	ProviderExtAuthzGRPC ProviderKind = "envoyExtAuthzGrpc"
	ProviderOther        ProviderKind = "other"
)

// Options are operator-wide settings that shape the generated objects.
type Options struct {
	// IngressGatewayPrincipal is the mTLS identity of the ingress gateway, for example
	// cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account. Workload
	// policies admit only requests that came through it.
	IngressGatewayPrincipal string
	// DefaultGateway, as namespace/name, is used when an APIRule sets no gateway.
	DefaultGateway string
	// MultipleCustomProviders says istiod runs with PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS,
	// so one workload may use several ext-authz providers. Without it Istio enforces one
	// provider per workload and turns the others into deny rules.
	MultipleCustomProviders bool
}

// Gateway is what the translation needs of an Istio Gateway.
type Gateway struct {
	Namespace string
	Name      string
	// Hosts are the hosts of all its servers as written, possibly with a namespace/ prefix
	// that limits which namespaces' VirtualServices may use them.
	Hosts []string
}

// Service is what the translation needs of a backend Service.
type Service struct {
	Namespace string
	Name      string
	// Selector is the Service's spec.selector: it selects the workload whose sidecar
	// enforces the policies.
	Selector map[string]string
	// Ports are the Service's port numbers.
	Ports []int32
	// PodsKnown says Pods were read: the operator reads them, offline rendering does not.
	PodsKnown bool
	// Pods are the Pods the selector selects.
	Pods []Pod
}

// Pod is what the translation needs of a backend Pod.
type Pod struct {
	Name string
	// Sidecar says the Pod has an istio-proxy container (or native sidecar init container),
	// the proxy that enforces the policies.
	Sidecar bool
}

// Owner returns the namespace/name of the APIRule being translated.
func (in Input) Owner() types.NamespacedName {
	return types.NamespacedName{Namespace: in.APIRule.Namespace, Name: in.APIRule.Name}
}
