package controllers_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/controllers"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/slim"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

const (
	timeout  = 20 * time.Second
	interval = 100 * time.Millisecond
)

var ctx = context.Background()

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "apirule-test-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// createBackend creates a Service app=<name> on port 8000 and one sidecar-carrying Pod.
func createBackend(namespace, name string) *corev1.Service {
	svc := fixtures.Service(namespace, name, 8000)
	Expect(k8s.Create(ctx, svc)).To(Succeed())
	pod := fixtures.SidecarPod(namespace, name+"-0", name)
	Expect(k8s.Create(ctx, pod)).To(Succeed())
	// The operator's cache receives the Service, the Pod and a later APIRule on separate
	// watches: an APIRule that arrives first is reported without Pods until the Pod's event
	// follows. Tests that expect an APIRule Ready at once start from a backend it has seen.
	EventuallyWithOffset(1, func(g Gomega) {
		g.Expect(running.mgr.GetCache().Get(ctx, client.ObjectKeyFromObject(svc), &corev1.Service{})).To(Succeed())
		g.Expect(running.mgr.GetCache().Get(ctx, client.ObjectKeyFromObject(pod), slim.PodMetadata())).To(Succeed())
	}, timeout, interval).Should(Succeed())
	return svc
}

func noAuth(path string, methods ...apiv2.HTTPMethod) apiv2.Rule {
	yes := true
	return apiv2.Rule{Path: path, Methods: methods, NoAuth: &yes}
}

func newAPIRule(namespace, name, service string, rules ...apiv2.Rule) *apiv2.APIRule {
	return fixtures.APIRule(namespace, name, service, gatewayNamespace+"/public-gateway", rules...)
}

// settled waits until the status describes the current generation and returns the APIRule.
func settled(key types.NamespacedName) *apiv2.APIRule {
	rule := &apiv2.APIRule{}
	EventuallyWithOffset(1, func(g Gomega) {
		g.Expect(k8s.Get(ctx, key, rule)).To(Succeed())
		g.Expect(rule.Status.ObservedGeneration).To(Equal(rule.Generation))
		ready := conditions.Find(rule.Status.Conditions, conditions.Ready)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.ObservedGeneration).To(Equal(rule.Generation))
	}, timeout, interval).Should(Succeed())
	return rule
}

func expectReady(key types.NamespacedName) *apiv2.APIRule {
	var rule *apiv2.APIRule
	EventuallyWithOffset(1, func(g Gomega) {
		rule = &apiv2.APIRule{}
		g.Expect(k8s.Get(ctx, key, rule)).To(Succeed())
		g.Expect(rule.Status.ObservedGeneration).To(Equal(rule.Generation))
		g.Expect(rule.Status.State).To(Equal(apiv2.StateReady), "status: %+v", rule.Status)
	}, timeout, interval).Should(Succeed())
	return rule
}

func expectCondition(rule *apiv2.APIRule, t conditions.Type, status metav1.ConditionStatus, reason conditions.Reason) *metav1.Condition {
	c := conditions.Find(rule.Status.Conditions, t)
	ExpectWithOffset(1, c).NotTo(BeNil(), "condition %s missing: %+v", t, rule.Status.Conditions)
	ExpectWithOffset(1, c.Status).To(Equal(status), "condition %s: %+v", t, c)
	ExpectWithOffset(1, c.Reason).To(Equal(string(reason)), "condition %s: %+v", t, c)
	ExpectWithOffset(1, c.ObservedGeneration).To(Equal(rule.Generation))
	return c
}

// eventuallyReason waits until the APIRule's condition has the reason, and returns the APIRule.
func eventuallyReason(key types.NamespacedName, t conditions.Type, reason conditions.Reason) *apiv2.APIRule {
	rule := &apiv2.APIRule{}
	EventuallyWithOffset(1, func(g Gomega) {
		g.Expect(k8s.Get(ctx, key, rule)).To(Succeed())
		c := conditions.Find(rule.Status.Conditions, t)
		g.Expect(c).NotTo(BeNil(), "condition %s", t)
		g.Expect(c.Reason).To(Equal(string(reason)), "condition %s: %s", t, c.Message)
	}, timeout, interval).Should(Succeed())
	return rule
}

// eventReasons lists the type and reason of the Events about an APIRule, oldest first.
func eventReasons(key types.NamespacedName) []string {
	list := &eventsv1.EventList{}
	ExpectWithOffset(1, k8s.List(ctx, list, client.InNamespace(key.Namespace))).To(Succeed())
	slices.SortFunc(list.Items, func(a, b eventsv1.Event) int { return a.EventTime.Compare(b.EventTime.Time) })
	var out []string
	for _, e := range list.Items {
		if e.Regarding.Kind == "APIRule" && e.Regarding.Name == key.Name {
			out = append(out, e.Type+" "+e.Reason)
		}
	}
	return out
}

// children lists the generated objects of an APIRule in every namespace.
func children(key types.NamespacedName) ([]*networkingclientv1.VirtualService, []*securityclientv1.AuthorizationPolicy) {
	selector := client.MatchingLabels(ownership.Labels(key))
	vsList := &networkingclientv1.VirtualServiceList{}
	ExpectWithOffset(1, k8s.List(ctx, vsList, selector)).To(Succeed())
	apList := &securityclientv1.AuthorizationPolicyList{}
	ExpectWithOffset(1, k8s.List(ctx, apList, selector)).To(Succeed())
	return vsList.Items, apList.Items
}

// createReady creates a backend and an APIRule of the same name routing to it, and waits until
// the APIRule is Ready.
func createReady(namespace, name string, rules ...apiv2.Rule) types.NamespacedName {
	createBackend(namespace, name)
	rule := newAPIRule(namespace, name, name, rules...)
	ExpectWithOffset(1, k8s.Create(ctx, rule)).To(Succeed())
	key := keyOf(rule)
	expectReady(key)
	return key
}

// updateSpec changes the spec of an APIRule, retrying when the operator wrote its status in
// between.
func updateSpec(key types.NamespacedName, change func(*apiv2.APIRuleSpec)) {
	ExpectWithOffset(1, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		rule := &apiv2.APIRule{}
		if err := k8s.Get(ctx, key, rule); err != nil {
			return err
		}
		change(&rule.Spec)
		return k8s.Update(ctx, rule)
	})).To(Succeed())
}

// writeLog records the writes to VirtualServices and AuthorizationPolicies of a namespace,
// as the API server's watch reports them, with their resource versions.
type writeLog struct {
	mu     sync.Mutex
	events []writeEvent
	cancel context.CancelFunc
}

type writeEvent struct {
	kind    string
	typ     watch.EventType
	version int64
}

func recordWrites(namespace string) *writeLog {
	watching, err := client.NewWithWatch(env.Config, client.Options{Scheme: k8s.Scheme()})
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	watchCtx, cancel := context.WithCancel(ctx)
	log := &writeLog{cancel: cancel}
	for kind, list := range map[string]client.ObjectList{
		"VirtualService":      &networkingclientv1.VirtualServiceList{},
		"AuthorizationPolicy": &securityclientv1.AuthorizationPolicyList{},
	} {
		w, err := watching.Watch(watchCtx, list, client.InNamespace(namespace))
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		go func() {
			defer GinkgoRecover()
			defer w.Stop()
			for {
				select {
				case <-watchCtx.Done():
					return
				case e, ok := <-w.ResultChan():
					if !ok {
						return
					}
					if obj, isObject := e.Object.(client.Object); isObject {
						log.mu.Lock()
						log.events = append(log.events, writeEvent{kind: kind, typ: e.Type, version: writeOrder(obj)})
						log.mu.Unlock()
					}
				}
			}
		}()
	}
	return log
}

// first returns the resource version of the first event of that kind and type, or 0.
func (l *writeLog) first(kind string, typ watch.EventType) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if e.kind == kind && e.typ == typ {
			return e.version
		}
	}
	return 0
}

func (l *writeLog) stop() { l.cancel() }

// writeOrder is the resource version of an object written once: on etcd it grows with every
// write, so it orders creations.
func writeOrder(obj client.Object) int64 {
	rv, err := strconv.ParseInt(obj.GetResourceVersion(), 10, 64)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	return rv
}

// waitQuiet waits until the operator has sent no write for half a second.
func waitQuiet(counter *testenv.RequestCounter) {
	EventuallyWithOffset(1, func() bool {
		before := counter.Writes()
		time.Sleep(500 * time.Millisecond)
		return counter.Writes() == before
	}, timeout, interval).Should(BeTrue(), "the operator keeps writing")
}

func keyOf(obj client.Object) types.NamespacedName {
	return types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()}
}

var _ = Describe("APIRule reconciler", func() {
	var namespace string

	BeforeEach(func() {
		namespace = newNamespace()
	})

	It("turns a noAuth APIRule into one VirtualService and one AuthorizationPolicy and reports Ready", func() {
		createBackend(namespace, "httpbin")
		rule := newAPIRule(namespace, "httpbin", "httpbin",
			noAuth("/headers", "GET"), noAuth("/*", "GET", "POST"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)

		rule = expectReady(key)
		Expect(rule.Status.Description).NotTo(BeEmpty())
		Expect(rule.Status.LastProcessedTime).NotTo(BeNil())
		for _, t := range []conditions.Type{conditions.Accepted, conditions.ResolvedRefs, conditions.Programmed, conditions.Ready} {
			Expect(conditions.Find(rule.Status.Conditions, t).Status).To(Equal(metav1.ConditionTrue), "condition %s", t)
		}

		vsList, apList := children(key)
		Expect(vsList).To(HaveLen(1))
		Expect(apList).To(HaveLen(1))
		vs, ap := vsList[0], apList[0]

		By("naming the children deterministically, labelling them and making the APIRule their controller")
		Expect(vs.Name).To(Equal(ownership.ChildName(key, "route")))
		Expect(ap.Name).To(HavePrefix("httpbin-authz-"))
		for _, obj := range []metav1.Object{vs, ap} {
			Expect(obj.GetNamespace()).To(Equal(namespace))
			Expect(obj.GetLabels()).To(Equal(ownership.Labels(key)))
			Expect(obj.GetOwnerReferences()).To(ConsistOf(HaveField("UID", rule.UID)))
			Expect(*obj.GetOwnerReferences()[0].Controller).To(BeTrue())
			// Created, not applied: a new child costs the API server one create.
			Expect(obj.GetManagedFields()).To(ContainElement(And(
				HaveField("Manager", ownership.FieldManager),
				HaveField("Operation", metav1.ManagedFieldsOperationUpdate))))
		}

		By("routing each rule in order to the backend")
		Expect(vs.Spec.Hosts).To(Equal([]string{"httpbin.example.com"}))
		Expect(vs.Spec.Gateways).To(Equal([]string{"istio-system/public-gateway"}))
		Expect(vs.Spec.Http).To(HaveLen(3), "the ambiguous-path refusal, then one route per rule")
		Expect(vs.Spec.Http[0].DirectResponse.GetStatus()).To(BeEquivalentTo(400))
		Expect(vs.Spec.Http[1].Match[0].Uri.GetExact()).To(Equal("/headers"))
		Expect(vs.Spec.Http[2].Match[0].Uri.GetPrefix()).To(Equal("/"))
		Expect(vs.Spec.Http[2].Match[0].Method.GetRegex()).To(Equal("^(GET|POST)$"))
		Expect(vs.Spec.Http[1].Route[0].Destination.Host).To(Equal(fmt.Sprintf("httpbin.%s.svc.cluster.local", namespace)))
		Expect(vs.Spec.Http[1].Route[0].Destination.Port.Number).To(BeEquivalentTo(8000))

		By("allowing only the ingress gateway, and each rule only for requests its route chose")
		Expect(ap.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "httpbin"}))
		Expect(ap.Spec.Action).To(Equal(securityv1.AuthorizationPolicy_ALLOW))
		Expect(ap.Spec.Rules).To(HaveLen(2), "one policy rule per APIRule rule")
		for i, r := range ap.Spec.Rules {
			Expect(r.From[0].Source.Principals).To(Equal([]string{opts.Settings.Principal()}))
			Expect(r.To).To(BeEmpty(), "the route decides hosts, methods and paths")
			token := vs.Spec.Http[i+1].Headers.Request.Set["x-apirule-route"]
			Expect(token).NotTo(BeEmpty())
			Expect(r.When).To(ConsistOf(And(HaveField("Key", "request.headers[x-apirule-route]"), HaveField("Values", []string{token}))))
		}
	})

	It("sends no write when it reconciles a settled APIRule again", func() {
		svc := createBackend(namespace, "settled")
		rule := newAPIRule(namespace, "settled", "settled", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		waitQuiet(running.requests)
		writes, before := running.requests.Writes(), reconciles()

		By("triggering reconciles through the Service watch")
		for i := 0; i < 3; i++ {
			svc.Labels = map[string]string{"touch": fmt.Sprint(i)}
			Expect(k8s.Update(ctx, svc)).To(Succeed())
		}
		Eventually(reconciles, timeout, interval).Should(BeNumerically(">=", before+1))
		Consistently(func() int { return running.requests.Writes() }, time.Second, interval).Should(Equal(writes))
	})

	It("writes a status only to the APIRule it was computed for, never to a new one of the same name", func() {
		key := createReady(namespace, "recreated", noAuth("/*", "GET"))
		old := &apiv2.APIRule{}
		Expect(k8s.Get(ctx, key, old)).To(Succeed())
		stale := old.Status.DeepCopy()
		stale.Description = "computed for the APIRule that was deleted"

		Expect(k8s.Delete(ctx, old)).To(Succeed())
		Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, key, &apiv2.APIRule{})) }, timeout, interval).Should(BeTrue())
		Expect(k8s.Create(ctx, newAPIRule(namespace, "recreated", "recreated", noAuth("/*", "GET")))).To(Succeed())
		recreated := expectReady(key)
		Expect(recreated.UID).NotTo(Equal(old.UID))

		patch, err := controllers.StatusPatch(old.UID, *stale)
		Expect(err).NotTo(HaveOccurred())
		Expect(k8s.Status().Patch(ctx, recreated.DeepCopy(), patch)).NotTo(Succeed(), "the UID test must refuse the write")
		Expect(k8s.Get(ctx, key, recreated)).To(Succeed())
		Expect(recreated.Status.Description).NotTo(Equal(stale.Description))

		// The same patch for the APIRule's own UID replaces the whole status.
		patch, err = controllers.StatusPatch(recreated.UID, apiv2.APIRuleStatus{State: apiv2.StateProcessing, Description: "replaced"})
		Expect(err).NotTo(HaveOccurred())
		// The patch response, not a later read: the operator writes its own status back.
		Expect(k8s.Status().Patch(ctx, recreated, patch)).To(Succeed())
		Expect(recreated.Status.Conditions).To(BeEmpty(), "fields the new status leaves out are removed")
		Expect(recreated.Status.Description).To(Equal("replaced"))
	})

	It("reports a missing Service and becomes Ready once it appears", func() {
		rule := newAPIRule(namespace, "late", "late", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)

		rule = settled(key)
		Expect(rule.Status.State).To(Equal(apiv2.StateError))
		c := expectCondition(rule, conditions.ResolvedRefs, metav1.ConditionFalse, conditions.ReasonServiceNotFound)
		Expect(c.Message).To(ContainSubstring("spec.service: Service %s/late not found", namespace))
		Expect(rule.Status.Description).To(Equal(c.Message))
		expectCondition(rule, conditions.Accepted, metav1.ConditionTrue, conditions.ReasonAccepted)
		expectCondition(rule, conditions.Ready, metav1.ConditionFalse, conditions.ReasonServiceNotFound)
		Expect(rule.Status.Hosts).To(BeEmpty(), "nothing serves")
		Expect(rule.Status.Objects).To(BeEmpty())
		Expect(rule.Status.Gateway).To(Equal(gatewayNamespace + "/public-gateway"))
		vs, ap := children(key)
		Expect(vs).To(BeEmpty())
		Expect(ap).To(BeEmpty())

		Eventually(func() []string { return eventReasons(key) }, timeout, interval).Should(Equal([]string{"Warning ServiceNotFound"}),
			"an Event says why the APIRule is not served")

		// The Pod first: a Service without Pods is a warning of its own.
		Expect(k8s.Create(ctx, fixtures.SidecarPod(namespace, "late-0", "late"))).To(Succeed())
		Expect(k8s.Create(ctx, fixtures.Service(namespace, "late", 8000))).To(Succeed())
		rule = expectReady(key)
		Eventually(func(g Gomega) {
			reasons := eventReasons(key)
			g.Expect(len(reasons)).To(BeNumerically(">=", 2))
			g.Expect(reasons[0]).To(Equal("Warning ServiceNotFound"))
			g.Expect(reasons[len(reasons)-1]).To(Equal("Normal Ready"), "and another that it is served again")
		}, timeout, interval).Should(Succeed())
		vs, ap = children(key)
		Expect(rule.Status.Hosts).To(Equal([]string{"late.example.com"}))
		Expect(rule.Status.Objects).To(Equal([]apiv2.GeneratedObject{
			{Kind: "AuthorizationPolicy", Namespace: namespace, Name: ap[0].Name},
			{Kind: "VirtualService", Namespace: namespace, Name: vs[0].Name},
		}), "status lists what serves, in the order it is applied")
	})

	It("reports a port the Service does not have", func() {
		createBackend(namespace, "ports")
		rule := newAPIRule(namespace, "ports", "ports", noAuth("/*", "GET"))
		rule.Spec.Service.Port = 9999
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		rule = settled(keyOf(rule))
		c := expectCondition(rule, conditions.ResolvedRefs, metav1.ConditionFalse, conditions.ReasonPortNotFound)
		Expect(c.Message).To(ContainSubstring("spec.service.port: Service %s/ports has no port 9999", namespace))
	})

	It("keeps serving the last good objects when an edit breaks the APIRule", func() {
		key := createReady(namespace, "stable", noAuth("/*", "GET"))
		vsBefore, apBefore := children(key)

		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Service.Name = "does-not-exist" })
		Eventually(func(g Gomega) {
			current := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, current)).To(Succeed())
			g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
			g.Expect(current.Status.State).To(Equal(apiv2.StateError))
			programmed := conditions.Find(current.Status.Conditions, conditions.Programmed)
			g.Expect(programmed.Reason).To(Equal(string(conditions.ReasonNotApplied)))
		}, timeout, interval).Should(Succeed())

		vsAfter, apAfter := children(key)
		Expect(vsAfter).To(HaveLen(1))
		Expect(apAfter).To(HaveLen(1))
		Expect(vsAfter[0].ResourceVersion).To(Equal(vsBefore[0].ResourceVersion))
		Expect(apAfter[0].ResourceVersion).To(Equal(apBefore[0].ResourceVersion))
		refused := &apiv2.APIRule{}
		Expect(k8s.Get(ctx, key, refused)).To(Succeed())
		Expect(refused.Status.Hosts).To(Equal([]string{"stable.example.com"}), "the earlier generation still serves its hosts")
		Expect(refused.Status.Objects).To(HaveLen(2))
	})

	It("restores a deleted or edited child", func() {
		key := createReady(namespace, "drift", noAuth("/*", "GET"))
		Consistently(func() []string { return eventReasons(key) }, time.Second, interval).Should(BeEmpty(),
			"no Event for an APIRule that is Ready at once")
		vs, ap := children(key)

		Expect(k8s.Delete(ctx, vs[0])).To(Succeed())
		edited := ap[0].DeepCopy()
		token := edited.Spec.Rules[0].When[0].Values
		edited.Spec.Rules[0].When[0].Values = []string{"widened"}
		Expect(k8s.Update(ctx, edited)).To(Succeed())

		Eventually(func(g Gomega) {
			vs, ap := children(key)
			g.Expect(vs).To(HaveLen(1))
			g.Expect(ap).To(HaveLen(1))
			g.Expect(ap[0].Spec.Rules[0].When[0].Values).To(Equal(token))
		}, timeout, interval).Should(Succeed())
	})

	It("prunes the policy of a backend that is no longer used", func() {
		createBackend(namespace, "old")
		createBackend(namespace, "new")
		rule := newAPIRule(namespace, "moving", "old", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		_, apBefore := children(key)
		Expect(apBefore).To(HaveLen(1))
		Expect(apBefore[0].Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "old"}))

		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Service.Name = "new" })
		Eventually(func(g Gomega) {
			_, ap := children(key)
			g.Expect(ap).To(HaveLen(1))
			g.Expect(ap[0].Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "new"}))
		}, timeout, interval).Should(Succeed())
		expectReady(key)
	})

	It("places policies in the backend's namespace and removes them through a finalizer", func() {
		backendNamespace := newNamespace()
		createBackend(backendNamespace, "remote")
		rule := newAPIRule(namespace, "remote", "remote", noAuth("/*", "GET"))
		rule.Spec.Service.Namespace = &backendNamespace
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		rule = expectReady(key)
		Expect(rule.Finalizers).To(ContainElement(ownership.Finalizer))

		vs, ap := children(key)
		Expect(vs).To(HaveLen(1))
		Expect(vs[0].Namespace).To(Equal(namespace))
		Expect(ap).To(HaveLen(1))
		Expect(ap[0].Namespace).To(Equal(backendNamespace))
		Expect(ap[0].OwnerReferences).To(BeEmpty(), "an ownerReference cannot cross namespaces")

		Expect(k8s.Delete(ctx, rule)).To(Succeed())
		Eventually(func(g Gomega) {
			err := k8s.Get(ctx, key, &apiv2.APIRule{})
			g.Expect(apierrors.IsNotFound(err)).To(BeTrue(), "APIRule still there: %v", err)
			_, ap := children(key)
			g.Expect(ap).To(BeEmpty())
		}, timeout, interval).Should(Succeed())
	})

	It("removes the route before the policies when the APIRule is deleted", func() {
		createBackend(namespace, "deleted")
		rule := newAPIRule(namespace, "deleted", "deleted", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		rule = expectReady(key)
		Expect(rule.Finalizers).To(ContainElement(ownership.Finalizer))

		writes := recordWrites(namespace)
		defer writes.stop()
		Expect(k8s.Delete(ctx, rule)).To(Succeed())
		var routeDeleted, policyDeleted int64
		Eventually(func() bool {
			routeDeleted = writes.first("VirtualService", watch.Deleted)
			policyDeleted = writes.first("AuthorizationPolicy", watch.Deleted)
			return routeDeleted > 0 && policyDeleted > 0
		}, timeout, interval).Should(BeTrue())
		Expect(routeDeleted).To(BeNumerically("<", policyDeleted))
		Eventually(func() bool { return apierrors.IsNotFound(k8s.Get(ctx, key, &apiv2.APIRule{})) }, timeout, interval).Should(BeTrue())
	})

	It("resolves a short host with the Gateway's domain", func() {
		createBackend(namespace, "short")
		rule := newAPIRule(namespace, "short", "short", noAuth("/*", "GET"))
		rule.Spec.Hosts = []apiv2.Host{"short"}
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		vs, _ := children(key)
		Expect(vs[0].Spec.Hosts).To(Equal([]string{"short.example.com"}))
	})

	It("turns a jwt rule into a RequestAuthentication and a policy requiring its token, applied before the route", func() {
		createBackend(namespace, "jwt")
		uri := "https://idp.example.com/jwks"
		rule := newAPIRule(namespace, "jwt", "jwt", apiv2.Rule{Path: "/*", Methods: []apiv2.HTTPMethod{"GET"},
			JWT: &apiv2.JWTConfig{
				Authentications: []apiv2.JWTAuthentication{{Issuer: "https://idp.example.com", JWKSURI: &uri}},
				Authorizations:  []apiv2.JWTAuthorization{{Audiences: []string{"shop"}}},
			}})
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)

		ras := &securityclientv1.RequestAuthenticationList{}
		Expect(k8s.List(ctx, ras, client.MatchingLabels(ownership.Labels(key)))).To(Succeed())
		Expect(ras.Items).To(HaveLen(1))
		ra := ras.Items[0]
		Expect(ra.Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "jwt"}))
		Expect(ra.Spec.JwtRules).To(HaveLen(1))
		Expect(ra.Spec.JwtRules[0].Issuer).To(Equal("https://idp.example.com"))
		Expect(ra.Spec.JwtRules[0].ForwardOriginalToken).To(BeTrue())

		vs, ap := children(key)
		Expect(ap).To(HaveLen(1))
		Expect(ap[0].Spec.Rules[0].From[0].Source.RequestPrincipals).To(Equal([]string{"https://idp.example.com/*"}))
		when := ap[0].Spec.Rules[0].When
		Expect(when).To(HaveLen(3))
		Expect(when[0].Key).To(Equal("request.auth.claims[iss]"))
		Expect(when[0].Values).To(Equal([]string{"https://idp.example.com"}))
		Expect(when[1].Key).To(Equal("request.headers[x-apirule-route]"))
		Expect(when[2].Key).To(Equal("request.auth.claims[aud]"))

		By("having written the token check and the policy before the route that depends on them")
		// etcd resource versions grow with every write, so they order the creations.
		Expect(writeOrder(ra)).To(BeNumerically("<", writeOrder(ap[0])))
		Expect(writeOrder(ap[0])).To(BeNumerically("<", writeOrder(vs[0])))
	})

	It("resolves extAuth providers from the mesh config, and warns when a workload needs two", func() {
		createBackend(namespace, "guarded")
		rule := newAPIRule(namespace, "guarded", "guarded", apiv2.Rule{Path: "/*", Methods: []apiv2.HTTPMethod{"GET"},
			ExtAuth: &apiv2.ExtAuth{Authorizers: []string{"oauth2-proxy"}}})
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)

		By("reporting the missing mesh config")
		rule = settled(key)
		expectCondition(rule, conditions.ResolvedRefs, metav1.ConditionFalse, conditions.ReasonMeshConfigNotFound)

		By("picking the mesh config up when it is created")
		Expect(k8s.Create(ctx, fixtures.MeshConfig(gatewayNamespace, "oauth2-proxy", "opa"))).To(Succeed())
		expectReady(key)
		_, ap := children(key)
		Expect(ap).To(HaveLen(2))
		var custom *securityclientv1.AuthorizationPolicy
		for _, p := range ap {
			if p.Spec.Action == securityv1.AuthorizationPolicy_CUSTOM {
				custom = p
			}
		}
		Expect(custom).NotTo(BeNil())
		Expect(custom.Spec.GetProvider().GetName()).To(Equal("oauth2-proxy"))
		Expect(custom.Spec.Rules[0].From).To(BeEmpty())

		By("warning, not failing, when one workload would need two providers")
		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Rules[0].ExtAuth.Authorizers = []string{"oauth2-proxy", "opa"} })
		Eventually(func(g Gomega) {
			current := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, current)).To(Succeed())
			g.Expect(current.Status.ObservedGeneration).To(Equal(current.Generation))
			g.Expect(current.Status.State).To(Equal(apiv2.StateWarning))
			g.Expect(current.Status.Description).To(ContainSubstring("PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS"))
			accepted := conditions.Find(current.Status.Conditions, conditions.Accepted)
			g.Expect(accepted.Reason).To(Equal(string(conditions.ReasonAcceptedWithWarnings)))
			By("naming the warning with its own reason and field in status.warnings")
			g.Expect(current.Status.Warnings).To(ConsistOf(And(
				HaveField("Reason", string(conditions.ReasonMultipleAuthzProviders)),
				HaveField("Field", "spec.rules[0].extAuth.authorizers"),
				HaveField("Message", ContainSubstring("PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS")))))
		}, timeout, interval).Should(Succeed())
		_, ap = children(key)
		Expect(ap).To(HaveLen(3), "the ALLOW policy and one CUSTOM policy per provider")

		By("reporting a mesh config that does not parse as a condition with its reason")
		mesh := &corev1.ConfigMap{}
		meshKey := types.NamespacedName{Namespace: gatewayNamespace, Name: "istio"}
		Expect(k8s.Get(ctx, meshKey, mesh)).To(Succeed())
		good := mesh.Data["mesh"]
		mesh.Data["mesh"] = "extensionProviders: {"
		Expect(k8s.Update(ctx, mesh)).To(Succeed())
		Expect(eventuallyReason(key, conditions.ResolvedRefs, conditions.ReasonMeshConfigInvalid).Status.State).To(Equal(apiv2.StateError))
		_, ap = children(key)
		Expect(ap).To(HaveLen(3), "what serves stays while the mesh config is broken")
		Expect(k8s.Get(ctx, meshKey, mesh)).To(Succeed())
		mesh.Data["mesh"] = good
		Expect(k8s.Update(ctx, mesh)).To(Succeed())
		Eventually(func(g Gomega) {
			current := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, current)).To(Succeed())
			g.Expect(current.Status.State).To(Equal(apiv2.StateWarning))
		}, timeout, interval).Should(Succeed())
	})

	It("refuses to route to Pods without the sidecar, and follows when they are replaced", func() {
		svc := fixtures.Service(namespace, "plain", 8000)
		Expect(k8s.Create(ctx, svc)).To(Succeed())
		bare := fixtures.SidecarPod(namespace, "plain-0", "plain")
		bare.Spec.Containers = bare.Spec.Containers[:1]
		Expect(k8s.Create(ctx, bare)).To(Succeed())
		rule := newAPIRule(namespace, "plain", "plain", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)

		rule = settled(key)
		c := expectCondition(rule, conditions.ResolvedRefs, metav1.ConditionFalse, conditions.ReasonSidecarMissing)
		Expect(c.Message).To(ContainSubstring("Pod plain-0 selected by Service %s/plain has no istio-proxy sidecar", namespace))
		vs, _ := children(key)
		Expect(vs).To(BeEmpty())

		By("replacing the Pod by an injected one")
		Expect(k8s.Delete(ctx, bare)).To(Succeed())
		Expect(k8s.Create(ctx, fixtures.SidecarPod(namespace, "plain-1", "plain"))).To(Succeed())
		expectReady(key)

		By("withdrawing the serving route when a Pod without the sidecar joins the Service")
		late := fixtures.SidecarPod(namespace, "plain-2", "plain")
		late.Spec.Containers = late.Spec.Containers[:1]
		Expect(k8s.Create(ctx, late)).To(Succeed())
		eventuallyReason(key, conditions.Programmed, conditions.ReasonWithdrawn)
		// The status is written after the withdrawal, in the same reconcile.
		vs, ap := children(key)
		Expect(vs).To(BeEmpty(), "no route to a Pod that enforces no policy")
		Expect(ap).To(BeEmpty())

		By("serving again once that Pod has finished, as a Job's Pod does: it is no endpoint any more")
		late.Status.Phase = corev1.PodSucceeded
		Expect(k8s.Status().Update(ctx, late)).To(Succeed())
		expectReady(key)
	})

	It("withdraws the serving generation's route when a Pod without the sidecar joins its Service while an edit is refused", func() {
		key := createReady(namespace, "older", noAuth("/*", "GET"))
		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Service.Name = "not-yet" })
		eventuallyReason(key, conditions.ResolvedRefs, conditions.ReasonServiceNotFound)
		routes, _ := children(key)
		Expect(routes).To(HaveLen(1), "the earlier generation keeps serving Service older")

		bare := fixtures.SidecarPod(namespace, "older-bare", "older")
		bare.Spec.Containers = bare.Spec.Containers[:1]
		Expect(k8s.Create(ctx, bare)).To(Succeed())
		Eventually(func() int {
			routes, policies := children(key)
			return len(routes) + len(policies)
		}, timeout, interval).Should(BeZero(), "no route to a Pod that enforces no policy, whatever generation serves")
	})

	It("warns while the Service selects no Pods", func() {
		Expect(k8s.Create(ctx, fixtures.Service(namespace, "empty", 8000))).To(Succeed())
		rule := newAPIRule(namespace, "empty", "empty", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		Eventually(func(g Gomega) {
			current := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, current)).To(Succeed())
			g.Expect(current.Status.State).To(Equal(apiv2.StateWarning))
			g.Expect(current.Status.Description).To(ContainSubstring("selects no Pods yet"))
		}, timeout, interval).Should(Succeed())
		vs, ap := children(key)
		Expect(vs).To(HaveLen(1))
		Expect(ap).To(HaveLen(1))
	})

	It("moves the policy when the Service's selector changes", func() {
		svc := createBackend(namespace, "moving-selector")
		rule := newAPIRule(namespace, "selector", "moving-selector", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		Expect(k8s.Create(ctx, fixtures.SidecarPod(namespace, "v2-0", "v2"))).To(Succeed())

		svc.Spec.Selector = map[string]string{"app": "v2"}
		Expect(k8s.Update(ctx, svc)).To(Succeed())
		Eventually(func(g Gomega) {
			_, ap := children(key)
			g.Expect(ap).To(HaveLen(1))
			g.Expect(ap[0].Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "v2"}))
		}, timeout, interval).Should(Succeed())
	})

	It("becomes Ready when its Gateway appears", func() {
		createBackend(namespace, "late-gateway")
		rule := newAPIRule(namespace, "late-gateway", "late-gateway", noAuth("/*", "GET"))
		gateway := apiv2.GatewayReference(namespace + "/own-gateway")
		rule.Spec.Gateway = &gateway
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		rule = settled(key)
		expectCondition(rule, conditions.ResolvedRefs, metav1.ConditionFalse, conditions.ReasonGatewayNotFound)

		Expect(k8s.Create(ctx, fixtures.Gateway(namespace, "own-gateway", "*.example.com"))).To(Succeed())
		rule = eventuallyReason(key, conditions.Accepted, conditions.ReasonAcceptedWithWarnings)
		Expect(rule.Status.Warnings).To(ConsistOf(HaveField("Reason", string(conditions.ReasonGatewayCredentialNotFound))))
		Expect(rule.Status.Warnings[0].Message).To(ContainSubstring("certificate Secret %s/own-gateway-tls, which does not exist", gatewayNamespace))

		By("serving it without a warning once the Gateway's certificate Secret exists")
		Expect(k8s.Create(ctx, fixtures.GatewayCredential(gatewayNamespace, "own-gateway", "*.example.com"))).To(Succeed())
		expectReady(key)
	})

	It("removes a deleted rule's route before its policy", func() {
		createBackend(namespace, "first")
		createBackend(namespace, "second")
		rule := newAPIRule(namespace, "shrinking", "first", noAuth("/first", "GET"), noAuth("/second", "GET"))
		rule.Spec.Rules[1].Service = &apiv2.Service{Name: "second", Port: 8000}
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		_, before := children(key)
		Expect(before).To(HaveLen(2))

		By("watching the writes while the second rule is removed")
		writes := recordWrites(namespace)
		defer writes.stop()
		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Rules = spec.Rules[:1] })
		var routeModified, policyDeleted int64
		Eventually(func() bool {
			routeModified = writes.first("VirtualService", watch.Modified)
			policyDeleted = writes.first("AuthorizationPolicy", watch.Deleted)
			return routeModified > 0 && policyDeleted > 0
		}, timeout, interval).Should(BeTrue())
		Expect(routeModified).To(BeNumerically("<", policyDeleted),
			"the route of the removed rule must be gone before its policy is deleted")
		_, after := children(key)
		Expect(after).To(HaveLen(1))
		Expect(after[0].Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "first"}))
	})

	It("refuses a second APIRule for a host another APIRule serves; the first keeps serving", func() {
		createBackend(namespace, "owner")
		createBackend(namespace, "intruder")
		first := newAPIRule(namespace, "owner", "owner", noAuth("/*", "GET"))
		first.Spec.Hosts = []apiv2.Host{"contested.example.com"}
		Expect(k8s.Create(ctx, first)).To(Succeed())
		firstKey := keyOf(first)
		expectReady(firstKey)
		vsBefore, apBefore := children(firstKey)

		second := newAPIRule(namespace, "intruder", "intruder", noAuth("/*", "GET", "POST"))
		second.Spec.Hosts = []apiv2.Host{"other.example.com", "contested"}
		Expect(k8s.Create(ctx, second)).To(Succeed())
		secondKey := keyOf(second)
		second = settled(secondKey)
		c := expectCondition(second, conditions.Accepted, metav1.ConditionFalse, conditions.ReasonHostConflict)
		Expect(c.Message).To(ContainSubstring(`spec.hosts[1]: host "contested.example.com" is already served by APIRule %s/owner`, namespace))
		vs, ap := children(secondKey)
		Expect(vs).To(BeEmpty())
		Expect(ap).To(BeEmpty())

		vsAfter, apAfter := children(firstKey)
		Expect(vsAfter[0].ResourceVersion).To(Equal(vsBefore[0].ResourceVersion))
		Expect(apAfter[0].ResourceVersion).To(Equal(apBefore[0].ResourceVersion))
		Expect(settled(firstKey).Status.State).To(Equal(apiv2.StateReady))

		By("serving the second APIRule once the first lets the host go")
		Expect(k8s.Delete(ctx, first)).To(Succeed())
		expectReady(secondKey)
	})

	It("refuses a host that a VirtualService it does not manage routes through the same Gateway", func() {
		createBackend(namespace, "managed")
		foreign := &networkingclientv1.VirtualService{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "hand-written"}}
		foreign.Spec.Hosts = []string{"legacy.example.com"}
		foreign.Spec.Gateways = []string{gatewayNamespace + "/public-gateway"}
		foreign.Spec.Http = []*networkingv1.HTTPRoute{{Route: []*networkingv1.HTTPRouteDestination{{
			Destination: &networkingv1.Destination{Host: "legacy.example.svc.cluster.local"}}}}}
		Expect(k8s.Create(ctx, foreign)).To(Succeed())

		rule := newAPIRule(namespace, "managed", "managed", noAuth("/*", "GET"))
		rule.Spec.Hosts = []apiv2.Host{"legacy.example.com"}
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		// The VirtualService may reach the operator's cache after the APIRule: then the APIRule
		// is served at first and withdrawn when the older route shows up.
		Eventually(func(g Gomega) {
			current := &apiv2.APIRule{}
			g.Expect(k8s.Get(ctx, key, current)).To(Succeed())
			accepted := conditions.Find(current.Status.Conditions, conditions.Accepted)
			g.Expect(accepted).NotTo(BeNil())
			g.Expect(accepted.Reason).To(Equal(string(conditions.ReasonHostConflict)))
			g.Expect(accepted.Message).To(ContainSubstring("already routed through this Gateway by VirtualService %s/hand-written", namespace))
			vs, _ := children(key)
			g.Expect(vs).To(BeEmpty())
		}, timeout, interval).Should(Succeed())

		By("serving it once the hand-written route is gone")
		Expect(k8s.Delete(ctx, foreign)).To(Succeed())
		expectReady(key)
	})

	It("takes the route down before it narrows a policy the old route still relies on", func() {
		createBackend(namespace, "narrowing")
		uri := "https://idp.example.com/jwks"
		rule := newAPIRule(namespace, "narrowing", "narrowing",
			apiv2.Rule{Path: "/admin", Methods: []apiv2.HTTPMethod{"GET"}, JWT: &apiv2.JWTConfig{
				Authentications: []apiv2.JWTAuthentication{{Issuer: "https://idp.example.com", JWKSURI: &uri}}}},
			noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)

		// Without the jwt rule, the noAuth policy no longer excludes /admin. Were it written
		// while the old route still sent /admin to the jwt rule's backend, GET /admin would be
		// open without a token until the route caught up.
		writes := recordWrites(namespace)
		defer writes.stop()
		updateSpec(key, func(spec *apiv2.APIRuleSpec) { spec.Rules = spec.Rules[1:] })
		var policyModified int64
		Eventually(func() int64 {
			policyModified = writes.first("AuthorizationPolicy", watch.Modified)
			return policyModified
		}, timeout, interval).Should(BeNumerically(">", 0))
		routeDown := writes.first("VirtualService", watch.Deleted)
		Expect(routeDown).To(BeNumerically(">", 0), "the old route must be taken down")
		Expect(routeDown).To(BeNumerically("<", policyModified))
		expectReady(key)
		vs, _ := children(key)
		Expect(vs).To(HaveLen(1))
		Expect(vs[0].Spec.Http).To(HaveLen(2), "the ambiguous-path refusal and the remaining rule")
	})
})
