package controllers_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	typev1beta1 "istio.io/api/type/v1beta1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
)

// handEdit merge-patches an object as a person or another tool would: under a field manager
// of its own, so server-side apply by the operator does not take the fields over.
func handEdit(obj client.Object, patch string) {
	ExpectWithOffset(1, k8s.Patch(ctx, obj, client.RawPatch(types.MergePatchType, []byte(patch)),
		client.FieldOwner("hand-edit"))).To(Succeed())
}

// sameSpec says whether two proto specs are equal, and shows both when they are not.
func sameSpec(g Gomega, got, want proto.Message) {
	g.ExpectWithOffset(1, proto.Equal(got, want)).To(BeTrue(), "spec\n  %s\nwant\n  %s",
		protojson.Format(got), protojson.Format(want))
}

// expectNoWriteOnResync triggers reconciles of a settled APIRule through its Service and
// expects the operator to send no write: the repaired objects equal the desired ones.
func expectNoWriteOnResync(namespace, service string) {
	waitQuiet(running.requests)
	writes, before := running.requests.Writes(), reconciles()
	svc := &corev1.Service{}
	ExpectWithOffset(1, k8s.Get(ctx, types.NamespacedName{Namespace: namespace, Name: service}, svc)).To(Succeed())
	handEdit(svc, fmt.Sprintf(`{"metadata":{"labels":{"touch":"%d"}}}`, time.Now().UnixNano()))
	EventuallyWithOffset(1, reconciles, timeout, interval).Should(BeNumerically(">", before))
	ConsistentlyWithOffset(1, func() int { return running.requests.Writes() }, time.Second, interval).Should(Equal(writes))
}

// createMTLSReady creates a backend, the Secrets of an mTLS APIRule of the same name and the
// APIRule, and waits until it is Ready; the Secrets and the APIRule go at the end of the spec.
func createMTLSReady(namespace, name string) types.NamespacedName {
	createBackend(namespace, name)
	rule := mtlsRule(namespace, name)
	ca, server := newCA(name + ".example.com")
	ExpectWithOffset(1, k8s.Create(ctx, server.TLSSecret(gatewayNamespace, name+"-tls"))).To(Succeed())
	DeferCleanup(func() {
		Expect(k8s.Delete(ctx, server.TLSSecret(gatewayNamespace, name+"-tls"))).To(Succeed())
	})
	ExpectWithOffset(1, k8s.Create(ctx, ca.CASecret(namespace, name+"-ca"))).To(Succeed())
	ExpectWithOffset(1, k8s.Create(ctx, rule)).To(Succeed())
	key := keyOf(rule)
	expectReady(key)
	DeferCleanup(func() { Expect(k8s.Delete(ctx, rule)).To(Succeed()) })
	return key
}

// unownedPolicy is an AuthorizationPolicy no APIRule owns: the running operator leaves it
// alone, so only an Applier under test writes it.
func unownedPolicy(namespace, name string) *securityclientv1.AuthorizationPolicy {
	policy := &securityclientv1.AuthorizationPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: securityclientv1.SchemeGroupVersion.String(), Kind: "AuthorizationPolicy"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
	}
	policy.Spec.Selector = &typev1beta1.WorkloadSelector{MatchLabels: map[string]string{"app": name}}
	policy.Spec.Rules = []*securityv1.Rule{{}}
	return policy
}

var _ = Describe("Generated objects are exactly what the translator computed", func() {
	var namespace string

	BeforeEach(func() {
		namespace = newNamespace()
	})

	It("drops from a policy it created a selector label the Service no longer has", func() {
		// A new policy is created, so its fields belong to the operator's update, not to an
		// apply of it: a later apply that leaves a key out must still leave none behind.
		svc := fixtures.Service(namespace, "tiers", 8000)
		svc.Spec.Selector = map[string]string{"app": "tiers", "tier": "web"}
		Expect(k8s.Create(ctx, svc)).To(Succeed())
		pod := fixtures.SidecarPod(namespace, "tiers-0", "tiers")
		pod.Labels["tier"] = "web"
		Expect(k8s.Create(ctx, pod)).To(Succeed())
		rule := newAPIRule(namespace, "tiers", "tiers", noAuth("/*", "GET"))
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		key := keyOf(rule)
		expectReady(key)
		_, ap := children(key)
		Expect(ap).To(HaveLen(1))
		Expect(ap[0].Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "tiers", "tier": "web"}))

		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current := &corev1.Service{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(svc), current); err != nil {
				return err
			}
			current.Spec.Selector = map[string]string{"app": "tiers"}
			return k8s.Update(ctx, current)
		})).To(Succeed())
		Eventually(func(g Gomega) {
			_, ap := children(key)
			g.Expect(ap).To(HaveLen(1))
			g.Expect(ap[0].Spec.Selector.MatchLabels).To(Equal(map[string]string{"app": "tiers"}))
		}, timeout, interval).Should(Succeed())
		expectNoWriteOnResync(namespace, "tiers")
	})

	It("removes an action another field manager set on a generated AuthorizationPolicy", func() {
		key := createReady(namespace, "audited", noAuth("/*", "GET"))
		_, ap := children(key)
		Expect(ap).To(HaveLen(1))
		want := ap[0].Spec.DeepCopy()
		// ALLOW is the zero value: the operator's apply does not send it, so it does not own
		// the field, and a forced apply alone leaves AUDIT in place.
		Expect(want.Action).To(Equal(securityv1.AuthorizationPolicy_ALLOW))

		// The patch response, not a later read: the operator may repair the edit before that.
		handEdit(ap[0], `{"spec":{"action":"AUDIT"}}`)
		Expect(ap[0].Spec.Action).To(Equal(securityv1.AuthorizationPolicy_AUDIT), "the edit must have landed")

		Eventually(func(g Gomega) {
			current := &securityclientv1.AuthorizationPolicy{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ap[0]), current)).To(Succeed())
			sameSpec(g, &current.Spec, want)
		}, timeout, interval).Should(Succeed())
		expectNoWriteOnResync(namespace, "audited")
	})

	It("removes from generated objects what makes Istio enforce them differently: a policy's dry-run, another revision", func() {
		key := createReady(namespace, "shadowed", noAuth("/*", "GET"))
		vs, ap := children(key)
		Expect(vs).To(HaveLen(1))
		Expect(ap).To(HaveLen(1))
		// In dry-run the policy only logs its decisions; labelled for another revision, the
		// istiod of this one ignores the policy and the route alike.
		handEdit(ap[0], `{"metadata":{"annotations":{"istio.io/dry-run":"true"},"labels":{"istio.io/rev":"canary"}}}`)
		Expect(ap[0].Annotations).To(HaveKeyWithValue("istio.io/dry-run", "true"), "the edit must have landed")
		handEdit(vs[0], `{"metadata":{"labels":{"istio.io/rev":"canary"}}}`)
		Expect(vs[0].Labels).To(HaveKeyWithValue("istio.io/rev", "canary"), "the edit must have landed")

		Eventually(func(g Gomega) {
			policy := &securityclientv1.AuthorizationPolicy{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(ap[0]), policy)).To(Succeed())
			g.Expect(policy.Annotations).NotTo(HaveKey("istio.io/dry-run"))
			g.Expect(policy.Labels).NotTo(HaveKey("istio.io/rev"))
			route := &networkingclientv1.VirtualService{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(vs[0]), route)).To(Succeed())
			g.Expect(route.Labels).NotTo(HaveKey("istio.io/rev"))
		}, timeout, interval).Should(Succeed())
		expectNoWriteOnResync(namespace, "shadowed")
	})

	It("removes a field its Istio types do not know, which a newer CRD accepts, from a generated AuthorizationPolicy", func() {
		// A cluster's Istio CRDs may be newer than the operator's istio.io/api: here the CRD
		// learns a field the operator's types do not have, and whose meaning it cannot know.
		widenSpec("authorizationpolicies.security.istio.io", "futureMode")
		key := createReady(namespace, "future", noAuth("/*", "GET"))
		_, ap := children(key)
		Expect(ap).To(HaveLen(1))
		edited := &unstructured.Unstructured{}
		edited.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"))
		edited.SetNamespace(ap[0].Namespace)
		edited.SetName(ap[0].Name)
		edit := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"futureMode":"OFF"}}`))
		// Right after the CRD changed the API server may still prune the field.
		Eventually(func(g Gomega) {
			tried := edited.DeepCopy()
			g.Expect(k8s.Patch(ctx, tried, edit, client.DryRunAll)).To(Succeed())
			mode, _, _ := unstructured.NestedString(tried.Object, "spec", "futureMode")
			g.Expect(mode).To(Equal("OFF"))
		}, timeout, interval).Should(Succeed())
		// In a cluster the CRD changes long before anyone edits a policy, and the operator's
		// watches have begun since; watches begun before the change are served by the old
		// schema, which prunes the field. So the operator starts again here.
		running.stop()
		running = startOperator()
		Expect(k8s.Patch(ctx, edited, edit, client.FieldOwner("hand-edit"))).To(Succeed())
		mode, _, _ := unstructured.NestedString(edited.Object, "spec", "futureMode")
		Expect(mode).To(Equal("OFF"), "the edit must have landed")

		Eventually(func(g Gomega) {
			current := edited.DeepCopy()
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(edited), current)).To(Succeed())
			_, found, _ := unstructured.NestedFieldNoCopy(current.Object, "spec", "futureMode")
			g.Expect(found).To(BeFalse(), "the stored policy keeps a field the operator never set")
		}, timeout, interval).Should(Succeed())
		expectNoWriteOnResync(namespace, "future")
	})

	It("removes an exportTo another manager applied to the generated VirtualService", func() {
		key := createReady(namespace, "exported", noAuth("/*", "GET"))
		vs, _ := children(key)
		Expect(vs).To(HaveLen(1))
		want := vs[0].Spec.DeepCopy()

		// A server-side apply under another manager: that manager owns spec.exportTo.
		other := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": networkingclientv1.SchemeGroupVersion.String(),
			"kind":       "VirtualService",
			"metadata":   map[string]any{"namespace": vs[0].Namespace, "name": vs[0].Name},
			"spec":       map[string]any{"exportTo": []any{"."}},
		}}
		// A successful apply has landed; a later read could already see the repair.
		Expect(k8s.Apply(ctx, client.ApplyConfigurationFromUnstructured(other), client.FieldOwner("other-tool"))).To(Succeed())

		Eventually(func(g Gomega) {
			current := &networkingclientv1.VirtualService{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(vs[0]), current)).To(Succeed())
			sameSpec(g, &current.Spec, want)
		}, timeout, interval).Should(Succeed())
		expectNoWriteOnResync(namespace, "exported")
	})

	It("removes a key another manager added to the data of a CA copy", func() {
		key := createMTLSReady(namespace, "drift-mtls")
		_, secrets, _ := crossNamespaceChildren(Default, key)
		Expect(secrets).To(HaveLen(1))
		caCopy := &secrets[0]
		want := caCopy.Data

		// Not a certificate: the operator's cache holds only a marker for it.
		handEdit(caCopy, `{"data":{"extra":"c2VjcmV0"}}`)

		Eventually(func(g Gomega) {
			current := &corev1.Secret{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(caCopy), current)).To(Succeed())
			g.Expect(current.Data).To(Equal(want))
			g.Expect(current.Type).To(Equal(corev1.SecretTypeOpaque))
		}, timeout, interval).Should(Succeed())
		expectNoWriteOnResync(namespace, "drift-mtls")
	})

	It("restores an edited mTLS Gateway that carries a forged digest of the desired state", func() {
		// Only the cache's own transforms may set the digest annotation, and only on the kinds
		// it holds as a digest: on a Gateway it must not stop the repair.
		key := createMTLSReady(namespace, "forged-mtls")
		gateways, _, _ := crossNamespaceChildren(Default, key)
		Expect(gateways).To(HaveLen(1))
		gw := gateways[0]
		want := gw.Spec.DeepCopy()
		Expect(want.Servers[0].Tls.Mode).To(Equal(networkingv1.ServerTLSSettings_MUTUAL))

		digest := stateDigest(gw, networkingclientv1.SchemeGroupVersion.WithKind("Gateway"))
		handEdit(gw, fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}},"spec":{"servers":[{"hosts":["forged-mtls.example.com"],"port":{"number":443,"name":"https","protocol":"HTTPS"},"tls":{"mode":"SIMPLE","credentialName":"forged-mtls-tls"}}]}}`,
			apply.StateDigestAnnotation, digest))
		Expect(gw.Spec.Servers[0].Tls.Mode).To(Equal(networkingv1.ServerTLSSettings_SIMPLE), "the edit must have landed")

		Eventually(func(g Gomega) {
			current := &networkingclientv1.Gateway{}
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(gw), current)).To(Succeed())
			sameSpec(g, &current.Spec, want)
		}, timeout, interval).Should(Succeed())
	})

	It("makes a child it created exactly desired when the API server stored it otherwise", func() {
		// Its create lands with action AUDIT, as a mutating admission webhook could make it.
		desired := unownedPolicy(namespace, "mutated")
		live, err := client.NewWithWatch(env.Config, client.Options{Scheme: k8s.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		var creates atomic.Int32
		c := interceptor.NewClient(live, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				creates.Add(1)
				u := obj.(*unstructured.Unstructured)
				Expect(unstructured.SetNestedField(u.Object, "AUDIT", "spec", "action")).To(Succeed())
				return c.Create(ctx, obj, opts...)
			},
		})
		// A client without a cache: the object is not found, so the Applier creates it.
		_, err = (&apply.Applier{Client: c}).Apply(ctx, []client.Object{desired})
		Expect(err).NotTo(HaveOccurred())
		Expect(creates.Load()).To(BeEquivalentTo(1))

		current := &securityclientv1.AuthorizationPolicy{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(desired), current)).To(Succeed())
		Expect(current.Spec.Action).To(Equal(securityv1.AuthorizationPolicy_ALLOW), "the action the create was given is taken back")
		sameSpec(Default, &current.Spec, &desired.Spec)
	})

	It("repeats the check when the object changes between its apply and the patch that removes foreign fields", func() {
		desired := unownedPolicy(namespace, "racing")
		created := desired.DeepCopy()
		Expect(k8s.Create(ctx, created)).To(Succeed())
		handEdit(created, `{"spec":{"action":"AUDIT"}}`)

		// The first JSON patch finds the object changed by someone else since the apply: it
		// must be refused, not applied to a version nobody checked, and the next try must
		// succeed.
		live, err := client.NewWithWatch(env.Config, client.Options{Scheme: k8s.Scheme()})
		Expect(err).NotTo(HaveOccurred())
		var patches, conflicts atomic.Int32
		c := interceptor.NewClient(live, interceptor.Funcs{
			Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
				if patch.Type() == types.JSONPatchType && patches.Add(1) == 1 {
					handEdit(created, `{"metadata":{"annotations":{"raced":"true"}}}`)
				}
				err := c.Patch(ctx, obj, patch, opts...)
				if apierrors.IsConflict(err) {
					conflicts.Add(1)
				}
				return err
			},
		})
		// A client without a cache: this Applier reads what it wrote at once.
		_, err = (&apply.Applier{Client: c}).Apply(ctx, []client.Object{desired})
		Expect(err).NotTo(HaveOccurred())
		Expect(patches.Load()).To(BeEquivalentTo(2), "one refused patch, one that went through")
		Expect(conflicts.Load()).To(BeEquivalentTo(1))

		current := &securityclientv1.AuthorizationPolicy{}
		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(desired), current)).To(Succeed())
		sameSpec(Default, &current.Spec, &desired.Spec)
		Expect(current.Annotations).To(HaveKeyWithValue("raced", "true"), "the other write is kept")
	})
})

// widenSpec adds to every version of the CRD's schema an optional string field of spec, as a
// newer release of the CRD could, and takes it out again after the test.
func widenSpec(crdName, field string) {
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	change := func(add bool) {
		ExpectWithOffset(2, retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKey{Name: crdName}, crd); err != nil {
				return err
			}
			versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
			for _, v := range versions {
				path := []string{"schema", "openAPIV3Schema", "properties", "spec", "properties", field}
				if add {
					_ = unstructured.SetNestedField(v.(map[string]any), map[string]any{"type": "string"}, path...)
				} else {
					unstructured.RemoveNestedField(v.(map[string]any), path...)
				}
			}
			_ = unstructured.SetNestedSlice(crd.Object, versions, "spec", "versions")
			return k8s.Update(ctx, crd)
		})).To(Succeed())
	}
	change(true)
	DeferCleanup(func() { change(false) })
}
