// Package kubescheme builds the scheme of every type the operator reads or writes, for the
// manager and for apirulectl's in-memory store alike.
package kubescheme

import (
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

// New returns a scheme with every type the operator reads or writes.
func New() (*runtime.Scheme, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme,
		apiv2.AddToScheme,
		networkingclientv1.AddToScheme,
		securityclientv1.AddToScheme,
		// ReferenceGrant, the consent to cross-namespace backends; only that kind is read.
		gatewayv1beta1.Install,
	} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return scheme, nil
}
