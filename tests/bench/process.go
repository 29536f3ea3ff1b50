package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// operatorProcess is the manager binary (cmd/manager) running against the control plane as a
// Deployment runs it: leader election on, its admission webhooks served (when the API server
// was set up to call them), metrics and probes on local ports, logs in a file.
type operatorProcess struct {
	cmd     *exec.Cmd
	started time.Time
	logPath string
	metrics string // base URL of the metrics endpoint
	pprof   string // base URL of the profiling endpoints
	exited  chan struct{}
	waitErr error
}

// processOptions say how the operator process is started.
type processOptions struct {
	binary     string
	kubeconfig string
	workers    int
	hook       envtest.WebhookInstallOptions
	logPath    string
	// memoryLimit, when set, is the process's GOMEMLIMIT.
	memoryLimit string
	// godebug, when set, is the process's GODEBUG.
	godebug string
}

func startOperatorProcess(ctx context.Context, opts processOptions, c client.Client) (*operatorProcess, error) {
	addresses, err := testenv.FreeAddresses(3)
	if err != nil {
		return nil, err
	}
	metricsAddr, probeAddr, pprofAddr := addresses[0], addresses[1], addresses[2]
	args := []string{
		"--leader-elect=true", "--leader-election-namespace=" + leaseNamespace,
		"--metrics-bind-address=" + metricsAddr, "--metrics-secure=false",
		"--health-probe-bind-address=" + probeAddr,
		"--pprof-bind-address=" + pprofAddr,
	}
	if opts.workers > 0 {
		args = append(args, fmt.Sprintf("--max-concurrent-reconciles=%d", opts.workers))
	}
	if servesWebhooks(opts.hook) {
		args = append(args, "--enable-webhook=true", "--webhook-cert-management=external",
			fmt.Sprintf("--webhook-port=%d", opts.hook.LocalServingPort), "--webhook-cert-dir="+opts.hook.LocalServingCertDir)
	} else {
		args = append(args, "--enable-webhook=false")
	}
	logFile, err := os.OpenFile(opts.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(opts.binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+opts.kubeconfig)
	if opts.memoryLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+opts.memoryLimit)
	}
	if opts.godebug != "" {
		cmd.Env = append(cmd.Env, "GODEBUG="+opts.godebug)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p := &operatorProcess{cmd: cmd, logPath: opts.logPath, metrics: "http://" + metricsAddr, pprof: "http://" + pprofAddr, exited: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", opts.binary, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(p.exited)
	}()
	ready := func() bool {
		resp, err := http.Get("http://" + probeAddr + "/readyz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	if err := p.waitUnlessExited(ctx, time.Minute, ready); err != nil {
		p.stop()
		return nil, fmt.Errorf("the operator did not become ready: %w%s", err, p.logTail())
	}
	if servesWebhooks(opts.hook) {
		// A dry run goes through admission without storing anything: once it passes and comes
		// back with the finalizer, the creates of the run are neither refused by a webhook the
		// API server cannot reach yet nor stored before the finalizer policy is in effect. Its
		// host is its own: the validating webhook refuses a host an APIRule claims.
		probe := benchAPIRule(0)
		probe.Name, probe.Spec.Hosts = "webhook-probe", []apiv2.Host{"webhook-probe.example.com"}
		var last error
		if err := p.waitUnlessExited(ctx, time.Minute, func() bool {
			last = testenv.AdmitsWithFinalizer(ctx, c, probe)
			return last == nil
		}); err != nil {
			p.stop()
			return nil, fmt.Errorf("admission of APIRules is not in place: %w (last: %w)%s", err, last, p.logTail())
		}
	}
	return p, nil
}

// waitUnlessExited is waitFor that gives up when the process has exited.
func (p *operatorProcess) waitUnlessExited(ctx context.Context, limit time.Duration, done func() bool) error {
	var exited bool
	err := waitFor(ctx, limit, func() bool {
		select {
		case <-p.exited:
			exited = true
			return true
		default:
			return done()
		}
	})
	if exited {
		return fmt.Errorf("the operator exited: %v", p.waitErr)
	}
	return err
}

// stop ends the process as a Deployment's rollout does (SIGTERM, then SIGKILL after 30 s)
// and waits for it to exit. Stopping no process, or one that has exited, does nothing.
func (p *operatorProcess) stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail is the end of the process's log, for an error message.
func (p *operatorProcess) logTail() string {
	raw, err := os.ReadFile(p.logPath)
	if err != nil || len(raw) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	return fmt.Sprintf("\nlast lines of the operator's log (%s):\n%s", p.logPath, strings.Join(lines[max(0, len(lines)-20):], "\n"))
}

// usage is what the kernel accounts to the process so far: CPU seconds (user and system,
// /proc/<pid>/stat) and the peak resident set size (VmHWM, /proc/<pid>/status).
type usage struct {
	CPUSeconds float64
	PeakRSSMiB float64
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

func (p *operatorProcess) usage() (usage, error) {
	return processUsage(p.cmd.Process.Pid)
}

func processUsage(pid int) (usage, error) {
	var u usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The fields after the command name (in parentheses, which may hold spaces): utime and
	// stime are fields 14 and 15 of the line, 12th and 13th after the name.
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		return u, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseFloat(fields[11], 64)
	stime, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return u, err
	}
	u.CPUSeconds = (utime + stime) / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			_, _ = fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
			u.PeakRSSMiB = kb / 1024
		}
	}
	return u, nil
}

// metric scrapes the process's metrics endpoint and sums the samples of the named metric
// whose labels include the given ones (testenv.SumSamples).
func (p *operatorProcess) metric(name string, labels map[string]string) (float64, error) {
	resp, err := http.Get(p.metrics + "/metrics")
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("reading the operator's metrics: %w", err)
	}
	return testenv.SumSamples(slices.Collect(maps.Values(families)), name, labels), nil
}

// knownAPIRules is how many APIRules the process has reconciled since it started
// (apirule_apirules counts each APIRule once, by the state its last reconcile computed).
func (p *operatorProcess) knownAPIRules() int {
	v, err := p.metric("apirule_apirules", nil)
	if err != nil {
		return 0
	}
	return int(v)
}

// profile writes a CPU profile of the process over the given time.
func (p *operatorProcess) profile(ctx context.Context, path string, over time.Duration) error {
	return writeProfile(ctx, http.DefaultClient, p.pprof, path, over)
}

// heapProfile writes a heap profile of the process, taken after a garbage collection, so it
// shows what is live.
func (p *operatorProcess) heapProfile(ctx context.Context, path string) error {
	return download(ctx, http.DefaultClient, p.pprof+"/debug/pprof/heap?gc=1", path)
}

// buildManager builds cmd/manager into dir and returns the binary's path.
func buildManager(dir string) (string, error) {
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "manager")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/manager")
	cmd.Dir = root
	if raw, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the manager: %w\n%s", err, raw)
	}
	return out, nil
}

// controlPlaneProcess finds the process of a binary of the run's control plane by one of its
// arguments (kube-apiserver by its --secure-port, etcd by its --listen-client-urls): envtest
// does not hand out their process IDs.
func controlPlaneProcess(binary, argument string) (int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) == binary && slices.Contains(args[1:], argument) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %s process with %s", binary, argument)
}
