package controllers_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
)

var _ = Describe("APIRules sharing a workload", func() {
	var namespace string

	BeforeEach(func() {
		namespace = newNamespace()
	})

	It("refuses the younger APIRule that configures an issuer differently, and serves it once the older one is gone", func() {
		createBackend(namespace, "shared")
		headers := newAPIRule(namespace, "headers", "shared", jwtFrom(false))
		Expect(k8s.Create(ctx, headers)).To(Succeed())
		expectReady(keyOf(headers))

		cookies := newAPIRule(namespace, "cookies", "shared", jwtFrom(true))
		Expect(k8s.Create(ctx, cookies)).To(Succeed())
		rule := settled(keyOf(cookies))
		c := expectCondition(rule, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonWorkloadConflict)
		Expect(c.Message).To(ContainSubstring("APIRule " + namespace + "/headers"))
		vs, _ := children(keyOf(cookies))
		Expect(vs).To(BeEmpty(), "nothing of the refused APIRule is applied")

		By("serving it when the older APIRule is deleted")
		Expect(k8s.Delete(ctx, headers)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, keyOf(headers), &apiv2.APIRule{}))
		}, timeout, interval).Should(BeTrue())
		expectReady(keyOf(cookies))
	})

	It("finds the APIRules of a Service that selects the same Pods by other labels, and wakes the refused one when the other goes", func() {
		pod := fixtures.SidecarPod(namespace, "shop-0", "shop")
		pod.Labels["tier"] = "storefront"
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		Expect(k8s.Create(ctx, fixtures.Service(namespace, "shop", 8000))).To(Succeed())
		byTier := fixtures.Service(namespace, "storefront", 8000)
		byTier.Spec.Selector = map[string]string{"tier": "storefront"}
		Expect(k8s.Create(ctx, byTier)).To(Succeed())

		headers := newAPIRule(namespace, "by-app", "shop", jwtFrom(false))
		Expect(k8s.Create(ctx, headers)).To(Succeed())
		expectReady(keyOf(headers))

		cookies := newAPIRule(namespace, "by-tier", "storefront", jwtFrom(true))
		Expect(k8s.Create(ctx, cookies)).To(Succeed())
		rule := settled(keyOf(cookies))
		c := expectCondition(rule, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonWorkloadConflict)
		Expect(c.Message).To(ContainSubstring("APIRule " + namespace + "/by-app"))

		By("serving it when the APIRule of the other Service is deleted")
		Expect(k8s.Delete(ctx, headers)).To(Succeed())
		expectReady(keyOf(cookies))
	})
})

// jwtFrom is a GET /* jwt rule of one issuer, read from the session cookie or the header.
func jwtFrom(cookie bool) apiv2.Rule {
	uri := "https://idp.example.com/jwks"
	auth := apiv2.JWTAuthentication{Issuer: "https://idp.example.com", JWKSURI: &uri}
	if cookie {
		auth.FromCookies = []string{"session"}
	}
	return apiv2.Rule{Path: "/*", Methods: []apiv2.HTTPMethod{"GET"}, JWT: &apiv2.JWTConfig{Authentications: []apiv2.JWTAuthentication{auth}}}
}
