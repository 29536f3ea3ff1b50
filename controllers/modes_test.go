package controllers_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// newCA returns a CA and a server certificate for the host, valid for a year.
func newCA(host string) (ca, server *fixtures.Certificate) {
	ca, err := fixtures.NewCA("partner-ca", time.Now().AddDate(1, 0, 0))
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	server, err = ca.NewServerCertificate(time.Now().AddDate(1, 0, 0), host)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return ca, server
}

// mtlsRule is an mTLS APIRule for <name>.example.com with its CA Secret named <name>-ca and
// its server certificate Secret <name>-tls.
func mtlsRule(namespace, name string) *apiv2.APIRule {
	rule := newAPIRule(namespace, name, name, noAuth("/*", "GET"))
	rule.Spec.Gateway = nil
	rule.Spec.MTLS = &apiv2.MTLS{
		CredentialName:  name + "-tls",
		CASecretRef:     apiv2.SecretKeyReference{Name: name + "-ca"},
		AllowedSubjects: []string{"CN=partner-a,O=Acme"},
	}
	return rule
}

// crossNamespaceChildren returns the Gateways, Secrets and AuthorizationPolicies of an APIRule
// in the ingress gateway namespace.
func crossNamespaceChildren(g Gomega, key types.NamespacedName) ([]*networkingclientv1.Gateway, []corev1.Secret, []*securityclientv1.AuthorizationPolicy) {
	selector := client.MatchingLabels(ownership.Labels(key))
	gateways := &networkingclientv1.GatewayList{}
	g.Expect(k8s.List(ctx, gateways, client.InNamespace(gatewayNamespace), selector)).To(Succeed())
	secrets := &corev1.SecretList{}
	g.Expect(k8s.List(ctx, secrets, client.InNamespace(gatewayNamespace), selector)).To(Succeed())
	policies := &securityclientv1.AuthorizationPolicyList{}
	g.Expect(k8s.List(ctx, policies, client.InNamespace(gatewayNamespace), selector)).To(Succeed())
	return gateways.Items, secrets.Items, policies.Items
}

var _ = Describe("mTLS-certificate mode", func() {
	var namespace string

	BeforeEach(func() {
		namespace = newNamespace()
	})

	It("waits for its Secrets, then serves the hosts on its own MUTUAL Gateway with the CA copied beside it", func() {
		createBackend(namespace, "partner")
		rule := mtlsRule(namespace, "partner")
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)

		By("reporting both missing Secrets")
		rule = settled(key)
		c := expectCondition(rule, conditions.ResolvedRefs, metav1.ConditionFalse, conditions.ReasonSecretNotFound)
		Expect(c.Message).To(ContainSubstring("spec.mtls.credentialName: Secret %s/partner-tls", gatewayNamespace))
		Expect(c.Message).To(ContainSubstring("spec.mtls.caSecretRef.name: Secret %s/partner-ca", namespace))
		vs, _ := children(key)
		Expect(vs).To(BeEmpty())

		By("becoming Ready once the Secrets exist")
		ca, server := newCA("partner.example.com")
		Expect(k8s.Create(ctx, server.TLSSecret(gatewayNamespace, "partner-tls"))).To(Succeed())
		Expect(k8s.Create(ctx, ca.CASecret(namespace, "partner-ca"))).To(Succeed())
		expectReady(key)

		gateways, secrets, _ := crossNamespaceChildren(Default, key)
		Expect(gateways).To(HaveLen(1))
		Expect(secrets).To(HaveLen(1))
		gw, caCopy := gateways[0], secrets[0]
		Expect(gw.OwnerReferences).To(BeEmpty(), "an ownerReference cannot cross namespaces")
		Expect(gw.Spec.Servers[0].Hosts).To(Equal([]string{"partner.example.com"}))
		Expect(gw.Spec.Servers[0].Tls.Mode).To(Equal(networkingv1.ServerTLSSettings_MUTUAL))
		Expect(gw.Spec.Servers[0].Tls.CaCertCredentialName).To(Equal(caCopy.Name))
		Expect(caCopy.Data["ca.crt"]).To(Equal(ca.CertPEM))
		vs, ap := children(key)
		Expect(vs[0].Spec.Gateways).To(Equal([]string{gatewayNamespace + "/" + gw.Name}))
		Expect(vs[0].Spec.Http[1].Headers.Request.Set).To(HaveKeyWithValue("x-client-cert-subject", "%DOWNSTREAM_PEER_SUBJECT%"))
		Expect(ap[0].Spec.Rules[0].When).To(ContainElement(HaveField("Key", "request.headers[x-client-cert-subject]")))

		By("restoring a CA copy someone edited")
		caCopy.Data["ca.crt"] = []byte("tampered")
		Expect(k8s.Update(ctx, &caCopy)).To(Succeed())
		Eventually(func(g Gomega) {
			_, secrets, _ := crossNamespaceChildren(g, key)
			g.Expect(secrets).To(HaveLen(1))
			g.Expect(secrets[0].Data["ca.crt"]).To(Equal(ca.CertPEM))
		}, timeout, interval).Should(Succeed())

		By("keeping what serves traffic when the CA Secret is replaced by something that is not a certificate")
		broken := &corev1.Secret{}
		Expect(k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: "partner-ca"}, broken)).To(Succeed())
		broken.Data["ca.crt"] = []byte("not a certificate")
		Expect(k8s.Update(ctx, broken)).To(Succeed())
		eventuallyReason(key, conditions.ResolvedRefs, conditions.ReasonInvalidCertificate)
		gateways, secrets, _ = crossNamespaceChildren(Default, key)
		Expect(gateways).To(HaveLen(1))
		Expect(secrets[0].Data["ca.crt"]).To(Equal(ca.CertPEM), "the last good CA stays in place")

		By("following a changed host list")
		broken.Data["ca.crt"] = ca.CertPEM
		Expect(k8s.Update(ctx, broken)).To(Succeed())
		expectReady(key)
		updateSpec(key, func(spec *apiv2.APIRuleSpec) {
			spec.Hosts = []apiv2.Host{"partner.example.com", "partner-b.example.com"}
		})
		Eventually(func(g Gomega) {
			gateways, _, _ := crossNamespaceChildren(g, key)
			g.Expect(gateways).To(HaveLen(1))
			g.Expect(gateways[0].Spec.Servers[0].Hosts).To(Equal([]string{"partner.example.com", "partner-b.example.com"}))
		}, timeout, interval).Should(Succeed())
		rule = settled(key)
		expectCondition(rule, conditions.Ready, metav1.ConditionTrue, conditions.ReasonReady)
		c = expectCondition(rule, conditions.Accepted, metav1.ConditionTrue, conditions.ReasonAcceptedWithWarnings)
		Expect(c.Message).To(ContainSubstring(`does not name host "partner-b.example.com"`))

		By("removing the Gateway and the CA copy with the APIRule")
		Expect(k8s.Delete(ctx, rule)).To(Succeed())
		Eventually(func(g Gomega) {
			gateways, secrets, _ := crossNamespaceChildren(g, key)
			g.Expect(gateways).To(BeEmpty())
			g.Expect(secrets).To(BeEmpty())
			g.Expect(k8s.Get(ctx, key, &apiv2.APIRule{})).To(Satisfy(apierrors.IsNotFound))
		}, timeout, interval).Should(Succeed())
	})

	It("refuses a host that another Gateway of the same ingress gateway serves on 443", func() {
		createBackend(namespace, "clash")
		ca, server := newCA("clash.example.com")
		Expect(k8s.Create(ctx, server.TLSSecret(gatewayNamespace, "clash-tls"))).To(Succeed())
		Expect(k8s.Create(ctx, ca.CASecret(namespace, "clash-ca"))).To(Succeed())
		rule := mtlsRule(namespace, "clash")
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)

		other := fixtures.Gateway(gatewayNamespace, "clash-other", "clash.example.com")
		Expect(k8s.Create(ctx, other)).To(Succeed())
		Eventually(func(g Gomega) {
			rule := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, rule)).To(Succeed())
			c := conditions.Find(rule.Status.Conditions, conditions.Accepted)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(string(conditions.ReasonGatewayConflict)))
			g.Expect(c.Message).To(ContainSubstring("Gateway %s/clash-other already serves host", gatewayNamespace))
		}, timeout, interval).Should(Succeed())

		Expect(k8s.Delete(ctx, other)).To(Succeed())
		expectReady(key)
	})
})

var _ = Describe("IP-restriction mode", func() {
	var namespace string

	BeforeEach(func() {
		namespace = newNamespace()
	})

	It("enforces the restriction at the ingress gateway in route order, warns about trusted proxies and cleans up", func() {
		createBackend(namespace, "restricted")
		admin := noAuth("/admin/{**}", "GET")
		admin.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"10.0.0.0/8"}}
		rule := newAPIRule(namespace, "restricted", "restricted", noAuth("/admin/health", "GET"), admin, noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)

		By("generating one DENY policy on the ingress gateway for the restricted rule")
		rule = settled(key)
		expectCondition(rule, conditions.Ready, metav1.ConditionTrue, conditions.ReasonReady)
		var deny *securityclientv1.AuthorizationPolicy
		Eventually(func(g Gomega) {
			_, _, policies := crossNamespaceChildren(g, key)
			g.Expect(policies).To(HaveLen(1))
			deny = policies[0]
		}, timeout, interval).Should(Succeed())
		Expect(deny.Spec.Action).To(Equal(securityv1.AuthorizationPolicy_DENY))
		Expect(deny.Spec.Selector.MatchLabels).To(Equal(fixtures.IngressGatewaySelector))
		Expect(deny.Spec.Rules).To(HaveLen(1))
		// Each IPv4 block is listed with its IPv4-mapped IPv6 form (docs/guides/ip-restriction.md).
		Expect(deny.Spec.Rules[0].From[0].Source.NotRemoteIpBlocks).To(Equal([]string{"10.0.0.0/8", "::ffff:10.0.0.0/104"}))
		op := deny.Spec.Rules[0].To[0].Operation
		Expect(op.Paths).To(Equal([]string{"/admin/{**}"}))
		Expect(op.NotPaths).To(Equal([]string{"/admin/health"}), "the earlier rule routes /admin/health")

		By("warning while no ingress gateway Pod trusts a proxy")
		c := expectCondition(rule, conditions.Accepted, metav1.ConditionTrue, conditions.ReasonAcceptedWithWarnings)
		Expect(c.Message).To(ContainSubstring("numTrustedProxies is 0"))

		By("dropping the warning when the ingress gateway Pod's proxy config trusts one proxy")
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: gatewayNamespace, Name: "ingressgateway-restricted", Labels: fixtures.IngressGatewaySelector,
				Annotations: map[string]string{"proxy.istio.io/config": "gatewayTopology:\n  numTrustedProxies: 1\n"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.31.1"}}},
		}
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8s.Delete(ctx, pod))).To(Succeed()) })
		Eventually(func(g Gomega) {
			rule := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, rule)).To(Succeed())
			g.Expect(conditions.Find(rule.Status.Conditions, conditions.Accepted).Reason).To(Equal(string(conditions.ReasonAccepted)))
		}, timeout, interval).Should(Succeed())

		By("pruning the DENY policy when the restriction is removed")
		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Rules[1].IPRestriction = nil })
		Eventually(func(g Gomega) {
			_, _, policies := crossNamespaceChildren(g, key)
			g.Expect(policies).To(BeEmpty())
		}, timeout, interval).Should(Succeed())

		By("removing it with the APIRule")
		updateSpec(key, func(spec *apiv2.APIRuleSpec) {
			spec.IPRestriction = &apiv2.IPRestriction{Deny: []apiv2.IPBlock{"192.0.2.0/24"}}
		})
		Eventually(func(g Gomega) {
			_, _, policies := crossNamespaceChildren(g, key)
			g.Expect(policies).To(HaveLen(1))
		}, timeout, interval).Should(Succeed())
		Expect(k8s.Delete(ctx, &apiv2.APIRule{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})).To(Succeed())
		Eventually(func(g Gomega) {
			_, _, policies := crossNamespaceChildren(g, key)
			g.Expect(policies).To(BeEmpty())
		}, timeout, interval).Should(Succeed())
	})

	It("refuses a Gateway of another ingress gateway, where the policy would not apply", func() {
		createBackend(namespace, "elsewhere")
		other := fixtures.Gateway(gatewayNamespace, "elsewhere-gateway", "*.example.com")
		other.Spec.Selector = map[string]string{"istio": "partner-gateway"}
		Expect(k8s.Create(ctx, other)).To(Succeed())
		DeferCleanup(func() { Expect(k8s.Delete(ctx, other)).To(Succeed()) })
		rule := newAPIRule(namespace, "elsewhere", "elsewhere", noAuth("/*", "GET"))
		gateway := apiv2.GatewayReference(gatewayNamespace + "/elsewhere-gateway")
		rule.Spec.Gateway = &gateway
		rule.Spec.IPRestriction = &apiv2.IPRestriction{Allow: []apiv2.IPBlock{"10.0.0.0/8"}}
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		rule = settled(keyOf(rule))
		expectCondition(rule, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonNotIngressGateway)
		vs, _ := children(keyOf(rule))
		Expect(vs).To(BeEmpty(), "the route must not be published without its restriction")
	})
})

var _ = Describe("Default Gateway management", Ordered, func() {
	ref := types.NamespacedName{Namespace: gatewayNamespace, Name: "managed-default"}

	BeforeAll(func() {
		running.stop()
		opts.Settings.DefaultGateway = ref.String()
		opts.Settings.ManageDefaultGateway = true
		opts.Settings.DefaultGatewayDomain = "managed.example"
		opts.Settings.DefaultGatewayCredential = "managed-example-tls"
		running = startOperator()
		DeferCleanup(func() {
			running.stop()
			opts.Settings.DefaultGateway, opts.Settings.ManageDefaultGateway = "", false
			opts.Settings.DefaultGatewayDomain, opts.Settings.DefaultGatewayCredential = "", ""
			running = startOperator()
		})
	})

	It("creates the default Gateway, restores it and serves APIRules without spec.gateway on it", func() {
		gw := &networkingclientv1.Gateway{}
		Eventually(func() error { return k8s.Get(ctx, ref, gw) }, timeout, interval).Should(Succeed())
		Expect(gw.Spec.Selector).To(Equal(fixtures.IngressGatewaySelector))
		Expect(gw.Spec.Servers).To(HaveLen(2))
		Expect(gw.Spec.Servers[0].Hosts).To(Equal([]string{"*.managed.example"}))
		Expect(gw.Spec.Servers[0].Tls.Mode).To(Equal(networkingv1.ServerTLSSettings_SIMPLE))
		Expect(gw.Spec.Servers[0].Tls.CredentialName).To(Equal("managed-example-tls"))
		Expect(gw.Spec.Servers[1].Port.Number).To(Equal(uint32(80)))
		Expect(gw.Spec.Servers[1].Tls.HttpsRedirect).To(BeTrue())
		Expect(gw.Labels).To(HaveKeyWithValue(translate.DefaultGatewayLabel, "true"))

		By("restoring it when it is deleted")
		Expect(k8s.Delete(ctx, gw)).To(Succeed())
		Eventually(func(g Gomega) {
			restored := &networkingclientv1.Gateway{}
			g.Expect(k8s.Get(ctx, ref, restored)).To(Succeed())
			g.Expect(restored.UID).NotTo(Equal(gw.UID))
		}, timeout, interval).Should(Succeed())

		By("serving a short host of an APIRule without spec.gateway")
		namespace := newNamespace()
		createBackend(namespace, "shop")
		rule := newAPIRule(namespace, "shop", "shop", noAuth("/*", "GET"))
		rule.Spec.Gateway = nil
		rule.Spec.Hosts = []apiv2.Host{"shop"}
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		expectReady(keyOf(rule))
		vs, _ := children(keyOf(rule))
		Expect(vs[0].Spec.Hosts).To(Equal([]string{"shop.managed.example"}))
		Expect(vs[0].Spec.Gateways).To(Equal([]string{ref.String()}))

		By("returning every APIRule on it to Ready after a hand-added server with host * is removed")
		// With the * server the short hosts cannot be completed (Error); the operator restores
		// the Gateway within a second. Every status must follow, not only those whose cached
		// copy happened to be current.
		keys := []types.NamespacedName{keyOf(rule)}
		for i := range 5 {
			more := newAPIRule(namespace, fmt.Sprintf("shop-%d", i), "shop", noAuth("/*", "GET"))
			more.Spec.Gateway = nil
			more.Spec.Hosts = []apiv2.Host{apiv2.Host(fmt.Sprintf("shop-%d", i))}
			Expect(k8s.Create(ctx, more)).To(Succeed())
			keys = append(keys, keyOf(more))
		}
		for _, key := range keys {
			expectReady(key)
		}
		Expect(k8s.Get(ctx, ref, gw)).To(Succeed())
		gw.Spec.Servers = append(gw.Spec.Servers, &networkingv1.Server{
			Port: &networkingv1.Port{Number: 8443, Name: "https-any", Protocol: "HTTPS"}, Hosts: []string{"*"},
			Tls: &networkingv1.ServerTLSSettings{Mode: networkingv1.ServerTLSSettings_SIMPLE, CredentialName: "any-tls"},
		})
		Expect(k8s.Update(ctx, gw)).To(Succeed())
		Eventually(func(g Gomega) {
			restored := &networkingclientv1.Gateway{}
			g.Expect(k8s.Get(ctx, ref, restored)).To(Succeed())
			g.Expect(restored.Spec.Servers).To(HaveLen(2))
		}, timeout, interval).Should(Succeed())
		allReady := func(g Gomega) {
			for _, key := range keys {
				current := &apiv2.APIRule{}
				g.Expect(k8s.Get(ctx, key, current)).To(Succeed())
				g.Expect(current.Status.State).To(Equal(apiv2.StateReady), "%s: %s", key, current.Status.Description)
			}
		}
		Eventually(allReady, timeout, interval).Should(Succeed())
		Consistently(allReady, 3*time.Second, interval).Should(Succeed())

		// The APIRules would lose their Gateway when the suite's operator restarts without the
		// default; delete them so no later spec sees them change state.
		for _, key := range keys {
			Expect(k8s.Delete(ctx, &apiv2.APIRule{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}})).To(Succeed())
		}
		Eventually(func() bool {
			for _, key := range keys {
				if !apierrors.IsNotFound(k8s.Get(ctx, key, &apiv2.APIRule{})) {
					return false
				}
			}
			return true
		}, timeout, interval).Should(BeTrue())
	})

	It("removes a selector key another field manager added to the default Gateway", func() {
		want := translate.DefaultGateway(ref, opts.Settings.DefaultGatewayDomain, opts.Settings.DefaultGatewayCredential,
			opts.Settings.Translate().IngressGatewaySelector)
		gw := &networkingclientv1.Gateway{}
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, ref, gw)).To(Succeed())
			sameSpec(g, &gw.Spec, &want.Spec)
		}, timeout, interval).Should(Succeed())

		// The operator does not own this key: a forced apply alone would keep it, and the
		// Gateway would select pods it was never meant to.
		// The patch response, not a later read: the operator may repair the edit before that.
		handEdit(gw, `{"spec":{"selector":{"extra":"by-hand"}}}`)
		Expect(gw.Spec.Selector).To(HaveKeyWithValue("extra", "by-hand"), "the edit must have landed")

		Eventually(func(g Gomega) {
			current := &networkingclientv1.Gateway{}
			g.Expect(k8s.Get(ctx, ref, current)).To(Succeed())
			sameSpec(g, &current.Spec, &want.Spec)
		}, timeout, interval).Should(Succeed())
	})
})

var _ = Describe("An mTLS host on a shared ingress gateway", func() {
	It("is not served while a wildcard route on another server covers it, and then keeps the wildcard out", func() {
		namespace := newNamespace()
		createBackend(namespace, "fronted")
		// Another backend: the host, not a shared workload, is what conflicts.
		createBackend(namespace, "public")
		wildcard := func(name string) *apiv2.APIRule {
			r := newAPIRule(namespace, name, "public", noAuth("/*", "GET"))
			r.Spec.Hosts = []apiv2.Host{"*.fronted.example.com"}
			return r
		}
		everything := wildcard("everything")
		Expect(k8s.Create(ctx, everything)).To(Succeed())
		expectReady(keyOf(everything))

		partner := mtlsRule(namespace, "fronted")
		partner.Spec.Hosts = []apiv2.Host{"b2b.fronted.example.com"}
		ca, server := newCA("b2b.fronted.example.com")
		Expect(k8s.Create(ctx, server.TLSSecret(gatewayNamespace, "fronted-tls"))).To(Succeed())
		Expect(k8s.Create(ctx, ca.CASecret(namespace, "fronted-ca"))).To(Succeed())
		Expect(k8s.Create(ctx, partner)).To(Succeed())
		rule := settled(keyOf(partner))
		c := expectCondition(rule, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonMTLSHostCovered)
		Expect(c.Message).To(ContainSubstring("APIRule %s/everything routes *.fronted.example.com", namespace))
		gateways, _, _ := crossNamespaceChildren(Default, keyOf(partner))
		Expect(gateways).To(BeEmpty(), "no MUTUAL server while the host is reachable without a certificate")

		By("serving the mTLS host once the wildcard APIRule is gone")
		Expect(k8s.Delete(ctx, everything)).To(Succeed())
		expectReady(keyOf(partner))

		By("refusing a new wildcard APIRule that would cover it")
		again := wildcard("again")
		Expect(k8s.Create(ctx, again)).To(Succeed())
		rule = settled(keyOf(again))
		c = expectCondition(rule, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonMTLSHostCovered)
		Expect(c.Message).To(ContainSubstring("covers b2b.fronted.example.com, which APIRule %s/fronted serves with client certificates", namespace))
		vs, _ := children(keyOf(again))
		Expect(vs).To(BeEmpty())
	})
})
