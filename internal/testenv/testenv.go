// Package testenv starts a real kube-apiserver and etcd (controller-runtime envtest) with the
// APIRule CRD and Istio's CRDs installed. The integration suites and the demo share it.
//
// The binaries come from `make envtest-assets`, which builds them from the Go module proxy
// into bin/envtest; into bin/crds it copies the Istio CRDs from the istio.io/api module and
// Gateway API's ReferenceGrant CRD from the sigs.k8s.io/gateway-api module.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/apirule-operator/apirule-operator/internal/operator"
)

// Environment is a running control plane.
type Environment struct {
	*envtest.Environment
	Config *rest.Config
}

// RepoRoot returns the repository's root directory: the nearest parent of the working
// directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Start starts the control plane and installs the CRDs. Call Stop when done.
func Start() (*Environment, error) { return StartWith(nil) }

// StartWith is Start with a hook that adjusts the environment before it starts, for
// example to install webhook configurations.
func StartWith(configure func(*envtest.Environment)) (*Environment, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := envOr("KUBEBUILDER_ASSETS", filepath.Join(root, "bin", "envtest"))
	istioCRDs := envOr("APIRULE_ISTIO_CRDS", filepath.Join(root, "bin", "crds", "istio.yaml"))
	referenceGrantCRD := envOr("APIRULE_REFERENCE_GRANT_CRD", filepath.Join(root, "bin", "crds", "referencegrants.yaml"))
	for _, required := range []string{filepath.Join(assets, "kube-apiserver"), filepath.Join(assets, "etcd"), istioCRDs, referenceGrantCRD} {
		if _, err := os.Stat(required); err != nil {
			return nil, fmt.Errorf("%s is missing: run 'make envtest-assets' first (it builds the control plane from the Go module proxy)", required)
		}
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions: envtest.CRDInstallOptions{
			Paths:              []string{filepath.Join(root, "config", "crd", "bases"), istioCRDs, referenceGrantCRD},
			ErrorIfPathMissing: true,
		},
	}
	if configure != nil {
		configure(env)
	}
	cfg, err := env.Start()
	if err != nil {
		// Start may fail after launching the processes (a CRD that does not install); stop
		// them so that no etcd or kube-apiserver is left behind.
		return nil, errors.Join(fmt.Errorf("starting the control plane: %w", err), env.Stop())
	}
	return &Environment{Environment: env, Config: cfg}, nil
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}

// Client returns a client that knows every type the operator uses.
func (e *Environment) Client() (client.Client, error) {
	scheme, err := operator.NewScheme()
	if err != nil {
		return nil, err
	}
	return client.New(e.Config, client.Options{Scheme: scheme})
}
