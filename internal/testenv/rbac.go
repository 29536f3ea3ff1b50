package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"
)

// ManagerUser is the user the suites run the operator as: it holds the manager's RBAC and
// nothing else.
const ManagerUser = "apirule-operator-manager"

// OperatorNamespace is the namespace the +kubebuilder:rbac markers name for the operator's
// own namespace: the kustomize install's namespace.
const OperatorNamespace = "apirule-system"

// ManagerConfig returns a rest.Config for a user that holds exactly the RBAC the installed
// manager holds, so that a suite fails when the operator needs a permission the install does
// not grant. The rules are read from the repository at call time: every ClusterRole of
// config/rbac/role.yaml (generated from the +kubebuilder:rbac markers) is granted
// cluster-wide and every Role in the namespace its marker names. When operatorNamespace is
// set, the Roles for the operator's namespace (apirule-system in the markers) are granted in
// it instead, as an install renders them into its namespace, and so is the leader election
// Role of config/rbac/leader_election_role.yaml. Calling it again re-reads the files and
// updates the grants.
func (e *Environment) ManagerConfig(ctx context.Context, operatorNamespace string) (*rest.Config, error) {
	user, err := e.managerUser(ctx, operatorNamespace)
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// ManagerKubeconfig is ManagerConfig as a kubeconfig file's contents, for an operator
// started as a process of its own.
func (e *Environment) ManagerKubeconfig(ctx context.Context, operatorNamespace string) ([]byte, error) {
	user, err := e.managerUser(ctx, operatorNamespace)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}

func (e *Environment) managerUser(ctx context.Context, operatorNamespace string) (*envtest.AuthenticatedUser, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	admin, err := client.New(e.Config, client.Options{})
	if err != nil {
		return nil, err
	}
	roles, err := readRoles(filepath.Join(root, "config", "rbac", "role.yaml"))
	if err != nil {
		return nil, err
	}
	if operatorNamespace != "" {
		leaderElection, err := readRoles(filepath.Join(root, "config", "rbac", "leader_election_role.yaml"))
		if err != nil {
			return nil, err
		}
		roles = append(roles, leaderElection...)
		for _, r := range roles {
			if r.namespaced && r.namespace == OperatorNamespace {
				r.namespace = operatorNamespace
			}
		}
	}
	var granted []*role
	for _, r := range roles {
		ok, err := r.grant(ctx, admin, ManagerUser)
		if err != nil {
			return nil, err
		}
		if ok {
			granted = append(granted, r)
		}
	}
	user, err := e.AddUser(envtest.User{Name: ManagerUser}, e.Config)
	if err != nil {
		return nil, fmt.Errorf("adding the manager's user: %w", err)
	}
	if err := waitForRBAC(ctx, user.Config(), granted); err != nil {
		return nil, err
	}
	return user, nil
}

// role is a ClusterRole or a Role (namespaced) read from a manifest.
type role struct {
	name, namespace string
	namespaced      bool
	rules           []rbacv1.PolicyRule
}

func readRoles(path string) ([]*role, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the manager's RBAC: %w", err)
	}
	var roles []*role
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var obj struct {
			Kind     string              `json:"kind"`
			Metadata metav1.ObjectMeta   `json:"metadata"`
			Rules    []rbacv1.PolicyRule `json:"rules"`
		}
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		switch obj.Kind {
		case "":
			continue
		case "ClusterRole":
			roles = append(roles, &role{name: obj.Metadata.Name, rules: obj.Rules})
		case "Role":
			roles = append(roles, &role{name: obj.Metadata.Name, namespace: obj.Metadata.Namespace, namespaced: true, rules: obj.Rules})
		default:
			return nil, fmt.Errorf("%s: unexpected %s %q; only ClusterRoles and Roles belong there", path, obj.Kind, obj.Metadata.Name)
		}
	}
	if len(roles) == 0 {
		return nil, fmt.Errorf("%s holds no ClusterRole or Role", path)
	}
	return roles, nil
}

// grant creates or updates the role and binds it to the user. A Role for a namespace that does
// not exist is not granted (false): the operator can do nothing in a missing namespace either,
// and the suite does not have to create every namespace the markers name. Create the
// namespaces a suite uses before calling ManagerConfig.
func (r *role) grant(ctx context.Context, c client.Client, user string) (bool, error) {
	name := "test-" + r.name
	subjects := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}
	if !r.namespaced {
		cr := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}}
		crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}}
		return true, createOrUpdate(ctx, c,
			mutate(cr, func() { cr.Rules = r.rules }),
			mutate(crb, func() {
				crb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}
				crb.Subjects = subjects
			}))
	}
	if err := c.Get(ctx, client.ObjectKey{Name: r.namespace}, &corev1.Namespace{}); apierrors.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("looking up namespace %s for Role %s: %w", r.namespace, r.name, err)
	}
	ro := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.namespace}}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.namespace}}
	return true, createOrUpdate(ctx, c,
		mutate(ro, func() { ro.Rules = r.rules }),
		mutate(rb, func() {
			rb.RoleRef = rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name}
			rb.Subjects = subjects
		}))
}

type mutation struct {
	obj client.Object
	fn  controllerutil.MutateFn
}

func mutate(obj client.Object, fn func()) mutation {
	return mutation{obj: obj, fn: func() error { fn(); return nil }}
}

func createOrUpdate(ctx context.Context, c client.Client, ms ...mutation) error {
	for _, m := range ms {
		if _, err := controllerutil.CreateOrUpdate(ctx, c, m.obj, m.fn); err != nil {
			return fmt.Errorf("granting %s %s: %w", m.obj.GetObjectKind().GroupVersionKind().Kind, m.obj.GetName(), err)
		}
	}
	return nil
}

// waitForRBAC waits until the API server's authorizer has seen the new bindings: it updates
// from a watch, so the first requests after a grant may still be refused.
func waitForRBAC(ctx context.Context, cfg *rest.Config, roles []*role) error {
	scheme := runtime.NewScheme()
	if err := authorizationv1.AddToScheme(scheme); err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, r := range roles {
			for _, rule := range r.rules {
				if len(rule.Verbs) == 0 || len(rule.Resources) == 0 || len(rule.APIGroups) == 0 {
					continue
				}
				resource, subresource, _ := strings.Cut(rule.Resources[0], "/")
				attributes := &authorizationv1.ResourceAttributes{
					Namespace: r.namespace, Verb: rule.Verbs[0], Group: rule.APIGroups[0],
					Resource: resource, Subresource: subresource,
				}
				// A rule limited to named objects allows nothing without a name.
				if len(rule.ResourceNames) > 0 {
					attributes.Name = rule.ResourceNames[0]
				}
				review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attributes}}
				if err := c.Create(ctx, review); err != nil || !review.Status.Allowed {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the manager's RBAC to take effect: %w", err)
	}
	return nil
}
