package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadRoles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// The shape controller-gen writes when a marker names a namespace: a ClusterRole and a
	// Role of the same name in one file.
	roles, err := readRoles(write("role.yaml", `---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: manager-role
rules:
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: manager-role
  namespace: system
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, create]
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(roles) != 2 {
		t.Fatalf("read %d roles, want 2", len(roles))
	}
	if roles[0].namespaced || roles[0].rules[0].Resources[0] != "services" {
		t.Errorf("first role: %+v, want the ClusterRole", roles[0])
	}
	if !roles[1].namespaced || roles[1].namespace != "system" || roles[1].rules[0].Verbs[1] != "create" {
		t.Errorf("second role: %+v, want the Role in system", roles[1])
	}

	if _, err := readRoles(write("binding.yaml", "kind: RoleBinding\nmetadata: {name: x}\n")); err == nil || !strings.Contains(err.Error(), "RoleBinding") {
		t.Errorf("a RoleBinding was read as a role: err=%v", err)
	}
	if _, err := readRoles(write("empty.yaml", "---\n")); err == nil {
		t.Error("a file without roles was accepted")
	}
}
