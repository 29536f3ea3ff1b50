package controllers_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

var _ = Describe("operator restarts", Ordered, func() {
	const count = 200
	var namespace string

	It("converges on every APIRule when restarted half-way, with nothing orphaned or duplicated", func() {
		namespace = newNamespace()
		for i := 0; i < 10; i++ {
			createBackend(namespace, fmt.Sprintf("backend-%d", i))
		}
		create := func(from, to int) {
			for i := from; i < to; i++ {
				name := fmt.Sprintf("rule-%03d", i)
				rule := newAPIRule(namespace, name, fmt.Sprintf("backend-%d", i%10), noAuth("/public", "GET"), noAuth("/*", "GET", "POST"))
				Expect(k8s.Create(ctx, rule)).To(Succeed())
			}
		}
		create(0, count/2)

		By("stopping the operator while it is part-way through, and creating the rest meanwhile")
		Eventually(func() int { return readyCount(namespace) }, 2*timeout, 20*time.Millisecond).Should(BeNumerically(">=", count/20))
		running.stop()
		GinkgoWriter.Printf("stopped with %d of %d APIRules Ready\n", readyCount(namespace), count)
		create(count/2, count)

		By("starting it again")
		running = startOperator()
		Eventually(func() int { return readyCount(namespace) }, 6*timeout, 100*time.Millisecond).Should(Equal(count))

		routes := &networkingclientv1.VirtualServiceList{}
		Expect(k8s.List(ctx, routes, client.InNamespace(namespace))).To(Succeed())
		policies := &securityclientv1.AuthorizationPolicyList{}
		Expect(k8s.List(ctx, policies, client.InNamespace(namespace))).To(Succeed())
		Expect(routes.Items).To(HaveLen(count), "one VirtualService per APIRule")
		Expect(policies.Items).To(HaveLen(count), "one AuthorizationPolicy per APIRule (one backend each)")
		owners := map[string]int{}
		for _, vs := range routes.Items {
			owners[vs.Labels[ownership.LabelName]]++
		}
		for _, ap := range policies.Items {
			owners[ap.Labels[ownership.LabelName]]++
		}
		for i := 0; i < count; i++ {
			Expect(owners[fmt.Sprintf("rule-%03d", i)]).To(Equal(2), "children of rule-%03d", i)
		}
	})

	It("sends no write when a restart reconciles every settled APIRule again", func() {
		waitQuiet(running.requests)
		running.stop()
		before := reconciles()
		running = startOperator()
		Eventually(reconciles, 4*timeout, interval).Should(BeNumerically(">=", before+count),
			"every APIRule is reconciled after a restart")
		waitQuiet(running.requests)
		requests, writes := running.requests.Snapshot()
		Expect(writes).To(BeZero(), "requests: %v", requests)
	})

	It("acts at its start on what changed while it was stopped: a Pod without the sidecar that joined a served Service", func() {
		createBackend(namespace, "joined")
		rule := newAPIRule(namespace, "joined", "joined", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)

		running.stop()
		bare := fixtures.SidecarPod(namespace, "joined-1", "joined")
		bare.Spec.Containers = bare.Spec.Containers[:1]
		Expect(k8s.Create(ctx, bare)).To(Succeed())

		// The Pod reaches the new process in its cache's first list, whose events the watches
		// skip: the APIRule's own reconcile at the start must see it.
		running = startOperator()
		eventuallyReason(key, conditions.Programmed, conditions.ReasonWithdrawn)
		vs, ap := children(key)
		Expect(vs).To(BeEmpty(), "no route to a Pod that enforces no policy")
		Expect(ap).To(BeEmpty())
	})
})

func readyCount(namespace string) int {
	rules := &apiv2.APIRuleList{}
	Expect(k8s.List(ctx, rules, client.InNamespace(namespace))).To(Succeed())
	n := 0
	for _, r := range rules.Items {
		if r.Status.State == apiv2.StateReady && r.Status.ObservedGeneration == r.Generation {
			n++
		}
	}
	return n
}
