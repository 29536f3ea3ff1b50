package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
)

var _ = Describe("Backends in another namespace", Ordered, func() {
	BeforeAll(func() {
		// The suite's operator allows every namespace; this one asks for consent, as the
		// default install does.
		running.stop()
		opts.Settings.AllowCrossNamespaceBackends = false
		running = startOperator()
		DeferCleanup(func() {
			running.stop()
			opts.Settings.AllowCrossNamespaceBackends = true
			running = startOperator()
		})
	})

	It("is served while its namespace consents with a ReferenceGrant, and withdrawn when the grant goes", func() {
		namespace, backends := newNamespace(), newNamespace()
		createBackend(backends, "ledger")
		rule := newAPIRule(namespace, "ledger", "ledger", noAuth("/*", "GET"))
		rule.Spec.Service.Namespace = &backends
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		// Gone before the suite's operator, which allows every namespace, comes back: it would
		// serve this APIRule again while later specs count APIRules by state.
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8s.Delete(ctx, rule))).To(Succeed())
			Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, key, &apiv2.APIRule{})) }, timeout, interval).Should(BeTrue())
		})

		By("refusing it without consent")
		refused := settled(key)
		expectCondition(refused, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonCrossNamespaceBackend)
		routes, policies := children(key)
		Expect(routes).To(BeEmpty())
		Expect(policies).To(BeEmpty())

		By("serving it once a ReferenceGrant names its namespace and the Service")
		grant := referenceGrant(backends, namespace, "ledger")
		Expect(k8s.Create(ctx, grant)).To(Succeed())
		expectReady(key)
		Eventually(func() int {
			list := &securityclientv1.AuthorizationPolicyList{}
			Expect(k8s.List(ctx, list, client.InNamespace(backends))).To(Succeed())
			return len(list.Items)
		}, timeout, interval).Should(Equal(1), "the workload's policy in the backend's namespace")

		By("withdrawing what serves when the grant stops naming the Service")
		other := gatewayv1beta1.ObjectName("payments")
		grant.Spec.To[0].Name = &other
		Expect(k8s.Update(ctx, grant)).To(Succeed())
		eventuallyReason(key, conditions.Accepted, conditions.ReasonCrossNamespaceBackend)
		Eventually(func() int {
			routes, policies := children(key)
			return len(routes) + len(policies)
		}, timeout, interval).Should(BeZero(), "no route or policy left once consent is withdrawn")

		By("serving it again when the grant names it again, and withdrawing it when the grant is deleted")
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(grant), grant)).To(Succeed())
		grant.Spec.To[0].Name = ptr(gatewayv1beta1.ObjectName("ledger"))
		Expect(k8s.Update(ctx, grant)).To(Succeed())
		expectReady(key)
		Expect(k8s.Delete(ctx, grant)).To(Succeed())
		Eventually(func() int {
			routes, policies := children(key)
			return len(routes) + len(policies)
		}, timeout, interval).Should(BeZero())
	})

	It("does not keep the workload's own namespace from configuring its issuers otherwise", func() {
		intruder, owner := newNamespace(), newNamespace()
		createBackend(owner, "api")
		squat := newAPIRule(intruder, "squat", "api", jwtFrom(true))
		squat.Spec.Service.Namespace = &owner
		Expect(k8s.Create(ctx, squat)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, squat))).To(Succeed()) })
		eventuallyReason(keyOf(squat), conditions.Accepted, conditions.ReasonCrossNamespaceBackend)

		mine := newAPIRule(owner, "mine", "api", jwtFrom(false))
		Expect(k8s.Create(ctx, mine)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, mine))).To(Succeed()) })
		expectReady(keyOf(mine))
	})

	It("withdraws the serving generation's route into the other namespace, whatever the spec says now", func() {
		namespace, backends := newNamespace(), newNamespace()
		createBackend(backends, "ledger")
		rule := newAPIRule(namespace, "ledger", "ledger", noAuth("/*", "GET"))
		rule.Spec.Service.Namespace = &backends
		grant := referenceGrant(backends, namespace, "ledger")
		Expect(k8s.Create(ctx, grant)).To(Succeed())
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, rule))).To(Succeed()) })
		expectReady(key)

		By("refusing an edit that moves the backend home, to a Service that does not exist yet")
		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Service = &apiv2.Service{Name: "not-yet", Port: 8000} })
		eventuallyReason(key, conditions.ResolvedRefs, conditions.ReasonServiceNotFound)
		routes, _ := children(key)
		Expect(routes).To(HaveLen(1), "the earlier generation keeps serving")

		By("deleting the grant: the route into the other namespace goes, although the spec no longer names it")
		Expect(k8s.Delete(ctx, grant)).To(Succeed())
		Eventually(func() int {
			routes, policies := children(key)
			return len(routes) + len(policies)
		}, timeout, interval).Should(BeZero())
		Eventually(func(g Gomega) {
			current := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, current)).To(Succeed())
			g.Expect(current.Status.Hosts).To(BeEmpty(), "status says nothing serves")
		}, timeout, interval).Should(Succeed())
	})
})

// referenceGrant lets the APIRules of namespace from use the Service of namespace in.
func referenceGrant(in, from, service string) *gatewayv1beta1.ReferenceGrant {
	return &gatewayv1beta1.ReferenceGrant{
		ObjectMeta: metav1.ObjectMeta{Namespace: in, Name: "apirules-of-" + from},
		Spec: gatewayv1beta1.ReferenceGrantSpec{
			From: []gatewayv1beta1.ReferenceGrantFrom{{Group: gatewayv1beta1.Group(apiv2.GroupVersion.Group), Kind: "APIRule", Namespace: gatewayv1beta1.Namespace(from)}},
			To:   []gatewayv1beta1.ReferenceGrantTo{{Group: "", Kind: "Service", Name: ptr(gatewayv1beta1.ObjectName(service))}},
		},
	}
}

func ptr[T any](v T) *T { return &v }
