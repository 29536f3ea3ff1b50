package harness

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	meshconfig "istio.io/api/mesh/v1alpha1"
	"istio.io/istio/pilot/pkg/features"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pilot/pkg/simulation"
	"istio.io/istio/pilot/test/xds"
	"istio.io/istio/pkg/config/mesh"
	"istio.io/istio/pkg/jwt"
	"istio.io/istio/pkg/test"
	"sigs.k8s.io/yaml"

	"github.com/apirule-operator/apirule-operator/tests/istio/envoyeval"
)

// Where the modelled mesh puts things. The gateway identity is the one the translator admits
// by default (RenderOptions ingressGatewayPrincipal).
const (
	IstioNamespace          = "istio-system"
	GatewayServiceAccount   = "istio-ingressgateway-service-account"
	GatewayPodIP            = "10.1.0.2"
	DefaultClientAddress    = "203.0.113.10"
	DefaultInMeshCallerIP   = "10.1.200.9"
	defaultIstioProxyVerson = "1.31.0"
)

func init() {
	// With the default (istiod fetches jwksUri) every RequestAuthentication waits seconds for
	// a JWKS server that does not exist here, then inlines a key that fails every token. In
	// "envoy" mode the provider points Envoy at the URI instead. Only the key source differs;
	// tokens are modelled symbolically (envoyeval.Token), so nothing the harness checks does.
	features.JwksFetchMode = jwt.Envoy
}

// GatewayPrincipal is the SPIFFE identity (without spiffe://) of the modelled ingress gateway.
func GatewayPrincipal(trustDomain string) string {
	return trustDomain + "/ns/" + IstioNamespace + "/sa/" + GatewayServiceAccount
}

// Backend is one Service of the input and the sidecar of the workload it selects.
type Backend struct {
	Name, Namespace string
	// Ports maps the Service port to the container port the sidecar receives on.
	Ports map[int]int
	Proxy *envoyeval.Proxy
}

// Env is Istio's configuration for one case: the ingress gateway and one sidecar per backend.
type Env struct {
	Mesh     *meshconfig.MeshConfig
	Gateway  *envoyeval.Proxy
	Backends map[string]*Backend // key "<service>.<namespace>"
	// GatewayServers maps each Gateway server port to whether it terminates TLS.
	GatewayServers map[int]bool
	// Authorizers maps an ext_authz cluster name to its extension provider name.
	Authorizers map[string]string

	gatewaySim *simulation.Simulation
}

// NewEnv has istiod's config generation (in process) build the xDS of the case: the input's
// Gateways, Services and mesh config plus every object of the generated output.
func NewEnv(t *testing.T, c Case) *Env {
	t.Helper()
	e := &Env{Backends: map[string]*Backend{}, GatewayServers: map[int]bool{}, Authorizers: map[string]string{}}
	var err error
	e.Mesh, err = meshFromInput(c.Input)
	if err != nil {
		t.Fatalf("%s: mesh config: %v", c.Name, err)
	}
	for _, p := range e.Mesh.GetExtensionProviders() {
		if h := p.GetEnvoyExtAuthzHttp(); h != nil {
			e.Authorizers[fmt.Sprintf("outbound|%d||%s", h.GetPort(), h.GetService())] = p.GetName()
		}
		if g := p.GetEnvoyExtAuthzGrpc(); g != nil {
			e.Authorizers[fmt.Sprintf("outbound|%d||%s", g.GetPort(), g.GetService())] = p.GetName()
		}
	}
	istioDocs := append(Of(c.Input, "Gateway"), IstioConfig(c.Output)...)
	for _, g := range Of(istioDocs, "Gateway") {
		servers, _ := nested(g.Object, "spec", "servers").([]any)
		for _, s := range servers {
			sm, _ := s.(map[string]any)
			port, _ := nested(sm, "port", "number").(float64)
			proto, _ := nested(sm, "port", "protocol").(string)
			e.GatewayServers[int(port)] = proto == "HTTPS" || proto == "TLS"
		}
	}
	// The operator's RenderOptions say how istiod runs; mirror the settings that change xDS.
	for _, o := range Of(c.Input, "RenderOptions") {
		if on, _ := o.Object["multipleCustomAuthzProviders"].(bool); on {
			test.SetForTest(t, &features.EnableMultipleCustomAuthzProviders, true)
		}
	}
	kube, backends, err := kubernetesObjects(c.Input, e.Mesh)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	s := xds.NewFakeDiscoveryServer(t, xds.FakeOptions{
		ConfigString:           JoinYAML(istioDocs),
		KubernetesObjectString: kube,
		MeshConfig:             e.Mesh,
	})
	gw := s.SetupProxy(&model.Proxy{
		Type:            model.Router,
		ID:              "istio-ingressgateway-0." + IstioNamespace,
		IPAddresses:     []string{GatewayPodIP},
		ConfigNamespace: IstioNamespace,
		Labels:          map[string]string{"istio": "ingressgateway"},
		Metadata: &model.NodeMetadata{
			Namespace:      IstioNamespace,
			Labels:         map[string]string{"istio": "ingressgateway"},
			IstioVersion:   defaultIstioProxyVerson,
			ServiceAccount: GatewayServiceAccount,
		},
	})
	e.gatewaySim = simulation.NewSimulation(t, s, gw)
	e.Gateway = &envoyeval.Proxy{Listeners: e.gatewaySim.Listeners, Routes: e.gatewaySim.Routes}
	for _, b := range backends {
		p := s.SetupProxy(&model.Proxy{
			Type:            model.SidecarProxy,
			ID:              b.pod + "." + b.Namespace,
			IPAddresses:     []string{b.ip},
			ConfigNamespace: b.Namespace,
			Labels:          b.labels,
			Metadata: &model.NodeMetadata{
				Namespace:      b.Namespace,
				Labels:         b.labels,
				IstioVersion:   defaultIstioProxyVerson,
				ServiceAccount: b.Name,
			},
		})
		b.Proxy = proxyConfig(t, s, p)
		e.Backends[b.Name+"."+b.Namespace] = &b.Backend
	}
	return e
}

func proxyConfig(t *testing.T, s *xds.FakeDiscoveryServer, p *model.Proxy) *envoyeval.Proxy {
	sim := simulation.NewSimulation(t, s, p)
	return &envoyeval.Proxy{Listeners: sim.Listeners, Routes: sim.Routes}
}

func nested(obj map[string]any, keys ...string) any {
	var cur any = obj
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// meshFromInput reads the istio ConfigMap of the input (data.mesh) over Istio's defaults.
func meshFromInput(input []Doc) (*meshconfig.MeshConfig, error) {
	for _, d := range Of(input, "ConfigMap") {
		if d.Name != "istio" || d.Namespace != IstioNamespace {
			continue
		}
		data, _ := d.Object["data"].(map[string]any)
		if m, ok := data["mesh"].(string); ok {
			return mesh.ApplyMeshConfigDefaults(m)
		}
	}
	m := mesh.DefaultMeshConfig()
	return m, nil
}

type backendSetup struct {
	Backend
	pod    string
	ip     string
	labels map[string]string
}

// kubernetesObjects returns the input's Services plus one running Pod per Service, labelled
// with the Service's selector, so istiod builds that workload's inbound listener.
func kubernetesObjects(input []Doc, m *meshconfig.MeshConfig) (string, []*backendSetup, error) {
	var docs []string
	var backends []*backendSetup
	services := Of(input, "Service")
	// The authorizers of the mesh config run as Services in a real mesh; without them istiod
	// refuses the provider and turns every CUSTOM policy into a deny-all.
	for _, p := range m.GetExtensionProviders() {
		svc, port := "", uint32(0)
		if h := p.GetEnvoyExtAuthzHttp(); h != nil {
			svc, port = h.GetService(), h.GetPort()
		}
		if g := p.GetEnvoyExtAuthzGrpc(); g != nil {
			svc, port = g.GetService(), g.GetPort()
		}
		labels := strings.Split(svc, ".")
		if len(labels) < 2 {
			continue
		}
		docs = append(docs, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec:\n  ports: [{name: http, port: %d}]", labels[0], labels[1], port))
	}
	sort.Slice(services, func(i, j int) bool { return services[i].Ref() < services[j].Ref() })
	for i, svc := range services {
		ns := svc.Namespace
		if ns == "" {
			ns = "default"
		}
		sel, _ := nested(svc.Object, "spec", "selector").(map[string]any)
		if len(sel) == 0 {
			return "", nil, fmt.Errorf("Service %s/%s has no selector: the harness needs one to place its sidecar", ns, svc.Name)
		}
		labels := map[string]string{}
		for k, v := range sel {
			labels[k] = fmt.Sprint(v)
		}
		b := &backendSetup{
			Backend: Backend{Name: svc.Name, Namespace: ns, Ports: map[int]int{}},
			pod:     svc.Name + "-0",
			ip:      fmt.Sprintf("10.1.%d.%d", 1+i/200, 10+i%200),
			labels:  labels,
		}
		ports, _ := nested(svc.Object, "spec", "ports").([]any)
		for _, p := range ports {
			pm, _ := p.(map[string]any)
			if _, set := pm["targetPort"]; !set {
				// The API server defaults targetPort to port; istiod's inbound listener needs it.
				pm["targetPort"] = pm["port"]
			}
			port, _ := pm["port"].(float64)
			target := int(port)
			if tp, ok := pm["targetPort"].(float64); ok {
				target = int(tp)
			} else if _, named := pm["targetPort"].(string); named {
				return "", nil, fmt.Errorf("Service %s/%s: named targetPort is not modelled", ns, svc.Name)
			}
			b.Ports[int(port)] = target
		}
		svcObj := map[string]any{}
		for k, v := range svc.Object {
			svcObj[k] = v
		}
		md, _ := svcObj["metadata"].(map[string]any)
		md = copyMap(md)
		md["namespace"] = ns
		svcObj["metadata"] = md
		sy, err := yaml.Marshal(svcObj)
		if err != nil {
			return "", nil, err
		}
		docs = append(docs, string(sy))
		var containerPorts []any
		for _, target := range b.Ports {
			containerPorts = append(containerPorts, map[string]any{"containerPort": target})
		}
		pod := map[string]any{
			"apiVersion": "v1", "kind": "Pod",
			"metadata": map[string]any{"name": b.pod, "namespace": ns, "labels": labels},
			"spec": map[string]any{
				"serviceAccountName": svc.Name,
				"containers":         []any{map[string]any{"name": "app", "image": "app", "ports": containerPorts}},
			},
			"status": map[string]any{
				"phase": "Running", "podIP": b.ip, "podIPs": []any{map[string]any{"ip": b.ip}},
				"conditions": []any{map[string]any{"type": "Ready", "status": "True"}},
			},
		}
		py, err := yaml.Marshal(pod)
		if err != nil {
			return "", nil, err
		}
		docs = append(docs, string(py))
		backends = append(backends, b)
	}
	return strings.Join(docs, "\n---\n"), backends, nil
}

func copyMap(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	return out
}
