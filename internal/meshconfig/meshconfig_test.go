package meshconfig

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/apirule-operator/apirule-operator/internal/model"
)

func TestParse(t *testing.T) {
	got, err := Parse(`
defaultConfig:
  gatewayTopology: {numTrustedProxies: 1}
extensionProviders:
- name: oauth2-proxy
  envoyExtAuthzHttp: {service: oauth2-proxy.auth.svc.cluster.local, port: 4180}
- name: opa
  envoyExtAuthzGrpc: {service: opa.opa.svc.cluster.local, port: 9191}
- name: tracing
  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}
`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]model.ProviderKind{
		"oauth2-proxy": model.ProviderExtAuthzHTTP,
		"opa":          model.ProviderExtAuthzGRPC,
		"tracing":      model.ProviderOther,
	}
	if !reflect.DeepEqual(got.ExtensionProviders, want) {
		t.Errorf("providers = %v, want %v", got.ExtensionProviders, want)
	}
	if got.NumTrustedProxies != 1 {
		t.Errorf("numTrustedProxies = %d, want 1", got.NumTrustedProxies)
	}
}

func TestNumTrustedProxiesAnnotation(t *testing.T) {
	for annotation, want := range map[string]string{
		"gatewayTopology:\n  numTrustedProxies: 2\n":    "2",
		`{"gatewayTopology": {"numTrustedProxies": 0}}`: "0",
		"concurrency: 2\n": "unset",
	} {
		got, err := NumTrustedProxies(annotation)
		if err != nil {
			t.Fatal(err)
		}
		text := "unset"
		if got != nil {
			text = fmt.Sprint(*got)
		}
		if text != want {
			t.Errorf("NumTrustedProxies(%q) = %s, want %s", annotation, text, want)
		}
	}
	if _, err := NumTrustedProxies("gatewayTopology: ["); err == nil {
		t.Error("a broken annotation parsed")
	}
}

func TestParseRejectsBrokenConfig(t *testing.T) {
	for _, mesh := range []string{"extensionProviders: {", "extensionProviders:\n- envoyExtAuthzHttp: {}\n"} {
		if _, err := Parse(mesh); err == nil {
			t.Errorf("Parse(%q) succeeded", mesh)
		}
	}
}

func TestConfigMapName(t *testing.T) {
	for rev, want := range map[string]string{"": "istio", "default": "istio", "1-31": "istio-1-31"} {
		if got := ConfigMapName(rev); got != want {
			t.Errorf("ConfigMapName(%q) = %q, want %q", rev, got, want)
		}
	}
}
