// Command bench runs the scale benchmark: make bench [BENCH_N=10000] [BENCH_WRITE_DOCS=1].
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/apirule-operator/apirule-operator/tests/bench"
)

func main() {
	n := flag.Int("n", envInt("BENCH_N", 1000), "number of APIRules (BENCH_N)")
	rates := flag.String("steady-rates", "50,75,100", "comma-separated APIRules per second of the steady-load runs, one after the other; 0 or empty skips them")
	steadyFor := flag.Duration("steady-for", 60*time.Second, "length of the steady-load run")
	docs := flag.String("write-docs", os.Getenv("BENCH_WRITE_DOCS"), "write the figures into this Markdown file (BENCH_WRITE_DOCS; 1 means docs/performance.md)")
	ceilingWorkers := flag.String("ceiling-workers", "4,16,32", "comma-separated client concurrencies tried for the write ceiling")
	workers := flag.Int("workers", 0, "concurrent reconciles of the operator; 0 keeps its default")
	manager := flag.String("manager", "bin/manager", "the built manager binary (make build) the run starts as the operator")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of this process (the load driver and the ceiling's client) to this file")
	operatorProfile := flag.String("operator-cpuprofile", "", "write a CPU profile of the operator process during the bulk run to this file")
	operatorHeapProfile := flag.String("operator-heapprofile", "", "write a heap profile of the operator process at the end of the bulk run to this file")
	restartHeapProfile := flag.String("restart-heapprofile", "", "write a heap profile of the restarted operator process, once it has verified every APIRule, to this file")
	memoryLimit := flag.String("operator-memory-limit", "", "GOMEMLIMIT of the operator process (an install sets it from the container's memory limit), for example 280MiB; empty: none")
	apiServerProfile := flag.String("apiserver-cpuprofile", "", "write a CPU profile of kube-apiserver during the bulk run to this file")
	profileFor := flag.Duration("profile-for", 15*time.Second, "how long the operator and kube-apiserver profiles run, from the first create")
	withWebhook := flag.Bool("webhook", true, "serve the operator's admission webhooks, as an install does (the finalizer then comes with the create); false: the operator patches the finalizer in")
	finalizer := flag.String("finalizer-admission", bench.FinalizerByPolicy, "with -webhook, who sets the finalizer on create: policy, the install's MutatingAdmissionPolicy; webhook, the operator's mutating webhook (the install for clusters before Kubernetes 1.36)")
	logDir := flag.String("operator-logs", "", "keep the operator processes' logs (operator-bulk.log, operator-restarted.log) in this directory")
	godebug := flag.String("operator-godebug", "", "GODEBUG of the operator processes, for example gctrace=1 (the collector's trace goes into their logs: -operator-logs)")
	flag.Parse()
	if _, err := os.Stat(*manager); err != nil {
		fail(fmt.Errorf("%w: build it first (make build)", err))
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))

	env, err := bench.StartEnvironment(*withWebhook, *finalizer)
	if err != nil {
		fail(err)
	}
	// Stop the control plane on Ctrl-C or SIGTERM too, so no kube-apiserver or etcd is left.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-signals
		_ = env.Stop()
		os.Exit(130)
	}()
	defer func() { _ = env.Stop() }()
	report, err := bench.Run(context.Background(), env, bench.Config{
		N: *n, ManagerBinary: *manager, SteadyRates: parseInts(*rates), SteadyFor: *steadyFor, Workers: *workers, CeilingWorkers: parseInts(*ceilingWorkers),
		APIServerProfile: *apiServerProfile, OperatorProfile: *operatorProfile, OperatorHeapProfile: *operatorHeapProfile, ProfileFor: *profileFor,
		RestartHeapProfile: *restartHeapProfile, OperatorMemoryLimit: *memoryLimit, OperatorLogDir: *logDir, OperatorGODEBUG: *godebug,
		Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...) },
	})
	if err != nil {
		// The figures of the phases that completed are still worth seeing.
		fmt.Printf("\nMachine: %s\n\n%s", bench.Machine(), report.Table())
		_ = env.Stop()
		fail(err)
	}
	fmt.Printf("\nMachine: %s\n\n%s", bench.Machine(), report.Table())
	if *docs != "" {
		path := *docs
		if path == "1" {
			path = "docs/performance.md"
		}
		command := fmt.Sprintf("make bench BENCH_N=%d BENCH_WRITE_DOCS=1", *n)
		if args := os.Getenv("BENCH_ARGS"); args != "" {
			command += fmt.Sprintf(" BENCH_ARGS=%q", args)
		}
		version, _ := os.ReadFile("bin/envtest/.versions")
		if err := bench.WriteSection(path, report, command, strings.TrimSpace(string(version))); err != nil {
			fail(err)
		}
		fmt.Printf("\nwritten into %s\n", path)
	}
}

func parseInts(list string) []int {
	var out []int
	for _, f := range strings.Split(list, ",") {
		if v, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && v > 0 {
			out = append(out, v)
		}
	}
	return out
}

func envInt(name string, fallback int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return fallback
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}
