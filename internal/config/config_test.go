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
