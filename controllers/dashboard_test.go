package controllers_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/apirule-operator/apirule-operator/internal/metrics"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

var _ = Describe("the Grafana dashboard", func() {
	It("queries only metrics the running operator exports", func() {
		// One APIRule through the operator, so that the work queue has recorded samples.
		createReady(newNamespace(), "dashboard", noAuth("/*", "GET"))
		root, err := testenv.RepoRoot()
		Expect(err).NotTo(HaveOccurred())
		raw, err := os.ReadFile(filepath.Join(root, "config", "grafana", "apirule-operator.json"))
		Expect(err).NotTo(HaveOccurred())
		var dashboard struct {
			Panels []struct {
				Title   string
				Targets []struct{ Expr string }
			}
		}
		Expect(json.Unmarshal(raw, &dashboard)).To(Succeed())

		exported := exportedMetrics()
		queried := 0
		for _, p := range dashboard.Panels {
			Expect(p.Targets).NotTo(BeEmpty(), "panel %q has no query", p.Title)
			for _, t := range p.Targets {
				names := metricNames(t.Expr)
				Expect(names).NotTo(BeEmpty(), "panel %q: %s names no metric", p.Title, t.Expr)
				for _, name := range names {
					Expect(exported).To(HaveKey(name), "panel %q queries %s, which the operator does not export", p.Title, name)
					queried++
				}
			}
		}
		Expect(queried).To(BeNumerically(">=", 10))
	})
})

// exportedMetrics are the metric names of the operator's registry, the operator's own by their
// descriptors (a vector without samples is not gathered) and controller-runtime's as gathered
// from the operator this suite runs; a histogram's series count under its _bucket, _sum and
// _count names.
func exportedMetrics() map[string]bool {
	out := map[string]bool{}
	add := func(name string, histogram bool) {
		out[name] = true
		if histogram {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				out[name+suffix] = true
			}
		}
	}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range metrics.Collectors() {
		descs := make(chan *prometheus.Desc, 16)
		c.Describe(descs)
		close(descs)
		for d := range descs {
			_, histogram := c.(*prometheus.HistogramVec)
			add(fqName.FindStringSubmatch(d.String())[1], histogram)
		}
	}
	families, err := ctrlmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	for _, f := range families {
		add(f.GetName(), f.GetType().String() == "HISTOGRAM")
	}
	return out
}

// promQLWords are the words of a query that are not metric names.
var promQLWords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "count": true, "by": true, "without": true, "rate": true,
	"increase": true, "irate": true, "histogram_quantile": true, "time": true, "le": true, "on": true, "ignoring": true,
}

// metricNames extracts the metric names of a PromQL query: identifiers that are neither
// keywords nor functions, label names (inside braces or a by/without list) nor strings.
func metricNames(expr string) []string {
	expr = regexp.MustCompile(`"[^"]*"`).ReplaceAllString(expr, `""`)
	expr = regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(expr, "")
	expr = regexp.MustCompile(`\b(by|without)\s*\([^)]*\)`).ReplaceAllString(expr, "")
	expr = regexp.MustCompile(`\[[^\]]*\]`).ReplaceAllString(expr, "")
	var out []string
	for _, word := range regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`).FindAllString(expr, -1) {
		if !promQLWords[strings.ToLower(word)] {
			out = append(out, word)
		}
	}
	return out
}
