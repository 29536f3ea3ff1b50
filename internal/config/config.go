// Package config holds the operator settings that shape the generated objects. The manager's
// flags, apirulectl's flags and apirulectl's RenderOptions document all set the same fields,
// so offline rendering matches what the operator applies.
package config

import (
	"flag"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/types"

	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// Settings are the operator settings that shape translation.
type Settings struct {
	// IngressGatewayPrincipal is the mTLS principal of the ingress gateway's service account.
	// Empty, it is derived from IngressGatewayNamespace and IngressGatewayServiceAccount
	// (Principal), so that moving the gateway to another namespace moves its identity too.
	IngressGatewayPrincipal string `json:"ingressGatewayPrincipal,omitempty"`
	// IngressGatewayServiceAccount is the service account the ingress gateway's Pods run as.
	IngressGatewayServiceAccount string `json:"ingressGatewayServiceAccount,omitempty"`
	// DefaultGateway (namespace/name) serves APIRules that set no spec.gateway.
	DefaultGateway string `json:"defaultGateway,omitempty"`
	// MultipleCustomAuthzProviders says istiod runs with
	// PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS=true.
	MultipleCustomAuthzProviders bool `json:"multipleCustomAuthzProviders,omitempty"`
	// AllowCrossNamespaceBackends lets an APIRule send traffic to Services of other
	// namespaces. Off by default: the operator writes the policies into the backend's namespace,
	// so any team that may create APIRules could otherwise expose any other team's workload.
	AllowCrossNamespaceBackends bool `json:"allowCrossNamespaceBackends,omitempty"`
	// IstioNamespace and IstioRevision locate the mesh config ConfigMap.
	IstioNamespace string `json:"istioNamespace,omitempty"`
	IstioRevision  string `json:"istioRevision,omitempty"`
	// IngressGatewayNamespace is where the ingress gateway's Pods run; the operator's own
	// Gateways, CA copies and gateway-level policies go there.
	IngressGatewayNamespace string `json:"ingressGatewayNamespace,omitempty"`
	// IngressGatewaySelector selects the ingress gateway's Pods, as key=value[,key=value].
	IngressGatewaySelector string `json:"ingressGatewaySelector,omitempty"`
	// ManageDefaultGateway makes the operator create and keep DefaultGateway.
	ManageDefaultGateway bool `json:"manageDefaultGateway,omitempty"`
	// DefaultGatewayDomain is the domain of the managed default Gateway: it serves *.<domain>.
	DefaultGatewayDomain string `json:"defaultGatewayDomain,omitempty"`
	// DefaultGatewayCredential is the TLS Secret, in the ingress gateway namespace, of the
	// managed default Gateway's HTTPS server.
	DefaultGatewayCredential string `json:"defaultGatewayCredential,omitempty"`
}

// Defaults are the settings of a default Istio installation.
func Defaults() Settings {
	return Settings{
		IngressGatewayServiceAccount: "istio-ingressgateway-service-account",
		IstioNamespace:               "istio-system",
		IngressGatewayNamespace:      "istio-system",
		IngressGatewaySelector:       "istio=ingressgateway",
	}
}

// DefaultTrustDomain is the trust domain of a default Istio installation; a derived
// principal uses it. Meshes with another trust domain set the principal explicitly.
const DefaultTrustDomain = "cluster.local"

// Principal is the ingress gateway's mTLS principal: the explicit one, or the one its service
// account has in the default trust domain.
func (s Settings) Principal() string {
	if s.IngressGatewayPrincipal != "" {
		return s.IngressGatewayPrincipal
	}
	return model.Principal(DefaultTrustDomain, s.IngressGatewayNamespace, s.IngressGatewayServiceAccount)
}

// BindFlags registers a flag for every setting, defaulting to the current values.
func (s *Settings) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&s.IngressGatewayPrincipal, "ingress-gateway-principal", s.IngressGatewayPrincipal,
		"mTLS principal of the ingress gateway (<trust-domain>/ns/<namespace>/sa/<account>); workload policies admit only requests through it. "+
			"Empty: "+DefaultTrustDomain+"/ns/<--ingress-gateway-namespace>/sa/<--ingress-gateway-service-account>")
	fs.StringVar(&s.IngressGatewayServiceAccount, "ingress-gateway-service-account", s.IngressGatewayServiceAccount,
		"service account of the ingress gateway's Pods, for the principal derived when --ingress-gateway-principal is empty")
	fs.StringVar(&s.DefaultGateway, "default-gateway", s.DefaultGateway,
		"Istio Gateway (namespace/name) for APIRules that set no spec.gateway; empty means spec.gateway is required")
	fs.BoolVar(&s.MultipleCustomAuthzProviders, "multiple-custom-authz-providers", s.MultipleCustomAuthzProviders,
		"istiod runs with PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS=true, so one workload may use several ext-authz providers")
	fs.BoolVar(&s.AllowCrossNamespaceBackends, "allow-cross-namespace-backends", s.AllowCrossNamespaceBackends,
		"let APIRules send traffic to Services in other namespaces (the operator then writes policies there); off, such APIRules are refused")
	fs.StringVar(&s.IstioNamespace, "istio-namespace", s.IstioNamespace, "namespace of Istio's mesh config ConfigMap")
	fs.StringVar(&s.IstioRevision, "istio-revision", s.IstioRevision,
		"Istio revision whose mesh config to read (ConfigMap istio-<revision>); empty for the ConfigMap istio")
	fs.StringVar(&s.IngressGatewayNamespace, "ingress-gateway-namespace", s.IngressGatewayNamespace,
		"namespace of the ingress gateway's Pods: mTLS Gateways, CA copies and IP-restriction policies are created there")
	fs.StringVar(&s.IngressGatewaySelector, "ingress-gateway-selector", s.IngressGatewaySelector,
		"labels of the ingress gateway's Pods, as key=value[,key=value]")
	fs.BoolVar(&s.ManageDefaultGateway, "manage-default-gateway", s.ManageDefaultGateway,
		"create and keep the Gateway named by --default-gateway: HTTPS on *.<--default-gateway-domain> with --default-gateway-credential, HTTP redirected to HTTPS")
	fs.StringVar(&s.DefaultGatewayDomain, "default-gateway-domain", s.DefaultGatewayDomain,
		"domain of the managed default Gateway, which serves *.<domain>")
	fs.StringVar(&s.DefaultGatewayCredential, "default-gateway-credential", s.DefaultGatewayCredential,
		"TLS Secret, in the ingress gateway namespace, with the managed default Gateway's certificate for *.<domain>")
}

// Validate reports settings that cannot work, naming the flag to fix.
func (s Settings) Validate() error {
	if _, err := ParseSelector(s.IngressGatewaySelector); err != nil {
		return fmt.Errorf("--ingress-gateway-selector: %w", err)
	}
	if s.IngressGatewayNamespace == "" {
		return fmt.Errorf("--ingress-gateway-namespace must not be empty")
	}
	if err := s.validatePrincipal(); err != nil {
		return err
	}
	if s.ManageDefaultGateway {
		if _, _, ok := strings.Cut(s.DefaultGateway, "/"); !ok {
			return fmt.Errorf("--manage-default-gateway needs --default-gateway as namespace/name")
		}
		if s.DefaultGatewayDomain == "" || strings.Contains(s.DefaultGatewayDomain, "*") || !strings.Contains(s.DefaultGatewayDomain, ".") {
			return fmt.Errorf("--manage-default-gateway needs --default-gateway-domain, a domain such as example.com")
		}
		if s.DefaultGatewayCredential == "" {
			return fmt.Errorf("--manage-default-gateway needs --default-gateway-credential, the TLS Secret for *.%s", s.DefaultGatewayDomain)
		}
	}
	return nil
}

// validatePrincipal refuses a principal that is not one: the policies would admit an identity
// no workload has, and every request would be denied.
func (s Settings) validatePrincipal() error {
	if s.IngressGatewayPrincipal == "" {
		if s.IngressGatewayServiceAccount == "" || strings.Contains(s.IngressGatewayServiceAccount, "/") {
			return fmt.Errorf("--ingress-gateway-service-account %q must be a service account name when --ingress-gateway-principal is empty",
				s.IngressGatewayServiceAccount)
		}
		return nil
	}
	if _, _, _, ok := model.ParsePrincipal(s.IngressGatewayPrincipal); !ok {
		return fmt.Errorf("--ingress-gateway-principal %q is not <trust-domain>/ns/<namespace>/sa/<service-account> (without spiffe://)",
			s.IngressGatewayPrincipal)
	}
	return nil
}

// ValidateManager is Validate for the operator itself, which also knows where the ingress
// gateway runs: an explicit principal of another namespace than --ingress-gateway-namespace is
// refused, since the gateway's Pods cannot hold it and every request would be denied with
// "RBAC: access denied". Offline rendering (apirulectl) checks the principal's form only.
func (s Settings) ValidateManager() error {
	if err := s.Validate(); err != nil {
		return err
	}
	if s.IngressGatewayPrincipal == "" {
		return nil
	}
	if _, namespace, _, _ := model.ParsePrincipal(s.IngressGatewayPrincipal); namespace != s.IngressGatewayNamespace {
		return fmt.Errorf("--ingress-gateway-principal %q names namespace %q, but --ingress-gateway-namespace is %q: "+
			"the gateway's Pods cannot hold that identity; make the two agree, or leave --ingress-gateway-principal empty "+
			"to derive it from --ingress-gateway-namespace and --ingress-gateway-service-account",
			s.IngressGatewayPrincipal, namespace, s.IngressGatewayNamespace)
	}
	return nil
}

// ParseSelector reads key=value[,key=value] into labels.
func ParseSelector(selector string) (map[string]string, error) {
	out := map[string]string{}
	for _, pair := range strings.Split(selector, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || key == "" || value == "" {
			return nil, fmt.Errorf("%q is not key=value[,key=value]", selector)
		}
		out[key] = value
	}
	return out, nil
}

// Translate returns the translation options.
func (s Settings) Translate() model.Options {
	return model.Options{
		IngressGatewayPrincipal: s.Principal(),
		DefaultGateway:          s.DefaultGateway,
		MultipleCustomProviders: s.MultipleCustomAuthzProviders,
		CrossNamespaceBackends:  s.AllowCrossNamespaceBackends,
		IngressGatewayNamespace: s.IngressGatewayNamespace,
		IngressGatewaySelector:  s.ingressSelector(),
	}
}

// ingressSelector returns the ingress gateway selector; Validate reports a malformed one.
func (s Settings) ingressSelector() map[string]string {
	selector, _ := ParseSelector(s.IngressGatewaySelector)
	return selector
}

// MeshConfigKey is the namespace/name of the mesh config ConfigMap.
func (s Settings) MeshConfigKey() types.NamespacedName {
	return types.NamespacedName{Namespace: s.IstioNamespace, Name: meshconfig.ConfigMapName(s.IstioRevision)}
}
