package apply_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/kubescheme"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
)

// The operator's creates against a real API server: a namespaced Istio kind, a core kind and a
// cluster-scoped one reach their collections under the operator's field manager, the reply is
// what was stored, and a second create is the API server's AlreadyExists, which the applier
// reads as "the cache was behind". Through an Applier, a new object costs one create, and one
// that exists already is written by apply instead.
func TestTheRESTCreatorPostsToTheKindsCollection(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := context.Background()
	scheme, err := kubescheme.New()
	if err != nil {
		t.Fatal(err)
	}
	httpClient, err := rest.HTTPClientFor(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	mapper, err := apiutil.NewDynamicRESTMapper(env.Config, httpClient)
	if err != nil {
		t.Fatal(err)
	}
	creator, err := apply.NewRESTCreator(env.Config, httpClient, mapper, scheme)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}); err != nil {
		t.Fatal(err)
	}

	policy := &securityclientv1.AuthorizationPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "p", Labels: map[string]string{"team": "a"}}}
	policy.Spec.Action = 1 // DENY
	policy.SetGroupVersionKind(securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy"))
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "s"}, Data: map[string][]byte{"ca.crt": []byte("x")}}
	secret.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	namespace := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "cluster-scoped"}}
	namespace.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	for _, obj := range []client.Object{policy, secret, namespace} {
		kind := obj.GetObjectKind().GroupVersionKind()
		body, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		reply, err := creator.Create(ctx, kind, obj.GetNamespace(), body)
		if err != nil {
			t.Fatalf("%s: %v", kind.Kind, err)
		}
		var stored metav1.PartialObjectMetadata
		if err := json.Unmarshal(reply, &stored); err != nil || stored.UID == "" || stored.Name != obj.GetName() {
			t.Errorf("%s: the reply is not the stored object (%v): %s", kind.Kind, err, reply)
		}
		if len(stored.ManagedFields) != 1 || stored.ManagedFields[0].Manager != ownership.FieldManager {
			t.Errorf("%s: managed by %v, want %s alone", kind.Kind, stored.ManagedFields, ownership.FieldManager)
		}
		_, err = creator.Create(ctx, kind, obj.GetNamespace(), body)
		var status apierrors.APIStatus
		if !apierrors.IsAlreadyExists(err) || !errors.As(err, &status) || status.Status().Details == nil || status.Status().Details.Name != obj.GetName() {
			t.Errorf("%s: a second create: %v, want the API server's AlreadyExists naming the object", kind.Kind, err)
		}
	}
	// A refused create says why, as the API server put it: the field and what is wrong.
	invalid := secret.DeepCopy()
	invalid.Name = "Not_A_Name"
	body, err := json.Marshal(invalid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := creator.Create(ctx, invalid.GroupVersionKind(), "team", body); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.name") {
		t.Errorf("an invalid name: %v, want the API server's Invalid naming metadata.name", err)
	}
	if _, err := creator.Create(ctx, invalid.GroupVersionKind(), "", body); err == nil || !strings.Contains(err.Error(), "namespace") {
		t.Errorf("a namespaced kind without a namespace: %v, want an error that says so", err)
	}
	got := &securityclientv1.AuthorizationPolicy{}
	if err := c.Get(ctx, client.ObjectKeyFromObject(policy), got); err != nil || got.Spec.Action != policy.Spec.Action || got.Labels["team"] != "a" {
		t.Errorf("the stored policy is not the one sent: %v, %v", got, err)
	}

	// Through an Applier whose cache is behind: it never finds the object. A new one costs
	// one create; for one that exists already the create is refused and an apply makes it
	// desired.
	counter := testenv.NewRequestCounter()
	countedCfg := rest.CopyConfig(env.Config)
	countedCfg.WrapTransport = counter.Wrap
	countedHTTP, err := rest.HTTPClientFor(countedCfg)
	if err != nil {
		t.Fatal(err)
	}
	countedCreator, err := apply.NewRESTCreator(countedCfg, countedHTTP, mapper, scheme)
	if err != nil {
		t.Fatal(err)
	}
	counted, err := client.NewWithWatch(countedCfg, client.Options{Scheme: scheme, HTTPClient: countedHTTP})
	if err != nil {
		t.Fatal(err)
	}
	behind := interceptor.NewClient(counted, interceptor.Funcs{
		Get: func(_ context.Context, _ client.WithWatch, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "authorizationpolicies"}, key.Name)
		},
	})
	applier := &apply.Applier{Client: behind, Creator: countedCreator}
	fresh := policy.DeepCopy()
	fresh.Name, fresh.ResourceVersion = "fresh", ""
	if _, err := applier.Apply(ctx, []client.Object{fresh}); err != nil {
		t.Fatal(err)
	}
	if counts, writes := counter.Snapshot(); writes != 1 || counts["POST authorizationpolicies"] != 1 {
		t.Errorf("a new object: %v, want one create", counts)
	}
	changed := policy.DeepCopy()
	changed.ResourceVersion = ""
	changed.Spec.Action = 0 // ALLOW
	changed.Labels = map[string]string{"team": "b"}
	if _, err := applier.Apply(ctx, []client.Object{changed}); err != nil {
		t.Fatal(err)
	}
	if counts, _ := counter.Snapshot(); counts["POST authorizationpolicies"] != 2 || counts["PATCH authorizationpolicies"] == 0 {
		t.Errorf("an object that existed: %v, want a refused create, then a patch", counts)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(policy), got); err != nil || got.Spec.Action != changed.Spec.Action || got.Labels["team"] != "b" {
		t.Errorf("the existing policy was not made desired: %v, %v", got, err)
	}
}
