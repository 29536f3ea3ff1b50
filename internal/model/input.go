// Package model holds what the checks and the translator share: the input snapshot that the
// gatherer reads from the cluster (or from files, offline), the operator's options, and the
// facts derived from an APIRule alone: which Gateway, Services and Secrets it references,
// the hosts it routes, the names of its children and the path grammar. It is pure: no
// Kubernetes client, no clock, no globals.
package model

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

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
	// MeshError is set when the mesh config exists but does not parse; Mesh is nil then.
	MeshError error
	// HostClaims are the other VirtualServices that route one of the APIRule's hosts through
	// its Gateway, by host.
	HostClaims map[string][]HostClaim
	// ServedHosts are the hosts this APIRule's VirtualService routes now.
	ServedHosts []string
	// ServedBackends are the Services this APIRule's VirtualService routes to now, sorted: of
	// the generation that serves, which after a refused edit is not the spec's.
	ServedBackends []types.NamespacedName
	// ServedServices are those of ServedBackends that are not in Services, as read.
	ServedServices map[types.NamespacedName]Service
	// MTLS is what was read of the Secrets that spec.mtls names; nil when it is not set.
	MTLS *MTLSSecrets
	// OtherGateways are the Gateways, other than the operator's own, that serve one of the
	// APIRule's hosts: an mTLS APIRule's Gateway must not share a host and port with them.
	OtherGateways []Gateway
	// Fronting are the routes on other servers of the ingress gateway whose hosts cover an
	// mTLS host: of this mTLS APIRule's hosts, or, for a wildcard APIRule, of another
	// APIRule's mTLS hosts.
	Fronting []Fronting
	// Peers are the other APIRules whose backends may select Pods of this APIRule's backends:
	// Istio merges every RequestAuthentication and ORs every policy of a workload, so their
	// issuer configurations and ext-authz providers must agree with this APIRule's.
	Peers []Peer
	// IngressPods are the ingress gateway's Pods, read for their proxy settings.
	IngressPods []IngressPod
	// MissingCredentials are the credentialNames of the Gateway's servers for the APIRule's
	// hosts whose Secret does not exist in the ingress gateway namespace, sorted.
	MissingCredentials []string
	// ReferenceGrants are the Gateway API ReferenceGrants in the namespaces of the backends
	// that are not the APIRule's, sorted by namespace/name: the consent of those namespaces.
	ReferenceGrants []ReferenceGrant
	// Now is the time certificates are checked against.
	Now time.Time
	// Options are the operator's settings.
	Options Options
}

// MTLSSecrets are the Secrets of an mTLS APIRule. A Secret that does not exist is nil.
type MTLSSecrets struct {
	// Credential is the server certificate Secret (spec.mtls.credentialName) in the ingress
	// gateway namespace.
	Credential *Secret
	// CA is the CA bundle Secret (spec.mtls.caSecretRef) in the APIRule's namespace.
	CA *Secret
	// CACopy is the Secret in the ingress gateway namespace that the CA bundle is copied to.
	CACopy *Secret
}

// Secret is what the translation needs of a Secret: its labels and its public data. The
// operator never keeps private keys.
type Secret struct {
	Namespace string
	Name      string
	Labels    map[string]string
	Data      map[string][]byte
}

// IngressPod is an ingress gateway Pod.
type IngressPod struct {
	Name string
	// NumTrustedProxies is set when the Pod's proxy.istio.io/config annotation sets
	// gatewayTopology.numTrustedProxies, which overrides the mesh config.
	NumTrustedProxies *uint32
}

// MeshConfig is what the translation needs of the Istio mesh config.
type MeshConfig struct {
	// ExtensionProviders are the declared extension providers by name.
	ExtensionProviders map[string]ProviderKind
	// NumTrustedProxies is defaultConfig.gatewayTopology.numTrustedProxies: how many proxies in
	// front of the ingress gateway append to X-Forwarded-For.
	NumTrustedProxies uint32
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
	// CrossNamespaceBackends lets APIRules send traffic to Services of other namespaces
	// without a ReferenceGrant there.
	CrossNamespaceBackends bool
	// ReferenceGrants says the cluster serves Gateway API's ReferenceGrant, through which
	// the owner of a namespace consents to APIRules of other namespaces using its Services.
	ReferenceGrants bool
	// IngressGatewayNamespace is the namespace of the ingress gateway's Pods: the operator's
	// own Gateways, CA copies and gateway-level policies go there.
	IngressGatewayNamespace string
	// IngressGatewaySelector selects the ingress gateway's Pods.
	IngressGatewaySelector map[string]string
}

// Gateway is what the translation needs of an Istio Gateway.
type Gateway struct {
	Namespace string
	Name      string
	// Hosts are the hosts of all its servers as written, possibly with a namespace/ prefix
	// that limits which namespaces' VirtualServices may use them.
	Hosts []string
	// Selector selects the gateway Pods that serve it.
	Selector map[string]string
	// Servers are its servers' ports and hosts.
	Servers []GatewayServer
}

// GatewayServer is one server of a Gateway.
type GatewayServer struct {
	Port uint32
	// Hosts as written, possibly with a namespace/ prefix.
	Hosts []string
	// CredentialName is the Secret with the server's certificate (tls.credentialName), in the
	// namespace of the gateway's Pods; empty for a server without one.
	CredentialName string
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
	// Labels are the Pod's labels: every Service that selects the Pod shares its workload,
	// whatever labels its selector names.
	Labels map[string]string
	// Sidecar says the Pod has an istio-proxy container (or native sidecar init container),
	// the proxy that enforces the policies.
	Sidecar bool
}

// Owner returns the namespace/name of the APIRule being translated.
func (in Input) Owner() types.NamespacedName {
	return types.NamespacedName{Namespace: in.APIRule.Namespace, Name: in.APIRule.Name}
}

// Peer is another APIRule on a workload this APIRule also serves.
type Peer struct {
	APIRule *apiv2.APIRule
	// Workloads are the keys (WorkloadKey) of this APIRule's backends that the peer's
	// backends may share.
	Workloads []string
	// Services are the peer's backend Services that may share them.
	Services []types.NamespacedName
}

// IngressGatewayKnown says whether the operator knows the ingress gateway's namespace and
// selector, which the gateway-level modes (mTLS, IP restriction) need: an object without a
// selector there would apply to every workload of the namespace.
func (o Options) IngressGatewayKnown() bool {
	return len(o.IngressGatewaySelector) > 0 && o.IngressGatewayNamespace != ""
}

// Fronting is a route on another server of the ingress gateway whose host covers an mTLS
// host. The TLS server name picks the gateway server and the Host header the virtual host, so
// a client that names another server in TLS and sends the mTLS host as Host reaches that
// route without a client certificate.
type Fronting struct {
	// Host is the mTLS host; Pattern the other route's host that covers it (the host itself,
	// a wildcard over it, or *).
	Host, Pattern string
	// Route is the covering VirtualService; for a wildcard APIRule, the mTLS APIRule's route.
	Route types.NamespacedName
	// APIRule is the other side's APIRule, nil for a VirtualService the operator does not
	// manage.
	APIRule *apiv2.APIRule
}
