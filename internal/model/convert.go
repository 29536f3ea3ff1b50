package model

import (
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// GatewayFromIstio takes what the translation needs from an Istio Gateway.
func GatewayFromIstio(gw *networkingclientv1.Gateway) *Gateway {
	out := &Gateway{Namespace: gw.Namespace, Name: gw.Name, Selector: gw.Spec.Selector}
	for _, server := range gw.Spec.Servers {
		out.Hosts = append(out.Hosts, server.Hosts...)
		out.Servers = append(out.Servers, GatewayServer{Port: server.GetPort().GetNumber(), Hosts: server.Hosts, CredentialName: server.GetTls().GetCredentialName()})
	}
	return out
}

// ServiceFromCore takes what the translation needs from a Service.
func ServiceFromCore(svc *corev1.Service) Service {
	out := Service{Namespace: svc.Namespace, Name: svc.Name, Selector: svc.Spec.Selector}
	for _, p := range svc.Spec.Ports {
		out.Ports = append(out.Ports, p.Port)
	}
	return out
}

// SecretFromCore takes a Secret's labels and data.
func SecretFromCore(s *corev1.Secret) *Secret {
	return &Secret{Namespace: s.Namespace, Name: s.Name, Labels: s.Labels, Data: s.Data}
}
