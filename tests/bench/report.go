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
	if r.MemoryLimit != "" {
		row("operator process's memory limit (GOMEMLIMIT)", r.MemoryLimit)
	}
	if r.FailedPhase != "" {
		row("failed", fmt.Sprintf("phase %s: %s (completed: %s)", r.FailedPhase, r.Failure, strings.Join(r.Completed, ", ")))
	}
	if r.Has(PhaseCeiling) {
		ceiling := func(c ceilingResult, what string) string {
			return fmt.Sprintf("%.1f APIRules/s (%s: %d writes, %d workers, %.1f s; each round on a fresh control plane; kube-apiserver / etcd CPU %.2f / %.2f ms per APIRule)",
				c.Throughput, what, c.Writes, c.Workers, c.Duration.Seconds(), 1000*c.APIServerCPU/float64(r.N), 1000*c.EtcdCPU/float64(r.N))
		}
		row("write ceiling (plain client, no operator)", ceiling(r.Ceiling, "the APIRule create, its 3 children and one status patch each"))
		row("children-only ceiling (plain client)", ceiling(r.ChildrenCeiling, "the 3 children each"))
	}
	if r.Has(PhaseBulk) {
		row("all Ready after", fmt.Sprintf("%.1f s", r.ReadyAfter.Seconds()))
		row("throughput", fmt.Sprintf("%.1f APIRules/s", r.Throughput))
		row("throughput / ceiling", fmt.Sprintf("%.2f (%.2f of the children-only ceiling)", r.Ratio, r.ChildrenRatio))
		row("throughput of the first / second half of the APIRules Ready", fmt.Sprintf("%.1f / %.1f APIRules/s", r.HalfRates[0], r.HalfRates[1]))
		row("create-to-Ready latency p50 / p95 / p99 / max", fmt.Sprintf("%s / %s / %s / %s", ms(r.Latency.P50), ms(r.Latency.P95), ms(r.Latency.P99), ms(r.Latency.Max)))
		finalizer := "finalizer set at admission by the " + map[string]string{FinalizerByPolicy: "MutatingAdmissionPolicy", FinalizerByWebhook: "mutating webhook"}[r.FinalizerBy]
		if !r.FinalizerAtAdmission {
			finalizer = fmt.Sprintf("no admission: %d finalizer patches by the operator", r.Requests["PATCH apirules"])
		}
		row("operator writes (leases aside; kube-apiserver's audit log)", fmt.Sprintf("%d (%.2f per APIRule, budget %d; %s)", r.Writes, float64(r.Writes)/float64(r.N), r.WriteBudget(), finalizer))
		row("operator process, start to end of the bulk run: CPU / peak RSS", fmt.Sprintf("%.1f s (%.2f ms per APIRule) / %.0f MiB", r.Bulk.CPUSeconds, 1000*r.Bulk.CPUSeconds/float64(r.N), r.Bulk.PeakRSSMiB))
		row("kube-apiserver / etcd over the bulk run: CPU", fmt.Sprintf("%.1f s (%.2f ms per APIRule) / %.1f s (%.2f ms per APIRule)",
			r.APIServerCPU, 1000*r.APIServerCPU/float64(r.N), r.EtcdCPU, 1000*r.EtcdCPU/float64(r.N)))
	}
	if r.Has(PhaseResync) {
		row("restart: a new operator process has verified every APIRule after", fmt.Sprintf("%.1f s (%d reconciles, %d writes; CPU %.1f s, %.2f ms per APIRule; peak RSS %.0f MiB)",
			r.RestartVerifiedAfter.Seconds(), r.ResyncReconciles, r.ResyncWrites, r.Restart.CPUSeconds, 1000*r.Restart.CPUSeconds/float64(r.N), r.Restart.PeakRSSMiB))
	}
	for _, st := range r.Steady {
		row(fmt.Sprintf("steady load %d APIRules/s for %s: latency p50 / p95 / p99 / max", st.Rate, st.For),
			fmt.Sprintf("%s / %s / %s / %s (%d APIRules)", ms(st.Latency.P50), ms(st.Latency.P95), ms(st.Latency.P99), ms(st.Latency.Max), st.Count))
		row(fmt.Sprintf("operator process during the steady load of %d APIRules/s: CPU / peak RSS since its start", st.Rate), fmt.Sprintf("%.1f s (%.2f ms per APIRule) / %.0f MiB",
			st.Usage.CPUSeconds, 1000*st.Usage.CPUSeconds/float64(st.Count), st.Usage.PeakRSSMiB))
		row(fmt.Sprintf("kube-apiserver / etcd during the steady load of %d APIRules/s: CPU", st.Rate), fmt.Sprintf("%.1f s (%.2f ms per APIRule) / %.1f s (%.2f ms per APIRule)",
			st.APIServerCPU, 1000*st.APIServerCPU/float64(st.Count), st.EtcdCPU, 1000*st.EtcdCPU/float64(st.Count)))
	}
	if r.Has(PhaseSteady) {
		rates := make([]string, len(r.Steady))
		for i, st := range r.Steady {
			rates[i] = fmt.Sprint(st.Rate)
		}
		value := "none of the rates tried"
		if best := r.SubSecondRate(); best > 0 {
			value = fmt.Sprintf("%d APIRules/s", best)
		}
		row("highest steady rate with p99 under 1 s", fmt.Sprintf("%s (tried %s APIRules/s, in that order, each on the APIRules of the runs before)", value, strings.Join(rates, ", ")))
	}
	if r.Driver.CPUSeconds > 0 {
		row("load driver process (this one, the ceiling's client included): CPU / peak RSS", fmt.Sprintf("%.1f s / %.0f MiB", r.Driver.CPUSeconds, r.Driver.PeakRSSMiB))
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
