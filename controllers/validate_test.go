package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
)

// The reconciler runs the webhook's checks too (internal/check): an APIRule that reached
// the API server without the webhook (installed before it, or with the webhook off) is
// reported, and nothing new is applied for it.
var _ = Describe("APIRule reconciler with the shared validation", func() {
	It("refuses a shadowed rule with reason RuleShadowed and keeps the last good objects", func() {
		namespace := newNamespace()
		key := createReady(namespace, "shadow", noAuth("/health", "GET"), noAuth("/api/{**}", "GET"))
		routesBefore, _ := children(key)
		Expect(routesBefore).To(HaveLen(1))

		updateSpec(key, func(spec *apiv2.APIRuleSpec) {
			spec.Rules = append(spec.Rules, noAuth("/api/users", "GET"))
		})
		rule := settled(key)
		accepted := expectCondition(rule, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonRuleShadowed)
		Expect(accepted.Message).To(ContainSubstring(
			"spec.rules[2].path: spec.rules[2] is never reached for GET because spec.rules[1] (GET /api/{**}, noAuth) matches first"))
		expectCondition(rule, conditions.Programmed, metav1.ConditionFalse, conditions.ReasonNotApplied)
		Expect(rule.Status.State).To(Equal(apiv2.StateError))

		routesAfter, _ := children(key)
		Expect(routesAfter).To(HaveLen(1))
		Expect(routesAfter[0].Spec.Http).To(HaveLen(3), "the route of the last good generation keeps serving (the ambiguous-path refusal and its 2 rules)")
	})

	It("accepts a partly shadowed rule with a warning", func() {
		namespace := newNamespace()
		createBackend(namespace, "partly")
		rule := newAPIRule(namespace, "partly", "partly", noAuth("/api/{**}", "GET"), noAuth("/api/users", "GET", "POST"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		settledRule := settled(keyOf(rule))
		accepted := expectCondition(settledRule, conditions.Accepted, metav1.ConditionTrue, conditions.ReasonAcceptedWithWarnings)
		Expect(accepted.Message).To(ContainSubstring("spec.rules[1].path: spec.rules[1] is never reached for GET"))
		Expect(settledRule.Status.State).To(Equal(apiv2.StateWarning))
	})
})
