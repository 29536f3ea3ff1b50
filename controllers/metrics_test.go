package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
)

// metricValue sums the samples of a metric family whose labels include the given ones.
func metricValue(name string, labels map[string]string) float64 {
	families, err := metrics.Registry.Gather()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	total := 0.0
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	samples:
		for _, m := range f.GetMetric() {
			for k, v := range labels {
				found := false
				for _, l := range m.GetLabel() {
					found = found || (l.GetName() == k && l.GetValue() == v)
				}
				if !found {
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

var _ = Describe("metrics", func() {
	It("count applied and pruned objects, reconciles by result, and APIRules by state", func() {
		namespace := newNamespace()
		createBackend(namespace, "measured")
		applied := metricValue("apirule_objects_applied_total", map[string]string{"kind": "VirtualService"})
		pruned := metricValue("apirule_objects_pruned_total", map[string]string{"kind": "AuthorizationPolicy"})
		reconciled := metricValue("apirule_reconcile_duration_seconds", map[string]string{"result": "success"})
		ready := metricValue("apirule_apirules", map[string]string{"state": "Ready"})

		rule := newAPIRule(namespace, "measured", "measured", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		Expect(metricValue("apirule_objects_applied_total", map[string]string{"kind": "VirtualService"})).To(BeNumerically(">=", applied+1))
		Expect(metricValue("apirule_reconcile_duration_seconds", map[string]string{"result": "success"})).To(BeNumerically(">", reconciled))
		Eventually(func() float64 {
			return metricValue("apirule_apirules", map[string]string{"state": "Ready"})
		}, timeout, interval).Should(Equal(ready + 1))

		By("counting the policy pruned when the backend changes, and forgetting a deleted APIRule")
		createBackend(namespace, "measured-2")
		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Service.Name = "measured-2" })
		Eventually(func() float64 {
			return metricValue("apirule_objects_pruned_total", map[string]string{"kind": "AuthorizationPolicy"})
		}, timeout, interval).Should(Equal(pruned + 1))
		Expect(k8s.Delete(ctx, rule)).To(Succeed())
		Eventually(func() float64 {
			return metricValue("apirule_apirules", map[string]string{"state": "Ready"})
		}, timeout, interval).Should(Equal(ready))
	})
})
