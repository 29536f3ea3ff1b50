package slim

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StoredFromJSON builds the cache's slim object of a stored object from its JSON, as the
// cache's lists and watches read it.
func StoredFromJSON(raw []byte) (client.Object, error) {
	read, err := readStored(raw)
	if err != nil {
		return nil, err
	}
	o, ok := read.(*storedObject)
	if !ok {
		return nil, fmt.Errorf("read a %T", read)
	}
	// The kind as the map reads it: an object this reading left to the map has none yet.
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	kind, ok := storedKinds[u.GroupVersionKind()]
	if !ok {
		return nil, fmt.Errorf("not a stored kind: %s", u.GroupVersionKind())
	}
	return kind.objectFromJSON(o)
}

// StoredFromMap builds it from the map the JSON decodes into, as the dynamic client decoded
// it before.
func StoredFromMap(raw []byte) (client.Object, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	kind, ok := storedKinds[u.GroupVersionKind()]
	if !ok {
		return nil, fmt.Errorf("not a stored kind: %s", u.GroupVersionKind())
	}
	return kind.object(u)
}
