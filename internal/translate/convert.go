package translate

import (
	"strings"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
)

// GatewayFromIstio takes what the translation needs from an Istio Gateway.
func GatewayFromIstio(gw *networkingclientv1.Gateway) *Gateway {
	out := &Gateway{Namespace: gw.Namespace, Name: gw.Name}
	for _, server := range gw.Spec.Servers {
		for _, host := range server.Hosts {
			// A Gateway host may be written namespace/host; the namespace part only limits
			// which VirtualServices may bind.
			if i := strings.LastIndex(host, "/"); i >= 0 {
				host = host[i+1:]
			}
			out.Hosts = append(out.Hosts, host)
		}
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
