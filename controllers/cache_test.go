package controllers_test

import (
	"encoding/json"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/index"
	"github.com/apirule-operator/apirule-operator/internal/lookup"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/slim"
)

// fromCache reads an object as the operator does: from its manager's cache, once the cache
// has seen it.
func fromCache(key client.ObjectKey, obj client.Object) {
	EventuallyWithOffset(1, func() error { return running.mgr.GetCache().Get(ctx, key, obj) }, timeout, interval).Should(Succeed())
}

// stateDigest is the digest of a live object's state, as the cache's transforms compute it.
func stateDigest(obj client.Object, gvk schema.GroupVersionKind) string {
	live := obj.DeepCopyObject().(client.Object)
	live.GetObjectKind().SetGroupVersionKind(gvk)
	state, err := manifest.ToUnstructured(live)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	digest, err := apply.StateDigest(state.Object)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return digest
}

// indexValues are the keys an index of the operator's cache holds for a kind.
func indexValues(obj client.Object, field string) []string {
	informer, err := running.mgr.GetCache().GetInformer(ctx, obj)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return informer.(toolscache.SharedIndexInformer).GetIndexer().ListIndexFuncValues("field:" + field)
}

var _ = Describe("The operator's cache", func() {
	var namespace string

	BeforeEach(func() {
		namespace = newNamespace()
	})

	It("keeps a Pod as its names, labels and proxy config, with marks of its sidecar and of its end in place of its spec and status", func() {
		pod := fixtures.SidecarPod(namespace, "cached-0", "cached")
		pod.Annotations = map[string]string{
			meshconfig.ProxyConfigAnnotation: `{"gatewayTopology":{"numTrustedProxies":2}}`,
			"example.com/unrelated":          "a large value the operator never reads",
			// Set by the Pod's author, not by the cache: not believed.
			slim.FinishedMark: "true",
		}
		app := &pod.Spec.Containers[0]
		app.Command = []string{"/app", "--serve"}
		app.Env = []corev1.EnvVar{{Name: "DATABASE_PASSWORD", Value: "hunter2"}}
		pod.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "registry.example/migrate:1",
			Env: []corev1.EnvVar{{Name: "TOKEN", Value: "s3cret"}}}}
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		live := &corev1.Pod{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(pod), live)).To(Succeed())
		Expect(live.ManagedFields).NotTo(BeEmpty(), "the API server tracks field managers; the cache must drop them")

		cached := slim.PodMetadata()
		fromCache(client.ObjectKeyFromObject(pod), cached)
		Expect(cached.Name).To(Equal(live.Name))
		Expect(cached.Namespace).To(Equal(live.Namespace))
		Expect(cached.UID).To(Equal(live.UID))
		Expect(cached.Labels).To(Equal(map[string]string{"app": "cached"}))
		Expect(cached.ManagedFields).To(BeEmpty())
		Expect(cached.Annotations).To(Equal(map[string]string{
			meshconfig.ProxyConfigAnnotation: `{"gatewayTopology":{"numTrustedProxies":2}}`,
			slim.SidecarMark:                 "true",
		}), "containers, images, commands, env values and the rest of the spec and status stay out of memory")

		bare := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "job-0", Labels: map[string]string{"app": "job"}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "task", Image: "registry.example/task:1"}}}}
		Expect(k8s.Create(ctx, bare)).To(Succeed())
		Eventually(func(g Gomega) {
			cachedJob := slim.PodMetadata()
			g.Expect(running.mgr.GetCache().Get(ctx, client.ObjectKeyFromObject(bare), cachedJob)).To(Succeed())
			g.Expect(slim.PodHasSidecar(cachedJob)).To(BeFalse())
			g.Expect(slim.PodFinished(cachedJob)).To(BeFalse())
		}, timeout, interval).Should(Succeed())
		bare.Status.Phase = corev1.PodSucceeded
		Expect(k8s.Status().Update(ctx, bare)).To(Succeed())
		Eventually(func(g Gomega) {
			cachedJob := slim.PodMetadata()
			g.Expect(running.mgr.GetCache().Get(ctx, client.ObjectKeyFromObject(bare), cachedJob)).To(Succeed())
			g.Expect(slim.PodFinished(cachedJob)).To(BeTrue(), "a finished Pod leaves the sidecar check")
		}, timeout, interval).Should(Succeed())
	})

	It("keeps no copy of what kubectl applied in APIRules, nor any annotation of Services, while the live objects keep theirs through the operator's writes", func() {
		// As client-side kubectl apply sends them: the annotation holds what was applied.
		lastApplied := func(obj client.Object) map[string]string {
			raw, err := json.Marshal(obj)
			Expect(err).NotTo(HaveOccurred())
			return map[string]string{corev1.LastAppliedConfigAnnotation: string(raw), "example.com/note": "kept"}
		}
		svc := fixtures.Service(namespace, "applied", 8000)
		svc.Annotations = lastApplied(svc)
		Expect(k8s.Create(ctx, svc)).To(Succeed())
		Expect(k8s.Create(ctx, fixtures.SidecarPod(namespace, "applied-0", "applied"))).To(Succeed())
		rule := newAPIRule(namespace, "applied", "applied", noAuth("/*", "GET"))
		rule.Annotations = lastApplied(rule)
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		// Ready: the operator has patched in its finalizer (no admission here) and the status.
		expectReady(keyOf(rule))

		live := &apiv2.APIRule{}
		Expect(k8s.Get(ctx, keyOf(rule), live)).To(Succeed())
		Expect(live.Finalizers).To(ContainElement(ownership.Finalizer))
		Expect(live.Annotations).To(Equal(rule.Annotations), "the operator's patches leave the annotations alone")
		want := map[string]string{"example.com/note": "kept"}
		Eventually(func(g Gomega) {
			cached := &apiv2.APIRule{}
			g.Expect(running.mgr.GetCache().Get(ctx, keyOf(rule), cached)).To(Succeed())
			g.Expect(cached.Finalizers).To(ContainElement(ownership.Finalizer))
			g.Expect(cached.Annotations).To(Equal(want))
		}, timeout, interval).Should(Succeed())
		cachedService := &corev1.Service{}
		fromCache(client.ObjectKeyFromObject(svc), cachedService)
		Expect(cachedService.Annotations).To(BeEmpty())
		Expect(cachedService.Spec).To(Equal(corev1.ServiceSpec{Selector: svc.Spec.Selector, Ports: []corev1.ServicePort{{Port: 8000}}}),
			"of a Service only its selector and port numbers: addresses, protocols and target ports stay out of memory")
		liveService := &corev1.Service{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(svc), liveService)).To(Succeed())
		Expect(liveService.Annotations).To(Equal(svc.Annotations))
	})

	It("keeps each index value once, hashed, in the form its lookups use, and finds objects through it", func() {
		key := createReady(namespace, "indexed", noAuth("/*", "GET"))
		rule := &apiv2.APIRule{}
		fromCache(key, rule)
		host := index.HostKey(rule.Spec.Hosts[0])
		found := &apiv2.APIRuleList{}
		cached := lookup.NewCachedClient(running.mgr.GetClient(), running.mgr.GetCache())
		Expect(index.APIRuleHost.List(ctx, cached, found, host)).To(Succeed())
		Expect(found.Items).To(ConsistOf(HaveField("Name", key.Name)), "looked up across namespaces")
		Expect(found.Items[0].GroupVersionKind()).To(Equal(apiv2.GroupVersion.WithKind("APIRule")), "a copy with its kind, as the cache gives one")
		Expect(indexValues(&apiv2.APIRule{}, index.APIRuleHost.Field())).To(And(
			HaveEach(HavePrefix("__all_namespaces/#")), Not(ContainElement(HaveSuffix(host)))),
			"hosts are kept as their buckets, across namespaces only: no copy under the namespace")
		Expect(running.mgr.GetCache().List(ctx, &apiv2.APIRuleList{}, client.MatchingFields{index.APIRuleHost.Name(): host})).NotTo(Succeed(),
			"a field selector written by hand with the index's name is an error, not an empty answer: lookups go through the index's List")
		throughReader := &apiv2.APIRuleList{}
		Expect(index.APIRuleHost.List(ctx, running.mgr.GetClient(), throughReader, host)).To(Succeed())
		Expect(throughReader.Items).To(ConsistOf(HaveField("Name", key.Name)), "the cache's reader, listing the whole bucket, answers alike")

		pods := slim.PodMetadataList()
		Expect(index.PodLabel.List(ctx, cached, pods, "app=indexed", client.InNamespace(namespace))).To(Succeed())
		Expect(pods.Items).To(ConsistOf(HaveField("Labels", HaveKeyWithValue("app", "indexed"))), "looked up in the namespace")
		Expect(indexValues(slim.PodMetadata(), index.PodLabel.Field())).To(And(
			ContainElement(HavePrefix(namespace+"/#")), Not(ContainElement(HavePrefix("__all_namespaces/")))),
			"a Pod's labels are looked up in its namespace only: no copy across namespaces")
	})

	It("holds of generated objects what is read and the digest of their state, without managedFields", func() {
		key := createReady(namespace, "slim", noAuth("/*", "GET"))
		vs, ap := children(key)
		Expect(vs).To(HaveLen(1))
		Expect(ap).To(HaveLen(1))
		Expect(vs[0].ManagedFields).NotTo(BeEmpty())
		Expect(ap[0].ManagedFields).NotTo(BeEmpty())

		cachedRoute := &networkingclientv1.VirtualService{}
		fromCache(client.ObjectKeyFromObject(vs[0]), cachedRoute)
		Expect(cachedRoute.ManagedFields).To(BeEmpty())
		Expect(cachedRoute.Labels).To(Equal(vs[0].Labels))
		Expect(cachedRoute.OwnerReferences).To(Equal(vs[0].OwnerReferences))
		Expect(cachedRoute.Spec.Hosts).To(Equal(vs[0].Spec.Hosts))
		Expect(cachedRoute.Spec.Gateways).To(Equal(vs[0].Spec.Gateways))
		Expect(index.RouteBackends(cachedRoute)).To(Equal(index.RouteBackends(vs[0])), "the Services the route sends to")
		for _, r := range cachedRoute.Spec.Http {
			Expect(r.Match).To(BeNil(), "the route's matches stay out of memory")
			Expect(r.Headers).To(BeNil(), "the route's headers stay out of memory")
		}
		digest := stateDigest(vs[0], networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
		Expect(cachedRoute.Annotations).To(Equal(map[string]string{apply.StateDigestAnnotation: digest}),
			"the digest of the state the API server sent, which the applier compares")

		cachedPolicy := &securityclientv1.AuthorizationPolicy{}
		fromCache(client.ObjectKeyFromObject(ap[0]), cachedPolicy)
		Expect(cachedPolicy.ManagedFields).To(BeEmpty())
		Expect(cachedPolicy.OwnerReferences).To(Equal(ap[0].OwnerReferences))
		Expect(cachedPolicy.Spec.Rules).To(BeEmpty(), "a policy's rules stay out of memory")
		policyDigest := stateDigest(ap[0], securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"))
		liveRules, err := slim.RuleDigests(ap[0])
		Expect(err).NotTo(HaveOccurred())
		Expect(liveRules).To(HaveLen(1))
		Expect(cachedPolicy.Annotations).To(Equal(map[string]string{
			apply.StateDigestAnnotation: policyDigest, slim.RuleDigestsAnnotation: liveRules[0],
		}), "the digests of the state and of each rule the API server sent")

		// The Service of the backend takes the default transform.
		cachedService := &corev1.Service{}
		fromCache(client.ObjectKey{Namespace: namespace, Name: "slim"}, cachedService)
		Expect(cachedService.ManagedFields).To(BeEmpty())
		Expect(cachedService.Spec.Selector).To(Equal(map[string]string{"app": "slim"}))
	})
})
