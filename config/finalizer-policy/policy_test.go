// Package finalizerpolicy_test holds the install's MutatingAdmissionPolicy
// (finalizer-policy.yaml) to the cases of the operator's finalizer webhook: installed as it is
// into a real kube-apiserver, the policy stores exactly the finalizers the webhook's patch
// yields, for each way a client may send them, and leaves updates alone.
package finalizerpolicy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
	"github.com/apirule-operator/apirule-operator/internal/testenv"
	"github.com/apirule-operator/apirule-operator/internal/webhook"
)

var k8s client.Client

const namespace = "policy"

func TestMain(m *testing.M) { testenv.Main(m, run) }

func run(m *testing.M) (int, error) {
	env, err := testenv.Start()
	if err != nil {
		return 0, err
	}
	defer func() { _ = env.Stop() }()
	if k8s, err = env.Client(); err != nil {
		return 0, err
	}
	ctx := context.Background()
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil {
		return 0, err
	}
	if err := testenv.InstallFinalizerPolicy(ctx, k8s); err != nil {
		return 0, err
	}
	if err := testenv.WaitForFinalizerAdmission(ctx, k8s, apiRule("probe", nil)); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func apiRule(name string, finalizers []string) *apiv2.APIRule {
	yes := true
	gateway := apiv2.GatewayReference("istio-system/gateway")
	return &apiv2.APIRule{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Finalizers: finalizers},
		Spec: apiv2.APIRuleSpec{
			Hosts:   []apiv2.Host{apiv2.Host(name + ".example.com")},
			Gateway: &gateway,
			Service: &apiv2.Service{Name: "backend", Port: 8080},
			Rules:   []apiv2.Rule{{Path: "/a", Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: &yes}},
		},
	}
}

// throughWebhook is what the operator's finalizer webhook makes of an APIRule sent with op:
// its answer's JSON patch applied to the object.
func throughWebhook(t *testing.T, op admissionv1.Operation, rule *apiv2.APIRule) []string {
	t.Helper()
	raw, err := json.Marshal(rule)
	if err != nil {
		t.Fatal(err)
	}
	resp := webhook.FinalizerDefaulter{}.Handle(context.Background(), admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op, Object: runtime.RawExtension{Raw: raw},
	}})
	if !resp.Allowed {
		t.Fatalf("the webhook refused: %+v", resp.Result)
	}
	if len(resp.Patches) > 0 {
		ops, err := json.Marshal(resp.Patches)
		if err != nil {
			t.Fatal(err)
		}
		patch, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		if raw, err = patch.Apply(raw); err != nil {
			t.Fatalf("the webhook's patch %s does not apply: %v", ops, err)
		}
	}
	var out apiv2.APIRule
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out.Finalizers
}

// Created through the API server with the policy installed, an APIRule stores the finalizers
// the webhook's patch yields: the operator's once, after the client's.
func TestPolicySetsTheFinalizersTheWebhookDoes(t *testing.T) {
	ctx := context.Background()
	other := "test.apirule.io/other"
	for i, c := range []struct {
		name      string
		sent      []string
		finalized []string
	}{
		{"no finalizers", nil, []string{ownership.Finalizer}},
		{"another finalizer", []string{other}, []string{other, ownership.Finalizer}},
		{"the operator's already", []string{ownership.Finalizer}, []string{ownership.Finalizer}},
		{"the operator's after another", []string{other, ownership.Finalizer}, []string{other, ownership.Finalizer}},
		{"the operator's before another", []string{ownership.Finalizer, other}, []string{ownership.Finalizer, other}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rule := apiRule(fmt.Sprintf("create-%d", i), c.sent)
			if got := throughWebhook(t, admissionv1.Create, rule.DeepCopy()); !slices.Equal(got, c.finalized) {
				t.Errorf("the webhook yields finalizers %v, want %v", got, c.finalized)
			}
			if err := k8s.Create(ctx, rule); err != nil {
				t.Fatal(err)
			}
			stored := &apiv2.APIRule{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(rule), stored); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(stored.Finalizers, c.finalized) {
				t.Errorf("the policy stored finalizers %v, want %v", stored.Finalizers, c.finalized)
			}
		})
	}
}

// Only creates get the finalizer: an update that removes it (the operator's own, once the
// children are gone) keeps it removed, through the policy as through the webhook.
func TestPolicyLeavesUpdatesAlone(t *testing.T) {
	ctx := context.Background()
	rule := apiRule("update", nil)
	if err := k8s.Create(ctx, rule); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rule.Finalizers, []string{ownership.Finalizer}) {
		t.Fatalf("created with finalizers %v, want the operator's", rule.Finalizers)
	}
	rule.Finalizers = nil
	if got := throughWebhook(t, admissionv1.Update, rule.DeepCopy()); len(got) != 0 {
		t.Errorf("the webhook sets finalizers %v on an update", got)
	}
	if err := k8s.Update(ctx, rule); err != nil {
		t.Fatal(err)
	}
	stored := &apiv2.APIRule{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(rule), stored); err != nil {
		t.Fatal(err)
	}
	if len(stored.Finalizers) != 0 {
		t.Errorf("the policy set finalizers %v on an update", stored.Finalizers)
	}
}
