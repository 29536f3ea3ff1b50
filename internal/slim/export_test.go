package slim

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// StoredFromJSON builds the cache's slim object of a stored object from its JSON, as the
// cache's lists and watches read it.
func StoredFromJSON(raw []byte) (client.Object, error) {
	// The kind as the map reads it: an object this reading left to the map has none yet.
	kind, _, err := decodedStored(raw)
	if err != nil {
		return nil, err
	}
	read, err := readStored(raw)
	if err != nil {
		return nil, err
	}
	o, ok := read.(*storedObject)
	if !ok {
		return nil, fmt.Errorf("read a %T", read)
	}
	return kind.objectFromJSON(o)
}

// StoredFromMap builds it from the map the JSON decodes into, as the dynamic client decoded
// it before.
func StoredFromMap(raw []byte) (client.Object, error) {
	kind, u, err := decodedStored(raw)
	if err != nil {
		return nil, err
	}
	return kind.object(u)
}

// decodedStored is a stored object decoded into a map, and its kind.
func decodedStored(raw []byte) (storedKind, *unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		return storedKind{}, nil, err
	}
	kind, ok := storedKinds[u.GroupVersionKind()]
	if !ok {
		return storedKind{}, nil, fmt.Errorf("not a stored kind: %s", u.GroupVersionKind())
	}
	return kind, u, nil
}
