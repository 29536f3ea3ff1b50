// Package meshconfig reads what the operator needs from Istio's mesh config: the ConfigMap
// istio (or istio-<revision>) in the Istio namespace, key "mesh".
package meshconfig

import (
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/apirule-operator/apirule-operator/internal/model"
)

// Key is the ConfigMap key that holds the mesh config.
const Key = "mesh"

// ConfigMapName is the name of the mesh config ConfigMap of an Istio revision.
func ConfigMapName(revision string) string {
	if revision == "" || revision == "default" {
		return "istio"
	}
	return "istio-" + revision
}

// SidecarContainer is the name of the Istio proxy container that sidecar injection adds, as
// a container or, in native sidecar mode, as an init container.
const SidecarContainer = "istio-proxy"

// ProxyConfigAnnotation is the Pod annotation that overrides the mesh's default proxy config.
const ProxyConfigAnnotation = "proxy.istio.io/config"

type meshConfig struct {
	ExtensionProviders []map[string]any `json:"extensionProviders"`
	DefaultConfig      proxyConfig      `json:"defaultConfig"`
}

type proxyConfig struct {
	GatewayTopology *struct {
		NumTrustedProxies *uint32 `json:"numTrustedProxies"`
	} `json:"gatewayTopology"`
}

func (p proxyConfig) numTrustedProxies() *uint32 {
	if p.GatewayTopology == nil {
		return nil
	}
	return p.GatewayTopology.NumTrustedProxies
}

// NumTrustedProxies reads gatewayTopology.numTrustedProxies from a Pod's proxy config
// annotation; nil when the annotation does not set it.
func NumTrustedProxies(annotation string) (*uint32, error) {
	var p proxyConfig
	if err := yaml.Unmarshal([]byte(annotation), &p); err != nil {
		return nil, fmt.Errorf("parsing the %s annotation: %w", ProxyConfigAnnotation, err)
	}
	return p.numTrustedProxies(), nil
}

// Parse reads the extension providers and the gateways' number of trusted proxies of a mesh
// config document.
func Parse(mesh string) (*model.MeshConfig, error) {
	var raw meshConfig
	if err := yaml.Unmarshal([]byte(mesh), &raw); err != nil {
		return nil, fmt.Errorf("parsing the mesh config: %w", err)
	}
	out := &model.MeshConfig{ExtensionProviders: map[string]model.ProviderKind{}}
	if n := raw.DefaultConfig.numTrustedProxies(); n != nil {
		out.NumTrustedProxies = *n
	}
	for i, p := range raw.ExtensionProviders {
		name, _ := p["name"].(string)
		if name == "" {
			return nil, fmt.Errorf("parsing the mesh config: extensionProviders[%d] has no name", i)
		}
		kind := model.ProviderOther
		switch {
		case p[string(model.ProviderExtAuthzHTTP)] != nil:
			kind = model.ProviderExtAuthzHTTP
		case p[string(model.ProviderExtAuthzGRPC)] != nil:
			kind = model.ProviderExtAuthzGRPC
		}
		out.ExtensionProviders[name] = kind
	}
	return out, nil
}
