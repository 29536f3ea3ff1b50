// Package config holds the operator settings that shape the generated objects. The manager's
// flags, apirulectl's flags and apirulectl's RenderOptions document all set the same fields,
// so offline rendering matches what the operator applies.
package config

import (
	"flag"

	"k8s.io/apimachinery/pkg/types"

	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// Settings are the operator settings that shape translation.
type Settings struct {
	// IngressGatewayPrincipal is the mTLS principal of the ingress gateway's service account.
	IngressGatewayPrincipal string `json:"ingressGatewayPrincipal,omitempty"`
	// DefaultGateway (namespace/name) serves APIRules that set no spec.gateway.
	DefaultGateway string `json:"defaultGateway,omitempty"`
	// MultipleCustomAuthzProviders says istiod runs with
	// PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS=true.
	MultipleCustomAuthzProviders bool `json:"multipleCustomAuthzProviders,omitempty"`
	// IstioNamespace and IstioRevision locate the mesh config ConfigMap.
	IstioNamespace string `json:"istioNamespace,omitempty"`
	IstioRevision  string `json:"istioRevision,omitempty"`
}

// Defaults are the settings of a default Istio installation.
func Defaults() Settings {
	return Settings{
		IngressGatewayPrincipal: "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
		IstioNamespace:          "istio-system",
	}
}

// BindFlags registers a flag for every setting, defaulting to the current values.
func (s *Settings) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.IngressGatewayPrincipal, "ingress-gateway-principal", s.IngressGatewayPrincipal,
		"mTLS principal of the ingress gateway's service account; workload policies admit only requests through it")
	fs.StringVar(&s.DefaultGateway, "default-gateway", s.DefaultGateway,
		"Istio Gateway (namespace/name) for APIRules that set no spec.gateway; empty means spec.gateway is required")
	fs.BoolVar(&s.MultipleCustomAuthzProviders, "multiple-custom-authz-providers", s.MultipleCustomAuthzProviders,
		"istiod runs with PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS=true, so one workload may use several ext-authz providers")
	fs.StringVar(&s.IstioNamespace, "istio-namespace", s.IstioNamespace, "namespace of Istio's mesh config ConfigMap")
	fs.StringVar(&s.IstioRevision, "istio-revision", s.IstioRevision,
		"Istio revision whose mesh config to read (ConfigMap istio-<revision>); empty for the ConfigMap istio")
}

// Translate returns the translation options.
func (s Settings) Translate() translate.Options {
	return translate.Options{
		IngressGatewayPrincipal: s.IngressGatewayPrincipal,
		DefaultGateway:          s.DefaultGateway,
		MultipleCustomProviders: s.MultipleCustomAuthzProviders,
	}
}

// MeshConfigKey is the namespace/name of the mesh config ConfigMap.
func (s Settings) MeshConfigKey() types.NamespacedName {
	return types.NamespacedName{Namespace: s.IstioNamespace, Name: meshconfig.ConfigMapName(s.IstioRevision)}
}
