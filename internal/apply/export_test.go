package apply

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StoredAsSent is the applier's check of a create's reply, for the tests of package apply_test.
func StoredAsSent(obj client.Object, reply []byte) (bool, error) {
	d, err := encode(obj)
	if err != nil {
		return false, err
	}
	return d.storedAsSent(reply)
}

// StoredAsSentViaMap is that check made on the decoded objects, as the applier made it before
// it read replies as JSON: the reply decoded as a client decodes it, its numbers normalized, no
// state field to replace, and the desired labels and owner references.
func StoredAsSentViaMap(obj client.Object, reply []byte) (bool, error) {
	d, err := encode(obj)
	if err != nil {
		return false, err
	}
	desired, err := d.unstructured()
	if err != nil {
		return false, err
	}
	stored := &unstructured.Unstructured{}
	if err := stored.UnmarshalJSON(reply); err != nil {
		return false, err
	}
	state, err := normalized(stored.Object)
	if err != nil {
		return false, err
	}
	return len(stateReplacement(desired.Object, state)) == 0 && hasOwnedMeta(desired, stored), nil
}
