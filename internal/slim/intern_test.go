package slim

import (
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/fixtures"
)

// decodedAPIRule is APIRule i as the cache receives it: decoded from the API server's JSON,
// every string a copy of its own.
func decodedAPIRule(t testing.TB, i int) *apiv2.APIRule {
	t.Helper()
	name := fmt.Sprintf("orders-%d", i)
	at := metav1.Date(2026, 12, 1, 12, 0, 0, 0, metav1.Now().Location())
	rule := fixtures.WorkloadAPIRule("team", name, "istio-system/public")
	rule.TypeMeta = metav1.TypeMeta{APIVersion: "gateway.apirule.io/v2", Kind: "APIRule"}
	rule.UID = "6c5b1c2d-3e4f-4b43-9a35-0d7c0c8e8d0a"
	rule.ResourceVersion = fmt.Sprint(1000 + i)
	rule.Generation = 1
	rule.Labels = map[string]string{"app.kubernetes.io/part-of": "shop"}
	rule.Finalizers = []string{"gateway.apirule.io/children"}
	rule.Status = apiv2.APIRuleStatus{State: "Ready", Description: "The APIRule is served as specified.", ObservedGeneration: 1}
	for _, c := range []string{"Accepted", "ResolvedRefs", "Programmed", "Ready"} {
		rule.Status.Conditions = append(rule.Status.Conditions, metav1.Condition{Type: c, Status: metav1.ConditionTrue, ObservedGeneration: 1,
			LastTransitionTime: at, Reason: c, Message: "All Istio objects are applied."})
	}
	for _, kind := range []string{"VirtualService", "AuthorizationPolicy", "RequestAuthentication"} {
		rule.Status.Objects = append(rule.Status.Objects, apiv2.GeneratedObject{Kind: kind, Namespace: "team", Name: name + "-5f2a9c"})
	}
	raw, err := json.Marshal(rule)
	if err != nil {
		t.Fatal(err)
	}
	decoded := &apiv2.APIRule{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(raw, decoded); err != nil {
		t.Fatal(err)
	}
	return decoded
}

func sameMemory(a, b string) bool { return unsafe.StringData(a) == unsafe.StringData(b) }

// Two APIRules through the cache's default transform share the strings they have in common,
// from their metadata to their spec and status, and keep their own where they differ; neither
// reads any different.
func TestDefaultSharesTheStringsAPIRulesHaveInCommon(t *testing.T) {
	a, b := decodedAPIRule(t, 1), decodedAPIRule(t, 2)
	wantA, wantB := a.DeepCopy(), b.DeepCopy()
	if sameMemory(a.Namespace, b.Namespace) {
		t.Fatal("decoded APIRules already share their namespace: the test shows nothing")
	}
	for _, rule := range []*apiv2.APIRule{a, b} {
		if _, err := Default(rule); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff(wantA, a); diff != "" {
		t.Errorf("the transform changed what an APIRule reads (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantB, b); diff != "" {
		t.Errorf("the transform changed what an APIRule reads (-want +got):\n%s", diff)
	}
	labelKey := func(r *apiv2.APIRule) string {
		for k := range r.Labels {
			return k
		}
		return ""
	}
	shared := map[string][2]string{
		"namespace":                      {a.Namespace, b.Namespace},
		"label key":                      {labelKey(a), labelKey(b)},
		"label value":                    {a.Labels["app.kubernetes.io/part-of"], b.Labels["app.kubernetes.io/part-of"]},
		"finalizer":                      {a.Finalizers[0], b.Finalizers[0]},
		"gateway":                        {string(*a.Spec.Gateway), string(*b.Spec.Gateway)},
		"a rule's path":                  {a.Spec.Rules[1].Path, b.Spec.Rules[1].Path},
		"a method":                       {string(a.Spec.Rules[1].Methods[1]), string(b.Spec.Rules[1].Methods[1])},
		"an issuer":                      {a.Spec.Rules[1].JWT.Authentications[0].Issuer, b.Spec.Rules[1].JWT.Authentications[0].Issuer},
		"a JWKS URI (through a pointer)": {*a.Spec.Rules[1].JWT.Authentications[0].JWKSURI, *b.Spec.Rules[1].JWT.Authentications[0].JWKSURI},
		"the state":                      {string(a.Status.State), string(b.Status.State)},
		"a condition's message":          {a.Status.Conditions[2].Message, b.Status.Conditions[2].Message},
		"a generated object's kind":      {a.Status.Objects[1].Kind, b.Status.Objects[1].Kind},
	}
	for what, pair := range shared {
		if !sameMemory(pair[0], pair[1]) {
			t.Errorf("%s %q is kept twice", what, pair[0])
		}
	}
	if sameMemory(a.Spec.Service.Name, b.Spec.Service.Name) || a.Spec.Service.Name == b.Spec.Service.Name {
		t.Errorf("the backend names %q and %q became one", a.Spec.Service.Name, b.Spec.Service.Name)
	}
}

// The table keeps two generations at most, and a string that keeps coming back stays shared
// across them.
func TestStringTableStaysBoundedAndKeepsWhatComesBack(t *testing.T) {
	table := newStringTable(4)
	first := table.intern(string([]byte("team")))
	for i := range 100 {
		table.intern(fmt.Sprintf("name-%d", i))
		if again := table.intern(string([]byte("team"))); !sameMemory(again, first) {
			t.Fatalf("after %d other strings, the shared string is a new copy", i+1)
		}
	}
	for i := range 100 {
		table.internLabels(map[string]string{"app": fmt.Sprintf("app-%d", i)})
	}
	if held := len(table.current) + len(table.previous); held > 8 {
		t.Errorf("the table holds %d strings, more than two generations of 4", held)
	}
	if held := len(table.labels) + len(table.previousLabels); held > 8 {
		t.Errorf("the table holds %d label sets, more than two generations of 4", held)
	}
	long := string(make([]byte, internedMax+1))
	if kept := table.intern(long); !sameMemory(kept, long) {
		t.Error("a string longer than internedMax was copied into the table")
	}
}

// What a decoded APIRule costs in the cache with and without its shared strings kept once:
// `go test ./internal/slim -run NONE -bench CachedAPIRule -benchtime 2000x` reports the heap
// each one keeps (retained-B/APIRule).
func BenchmarkCachedAPIRule(b *testing.B) {
	for _, shared := range []bool{false, true} {
		b.Run(fmt.Sprintf("shared-strings=%t", shared), func(b *testing.B) {
			rules := make([]*apiv2.APIRule, b.N)
			before := retained()
			for i := range rules {
				rules[i] = decodedAPIRule(b, i)
				if shared {
					if _, err := Default(rules[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
			after := retained()
			b.ReportMetric(float64(int64(after)-int64(before))/float64(b.N), "retained-B/APIRule")
			runtime.KeepAlive(rules)
		})
	}
}

func retained() uint64 {
	runtime.GC()
	var stats runtime.MemStats
	runtime.ReadMemStats(&stats)
	return stats.HeapAlloc
}

// Equal label sets are kept once, whichever objects carry them: the children of one APIRule,
// and a workload's Pod and its Service's selector; a different set stays apart, and the map a
// transform received is never the one it keeps.
func TestEqualLabelSetsAreKeptOnce(t *testing.T) {
	owner := func() map[string]string {
		return map[string]string{"apirule.io/name": "orders", "apirule.io/namespace": "team", "app.kubernetes.io/managed-by": "apirule-operator"}
	}
	route, policy := owner(), owner()
	a, b := slimMeta(metav1.ObjectMeta{Name: "orders-route", Labels: route}), slimMeta(metav1.ObjectMeta{Name: "orders-policy", Labels: policy})
	if !sameMap(a.Labels, b.Labels) {
		t.Error("two children of one APIRule keep two label sets")
	}
	if sameMap(a.Labels, route) || sameMap(b.Labels, policy) {
		t.Error("the cache keeps a map the decoder made, which the transform does not own")
	}
	if !cmp.Equal(a.Labels, owner()) {
		t.Errorf("the kept labels %v differ from the object's", a.Labels)
	}
	other := owner()
	other["apirule.io/name"] = "payments"
	if c := slimMeta(metav1.ObjectMeta{Labels: other}); sameMap(c.Labels, a.Labels) || c.Labels["apirule.io/name"] != "payments" {
		t.Errorf("another APIRule's children share the labels %v", c.Labels)
	}

	pod, err := Pod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "orders-0", Labels: map[string]string{"app": "orders-api"}}})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := Service(&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "orders"}, Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "orders-api"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !sameMap(pod.(*corev1.Pod).Labels, svc.(*corev1.Service).Spec.Selector) {
		t.Error("a Pod's labels and the selector of its Service, equal, are kept twice")
	}
}

func sameMap(a, b map[string]string) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// Label sets whose pairs run into each other when written one after the other are not taken
// for one: annotation values may hold any byte, a mark among them.
func TestLabelSetsThatReadAlikeStayApart(t *testing.T) {
	table := newStringTable(16)
	nul := table.internLabels(map[string]string{"a": "b\x00c\x00d"})
	two := table.internLabels(map[string]string{"a": "b", "c": "d"})
	if sameMap(nul, two) || len(two) != 2 || two["c"] != "d" {
		t.Errorf("two different sets were kept as one: %q and %q", nul, two)
	}
	glued := table.internLabels(map[string]string{"ab": "c"})
	split := table.internLabels(map[string]string{"a": "bc"})
	if sameMap(glued, split) {
		t.Errorf("%q and %q were kept as one", glued, split)
	}
	long := map[string]string{"k": string(make([]byte, sharedLabelsMax))}
	if kept := table.internLabels(long); len(table.labels) > 4 || !cmp.Equal(kept, long) {
		t.Errorf("a set longer than sharedLabelsMax entered the table (%d sets) or changed", len(table.labels))
	}
}
