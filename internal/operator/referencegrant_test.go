package operator

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// A cluster without Gateway API's CRDs has no ReferenceGrant to read: the operator starts
// without the watch and refuses cross-namespace backends, saying why. With the CRD it reads
// the grants.
func TestServesReferenceGrantsFollowsTheCluster(t *testing.T) {
	without := meta.NewDefaultRESTMapper(nil)
	if served, err := servesReferenceGrants(without); err != nil || served {
		t.Errorf("without the CRD: served=%v, err=%v", served, err)
	}
	with := meta.NewDefaultRESTMapper(nil)
	with.Add(schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1beta1", Kind: "ReferenceGrant"}, meta.RESTScopeNamespace)
	if served, err := servesReferenceGrants(with); err != nil || !served {
		t.Errorf("with the CRD: served=%v, err=%v", served, err)
	}
}
