package testenv

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"

	dto "github.com/prometheus/client_model/go"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// RequestCounter counts the API requests of a client by verb and resource.
type RequestCounter struct {
	mu    sync.Mutex
	byKey map[string]int
	// byObject counts the requests that name one object, by "VERB resource namespace/name",
	// so a test can tell its object's writes from those of objects other tests left behind.
	byObject map[string]int
}

// Wrap is a rest.Config WrapTransport that counts every request.
func (c *RequestCounter) Wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		key := verb(req) + " " + resource(req.URL.Path)
		if strings.HasSuffix(key, " events") && req.GetBody != nil {
			// Leader election records an event about its lease: count it with the leases.
			if body, err := req.GetBody(); err == nil {
				raw, _ := io.ReadAll(body)
				if strings.Contains(string(raw), `"kind":"Lease"`) {
					key += "(Lease)"
				}
			}
		}
		c.mu.Lock()
		c.byKey[key]++
		if name := objectName(req.URL.Path); name != "" {
			c.byObject[verb(req)+" "+resource(req.URL.Path)+" "+name]++
		}
		c.mu.Unlock()
		return next.RoundTrip(req)
	})
}

// Snapshot returns the counts and the number of writes, leader-election leases left out:
// they are renewed every few seconds whatever the APIRules do.
func (c *RequestCounter) Snapshot() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.byKey))
	for k, v := range c.byKey {
		out[k] = v
	}
	return out, Writes(out)
}

// Writes is the number of writes among request counts by "VERB resource": reads and the
// leader election's leases (and its Event about the lease) left out.
func Writes(counts map[string]int) int {
	writes := 0
	for k, v := range counts {
		v0, res, _ := strings.Cut(k, " ")
		if res != "leases" && res != "events(Lease)" && v0 != "GET" && v0 != "LIST" && v0 != "WATCH" {
			writes += v
		}
	}
	return writes
}

func verb(req *http.Request) string {
	if req.Method != http.MethodGet {
		return req.Method
	}
	switch {
	case req.URL.Query().Get("watch") == "true":
		return "WATCH"
	case isCollection(req.URL.Path):
		return "LIST"
	}
	return "GET"
}

// resource is the resource of an API path, /api/v1/namespaces/x/pods/y -> pods, with a
// subresource as resource/subresource; discovery paths are "discovery".
func resource(path string) string {
	parts := resourceParts(path)
	switch len(parts) {
	case 0:
		return "discovery"
	case 1, 2:
		return parts[0]
	default:
		return parts[0] + "/" + parts[2]
	}
}

func isCollection(path string) bool { return len(resourceParts(path)) == 1 }

// resourceParts strips the API prefix and the namespace from a path: what is left is
// resource[/name[/subresource]].
func resourceParts(path string) []string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) > 3 && parts[0] == "apis":
		parts = parts[3:]
	case len(parts) > 2 && parts[0] == "api":
		parts = parts[2:]
	default:
		return nil
	}
	if len(parts) > 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	return parts
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// Writes is the number of requests that changed something, leases left out.
func (c *RequestCounter) Writes() int {
	_, writes := c.Snapshot()
	return writes
}

// NewRequestCounter returns an empty counter.
func NewRequestCounter() *RequestCounter {
	return &RequestCounter{byKey: map[string]int{}, byObject: map[string]int{}}
}

// ObjectRequests is how many requests of this verb went to the named object's resource
// (for example "PATCH", "apirules", "shop/httpbin"; "apirules/status" for its status).
func (c *RequestCounter) ObjectRequests(verb, resource, namespacedName string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byObject[verb+" "+resource+" "+namespacedName]
}

// objectName is "namespace/name" (or "name" for a cluster-scoped object) of a path that
// names one object; empty for collections and discovery.
func objectName(path string) string {
	parts := resourceParts(path)
	if len(parts) < 2 {
		return ""
	}
	all := strings.Split(strings.Trim(path, "/"), "/")
	if i := slices.Index(all, "namespaces"); i >= 0 && i+2 < len(all) {
		return all[i+1] + "/" + parts[1]
	}
	return parts[1]
}

// ReconcileCount is how many reconciles the named controller has finished in this process.
func ReconcileCount(controller string) float64 {
	return MetricValue("controller_runtime_reconcile_total", map[string]string{"controller": controller})
}

// MetricValue sums the samples of a metric in controller-runtime's registry whose labels
// include the given ones: counter and gauge values, histogram sample counts.
func MetricValue(name string, labels map[string]string) float64 {
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		return 0
	}
	return SumSamples(families, name, labels)
}

// SumSamples sums the samples of the named metric whose labels include the given ones:
// counter and gauge values, histogram sample counts. The families may come from a registry
// or from a scraped metrics endpoint.
func SumSamples(families []*dto.MetricFamily, name string, labels map[string]string) float64 {
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	samples:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == k && l.GetValue() == v }) {
					continue samples
				}
			}
			switch {
			case m.GetCounter() != nil:
				total += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				total += m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				total += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return total
}
