package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

var metricValue = testenv.MetricValue

var _ = Describe("metrics", func() {
	It("count applied and pruned objects, reconciles by result and by reason, APIRules by state, and the build", func() {
		namespace := newNamespace()
		createBackend(namespace, "measured")
		applied := metricValue("apirule_objects_applied_total", map[string]string{"kind": "VirtualService"})
		pruned := metricValue("apirule_objects_pruned_total", map[string]string{"kind": "AuthorizationPolicy"})
		reconciled := metricValue("apirule_reconcile_duration_seconds", map[string]string{"result": "success"})
		ready := metricValue("apirule_apirules", map[string]string{"state": "Ready"})
		outcomes := metricValue("apirule_reconcile_outcomes_total", map[string]string{"reason": "Ready"})
		Expect(metricValue("apirule_build_info", nil)).To(Equal(1.0), "one build_info series, always 1")

		rule := newAPIRule(namespace, "measured", "measured", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		Expect(metricValue("apirule_objects_applied_total", map[string]string{"kind": "VirtualService"})).To(BeNumerically(">=", applied+1))
		Expect(metricValue("apirule_reconcile_duration_seconds", map[string]string{"result": "success"})).To(BeNumerically(">", reconciled))
		Expect(metricValue("apirule_reconcile_outcomes_total", map[string]string{"reason": "Ready"})).To(BeNumerically(">", outcomes))
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
