package config

import (
	"maps"
	"strings"
	"testing"
)

func TestParseSelector(t *testing.T) {
	got, err := ParseSelector("istio=ingressgateway, app=edge")
	if err != nil || !maps.Equal(got, map[string]string{"istio": "ingressgateway", "app": "edge"}) {
		t.Errorf("ParseSelector = %v, %v", got, err)
	}
	for _, bad := range []string{"", "istio", "istio=", "=x", "a=b,"} {
		if _, err := ParseSelector(bad); err == nil {
			t.Errorf("ParseSelector(%q) succeeded", bad)
		}
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	cases := map[string]func(*Settings){
		"--ingress-gateway-selector":  func(s *Settings) { s.IngressGatewaySelector = "istio" },
		"--ingress-gateway-namespace": func(s *Settings) { s.IngressGatewayNamespace = "" },
		"--default-gateway as":        func(s *Settings) { s.ManageDefaultGateway = true },
		"--default-gateway-domain":    func(s *Settings) { s.ManageDefaultGateway, s.DefaultGateway = true, "istio-system/default" },
		"--default-gateway-credential": func(s *Settings) {
			s.ManageDefaultGateway, s.DefaultGateway, s.DefaultGatewayDomain = true, "istio-system/default", "example.com"
		},
	}
	for flag, change := range cases {
		s := Defaults()
		change(&s)
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("Validate() = %v, want an error naming %s", err, flag)
		}
	}
	s := Defaults()
	s.ManageDefaultGateway, s.DefaultGateway, s.DefaultGatewayDomain, s.DefaultGatewayCredential = true, "istio-system/default", "example.com", "example-com-tls"
	if err := s.Validate(); err != nil {
		t.Errorf("valid settings: %v", err)
	}
	if err := Defaults().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestPrincipalFollowsTheIngressGatewayNamespace(t *testing.T) {
	s := Defaults()
	if got, want := s.Principal(), "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"; got != want {
		t.Errorf("default principal = %s, want %s", got, want)
	}
	s.IngressGatewayNamespace = "gateways"
	if got, want := s.Principal(), "cluster.local/ns/gateways/sa/istio-ingressgateway-service-account"; got != want {
		t.Errorf("principal with --ingress-gateway-namespace=gateways = %s, want %s", got, want)
	}
	s.IngressGatewayServiceAccount = "edge"
	if got, want := s.Translate().IngressGatewayPrincipal, "cluster.local/ns/gateways/sa/edge"; got != want {
		t.Errorf("translated principal = %s, want %s", got, want)
	}
	if err := s.ValidateManager(); err != nil {
		t.Errorf("derived principal refused: %v", err)
	}
	s.IngressGatewayPrincipal = "example.org/ns/gateways/sa/gw"
	if got := s.Translate().IngressGatewayPrincipal; got != "example.org/ns/gateways/sa/gw" {
		t.Errorf("explicit principal replaced by %s", got)
	}
	if err := s.ValidateManager(); err != nil {
		t.Errorf("explicit principal of the gateway namespace refused: %v", err)
	}
}

func TestPrincipalOfAnotherNamespaceIsRefused(t *testing.T) {
	s := Defaults()
	s.IngressGatewayNamespace = "gateways"
	s.IngressGatewayPrincipal = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
	err := s.ValidateManager()
	if err == nil {
		t.Fatal("a principal of istio-system with --ingress-gateway-namespace=gateways was accepted")
	}
	for _, want := range []string{"--ingress-gateway-principal", "--ingress-gateway-namespace", `"istio-system"`, `"gateways"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	// Offline rendering does not know where the gateway runs and checks the form only.
	if err := s.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func TestMalformedPrincipalIsRefused(t *testing.T) {
	for _, bad := range []string{"istio-ingressgateway", "spiffe://cluster.local/ns/istio-system/sa/gw", "cluster.local/ns//sa/gw", "cluster.local/ns/istio-system/sa/"} {
		s := Defaults()
		s.IngressGatewayPrincipal = bad
		if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--ingress-gateway-principal") {
			t.Errorf("principal %q: Validate() = %v, want an error naming --ingress-gateway-principal", bad, err)
		}
	}
	s := Defaults()
	s.IngressGatewayServiceAccount = ""
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "--ingress-gateway-service-account") {
		t.Errorf("empty service account: Validate() = %v", err)
	}
}
