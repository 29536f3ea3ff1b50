package bench

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
	"time"
)

// Table renders the report as Markdown: the figures of the phases that completed, and the
// phase that failed, if one did.
func (r *Report) Table() string {
	var b strings.Builder
	row := func(what, value string) { fmt.Fprintf(&b, "| %s | %s |\n", what, value) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
	b.WriteString("| measure | value |\n|---|---|\n")
	row("APIRules", fmt.Sprintf("%d (3 rules each; %d child objects each)", r.N, r.ObjectsPerAPIRule))
	if r.FailedPhase != "" {
		row("failed", fmt.Sprintf("phase %s: %s (completed: %s)", r.FailedPhase, r.Failure, strings.Join(r.Completed, ", ")))
	}
	if r.Has(PhaseCeiling) {
		row("write ceiling (plain client, no operator)", fmt.Sprintf("%.1f APIRules/s = %.0f objects/s (%d objects, %d workers, %.1f s; each round on a fresh control plane)",
			r.CeilingThroughput, float64(r.CeilingObjects)/r.CeilingDuration.Seconds(), r.CeilingObjects, r.CeilingWorkers, r.CeilingDuration.Seconds()))
	}
	if r.Has(PhaseBulk) {
		row("all Ready after", fmt.Sprintf("%.1f s", r.ReadyAfter.Seconds()))
		row("throughput", fmt.Sprintf("%.1f APIRules/s", r.Throughput))
		row("throughput / ceiling", fmt.Sprintf("%.2f", r.Ratio))
		row("create-to-Ready latency p50 / p95 / p99 / max", fmt.Sprintf("%s / %s / %s / %s", ms(r.Latency.P50), ms(r.Latency.P95), ms(r.Latency.P99), ms(r.Latency.Max)))
		finalizer := "finalizer set by the mutating webhook"
		if !r.FinalizerByWebhook {
			finalizer = fmt.Sprintf("webhook off: %d finalizer patches by the operator", r.Requests["PATCH apirules"])
		}
		row("operator writes (leases aside)", fmt.Sprintf("%d (%.2f per APIRule, budget %d; %s)", r.Writes, float64(r.Writes)/float64(r.N), r.WriteBudget(), finalizer))
	}
	if r.Has(PhaseResync) {
		row("forced resync (operator restart)", fmt.Sprintf("%d reconciles, %d writes", r.ResyncReconciles, r.ResyncWrites))
	}
	if r.SteadyCount > 0 {
		row(fmt.Sprintf("steady load %d APIRules/s for %s: latency p50 / p95 / p99 / max", r.SteadyRate, r.SteadyFor),
			fmt.Sprintf("%s / %s / %s / %s (%d APIRules)", ms(r.SteadyLatency.P50), ms(r.SteadyLatency.P95), ms(r.SteadyLatency.P99), ms(r.SteadyLatency.Max), r.SteadyCount))
	}
	if r.CPUSeconds > 0 {
		row("process CPU (operator and load driver)", fmt.Sprintf("%.1f s", r.CPUSeconds))
		row("process peak heap / peak RSS (operator and load driver)", fmt.Sprintf("%.0f MiB / %.0f MiB", r.PeakHeapMiB, r.PeakRSSMiB))
	}
	if !r.Has(PhaseBulk) {
		return b.String()
	}
	b.WriteString("\nAPI requests by the operator during the bulk run:\n\n| request | count |\n|---|---|\n")
	keys := make([]string, 0, len(r.Requests))
	for k := range r.Requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "| %s | %d |\n", k, r.Requests[k])
	}
	if r.ResyncWrites > 0 {
		fmt.Fprintf(&b, "\nRequests during the resync: %v\n", r.ResyncRequests)
	}
	return b.String()
}

// Machine describes where the run happened.
func Machine() string {
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				var kb float64
				_, _ = fmt.Sscanf(strings.TrimSpace(rest), "%f", &kb)
				mem = fmt.Sprintf("%.0f GiB", kb/(1<<20))
			}
		}
	}
	versions := []string{runtime.Version()}
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			switch dep.Path {
			case "sigs.k8s.io/controller-runtime", "k8s.io/client-go", "istio.io/client-go":
				versions = append(versions, dep.Path+" "+dep.Version)
			}
		}
	}
	return fmt.Sprintf("%d cores, %s memory, %s/%s; %s", runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH, strings.Join(versions, ", "))
}

// WriteSection replaces (or adds) the section of this N in the performance document.
func WriteSection(path string, r *Report, command, controlPlane string) error {
	begin, end := fmt.Sprintf("<!-- bench N=%d -->", r.N), fmt.Sprintf("<!-- /bench N=%d -->", r.N)
	section := fmt.Sprintf("%s\n## %d APIRules\n\nCommand: `%s`\n\nMachine: %s. Control plane: %s. Measured %s.\n\n%s%s\n",
		begin, r.N, command, Machine(), controlPlane, time.Now().UTC().Format("2006-01-02"), r.Table(), end)
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc := string(raw)
	if i := strings.Index(doc, begin); i >= 0 {
		if j := strings.Index(doc, end); j > i {
			doc = doc[:i] + section + doc[j+len(end)+1:]
			return os.WriteFile(path, []byte(doc), 0o644)
		}
	}
	return os.WriteFile(path, []byte(strings.TrimRight(doc, "\n")+"\n\n"+section), 0o644)
}
