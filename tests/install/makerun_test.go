package install_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// make run starts the operator against the cluster of the current kubeconfig with one
// command, as docs/development.md says: here the test's control plane, whose CRDs are
// installed. It must come up healthy and start its controllers.
func TestMakeRunStartsTheOperatorAgainstTheKubeconfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the manager")
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	probe := freeAddress(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	// -o manifests: make run regenerates the manifests first, which would rewrite the CRDs
	// and RBAC the other packages' tests read while they run; the checkout's are current
	// (make verify checks that).
	cmd := exec.CommandContext(ctx, "make", "-o", "manifests", "run", "RUN_ARGS=--metrics-bind-address=0 --health-probe-bind-address="+probe)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	// Its own process group: go run's child, the manager, must stop with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	}()

	started := make(chan struct{})
	var mu sync.Mutex
	var log strings.Builder
	go func() {
		scanner := bufio.NewScanner(out)
		for scanner.Scan() {
			mu.Lock()
			log.WriteString(scanner.Text() + "\n")
			mu.Unlock()
			if strings.Contains(scanner.Text(), `"Starting workers"`) && strings.Contains(scanner.Text(), `"controller":"apirule"`) {
				close(started)
			}
		}
	}()
	select {
	case <-started:
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("the operator did not start its workers:\n%s", log.String())
	}
	probeClient := &http.Client{Timeout: 10 * time.Second}
	resp, err := probeClient.Get("http://" + probe + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz answered %d", resp.StatusCode)
	}
}

func freeAddress(t *testing.T) string {
	t.Helper()
	addresses, err := testenv.FreeAddresses(1)
	if err != nil {
		t.Fatal(err)
	}
	return addresses[0]
}
