package translate

import (
	networkingv1 "istio.io/api/networking/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// DefaultGatewayLabel marks the default Gateway the operator manages.
const DefaultGatewayLabel = "gateway.apirule.io/default-gateway"

// DefaultGateway returns the Gateway the operator keeps for APIRules that name none: HTTPS
// on *.<domain> with the credential Secret, and HTTP on the same hosts redirected to HTTPS,
// so no APIRule is ever served in plain text.
func DefaultGateway(ref types.NamespacedName, domain, credentialName string, selector map[string]string) *networkingclientv1.Gateway {
	hosts := []string{"*." + domain}
	return &networkingclientv1.Gateway{
		TypeMeta: metav1.TypeMeta{APIVersion: networkingclientv1.SchemeGroupVersion.String(), Kind: "Gateway"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name, Labels: map[string]string{
			ownership.LabelManagedBy: ownership.ManagedByValue,
			DefaultGatewayLabel:      "true",
		}},
		Spec: networkingv1.Gateway{
			Selector: selector,
			Servers: []*networkingv1.Server{
				{
					Port:  &networkingv1.Port{Number: 443, Name: "https", Protocol: "HTTPS"},
					Hosts: hosts,
					Tls: &networkingv1.ServerTLSSettings{
						Mode:               networkingv1.ServerTLSSettings_SIMPLE,
						CredentialName:     credentialName,
						MinProtocolVersion: networkingv1.ServerTLSSettings_TLSV1_2,
					},
				},
				{
					Port:  &networkingv1.Port{Number: 80, Name: "http", Protocol: "HTTP"},
					Hosts: hosts,
					Tls:   &networkingv1.ServerTLSSettings{HttpsRedirect: true},
				},
			},
		},
	}
}
