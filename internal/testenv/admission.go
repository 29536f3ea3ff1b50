package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// FinalizerPolicyFile is the install's MutatingAdmissionPolicy that sets the operator's
// finalizer on create, with its binding, relative to the repository root.
var FinalizerPolicyFile = filepath.Join("config", "finalizer-policy", "finalizer-policy.yaml")

// InstallFinalizerPolicy creates the objects of FinalizerPolicyFile as they are (an existing
// one is left alone), so the API server sets the finalizer as an install's does. It takes
// effect a moment later: callers that depend on it wait with WaitForFinalizerAdmission, once
// the rest of admission (the validating webhook) answers too.
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

// AdmitsWithFinalizer makes one dry-run create of a copy of probe, a valid APIRule, and
// says why admission does not set the operator's finalizer yet: an error, or stored
// finalizers without it. The API server applies a new policy a moment after it is created,
// and until it has loaded a new CRD's schema for its policies it refuses that CRD's creates
// with "Resource kind ... not found" (503), whatever a policy's failurePolicy.
func AdmitsWithFinalizer(ctx context.Context, c client.Client, probe client.Object) error {
	attempt := probe.DeepCopyObject().(client.Object)
	if err := c.Create(ctx, attempt, client.DryRunAll); err != nil {
		return err
	}
	if !slices.Contains(attempt.GetFinalizers(), ownership.Finalizer) {
		return fmt.Errorf("a dry-run create stored finalizers %v, without %s", attempt.GetFinalizers(), ownership.Finalizer)
	}
	return nil
}

// WaitForFinalizerAdmission returns once AdmitsWithFinalizer does, or with its last error
// after a minute.
func WaitForFinalizerAdmission(ctx context.Context, c client.Client, probe client.Object) error {
	var refused error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		refused = AdmitsWithFinalizer(ctx, c, probe)
		return refused == nil, nil
	})
	if err != nil && refused != nil && ctx.Err() == nil {
		return fmt.Errorf("admission does not set the finalizer a minute after the install: %w", refused)
	}
	return err
}
