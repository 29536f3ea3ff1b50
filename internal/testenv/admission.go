package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// FinalizerPolicyFile is the install's MutatingAdmissionPolicy that sets the operator's
// finalizer on create, with its binding, relative to the repository root.
var FinalizerPolicyFile = filepath.Join("config", "finalizer-policy", "finalizer-policy.yaml")

// InstallFinalizerPolicy creates the objects of FinalizerPolicyFile as they are (an existing
// one is left alone), so the API server sets the finalizer as an install's does. The API
// server applies a new policy a moment after it is created: callers that depend on it wait
// for a dry-run create that comes back with the finalizer.
func InstallFinalizerPolicy(ctx context.Context, c client.Client) error {
	root, err := RepoRoot()
	if err != nil {
		return err
	}
	path := filepath.Join(root, FinalizerPolicyFile)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	decoder := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	created := 0
	for {
		obj := &unstructured.Unstructured{}
		switch err := decoder.Decode(&obj.Object); {
		case errors.Is(err, io.EOF):
			if created == 0 {
				return fmt.Errorf("%s holds no objects", path)
			}
			return nil
		case err != nil:
			return fmt.Errorf("reading %s: %w", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s from %s: %w", obj.GetKind(), obj.GetName(), path, err)
		}
		created++
	}
}
