package model_test

import (
	"regexp"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/model"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// The shadowing check compares patterns symbolically. This test checks it against the
// matchers the translator generates: for every pair of small patterns, p covers q exactly
// when every request path in a representative sample of q's language is matched by p's
// VirtualService match. The sample
// instantiates {*} and {**} with values that distinguish every case of the grammar: a
// literal of the patterns, a segment no pattern names, empty and multi-segment rests, and a
// character outside the template set, which only /* matches.

// oracle is the matcher the VirtualService generated for the path uses, taken from the
// translator's output so that the two can never drift apart.
func oracle(t *testing.T, path string) func(string) bool {
	t.Helper()
	yes := true
	gw := apiv2.GatewayReference("istio-system/public")
	r := &apiv2.APIRule{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Namespace: "shop"},
		Spec: apiv2.APIRuleSpec{
			Hosts: []apiv2.Host{"api.example.com"}, Gateway: &gw, Service: &apiv2.Service{Name: "api", Port: 80},
			Rules: []apiv2.Rule{{Path: path, Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: &yes}},
		},
	}
	objects, err := translate.Translate(model.Input{
		APIRule: r,
		Gateway: &model.Gateway{Namespace: "istio-system", Name: "public", Hosts: []string{"*.example.com"}},
		Services: map[types.NamespacedName]model.Service{{Namespace: "shop", Name: "api"}: {
			Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api"}, Ports: []int32{80}}},
	})
	if err != nil || len(objects.VirtualServices) != 1 {
		t.Fatalf("%s: no route: %v", path, err)
	}
	uri := objects.VirtualServices[0].Spec.Http[1].Match[0].Uri // after the ambiguous-path refusal
	switch {
	case uri.GetPrefix() != "":
		return func(s string) bool { return strings.HasPrefix(s, uri.GetPrefix()) }
	case uri.GetRegex() != "":
		re := regexp.MustCompile(uri.GetRegex())
		return re.MatchString
	default:
		return func(s string) bool { return s == uri.GetExact() }
	}
}

// samples returns request paths matched by the pattern, one for each combination of values.
func samples(path string) []string {
	if path == model.AnyPath {
		return []string{"/", "/a", "/a/b", "/x y", "/a/"}
	}
	out := []string{""}
	for _, seg := range strings.Split(path[1:], "/") {
		var values []string
		switch seg {
		case model.OneSegment:
			values = []string{"a", "b", "zz"}
		case model.AnyRest:
			values = []string{"", "a", "zz", "a/b", "zz/a", "a/"}
		default:
			values = []string{seg}
		}
		var next []string
		for _, prefix := range out {
			for _, v := range values {
				next = append(next, prefix+"/"+v)
			}
		}
		out = next
	}
	return out
}

// patterns enumerates paths of up to three segments over the literals a and b, {*}, {**}
// (last only), the empty last segment, plus /* and /.
func patterns() []string {
	segs := []string{"a", "b", model.OneSegment}
	out := []string{model.AnyPath, "/"}
	var grow func(prefix string, depth int)
	grow = func(prefix string, depth int) {
		if depth == 3 {
			return
		}
		for _, s := range segs {
			p := prefix + "/" + s
			out = append(out, p, p+"/", p+"/"+model.AnyRest)
			grow(p, depth+1)
		}
	}
	out = append(out, "/"+model.AnyRest)
	grow("", 0)
	return out
}

func TestCoversAgreesWithTheMatchers(t *testing.T) {
	all := patterns()
	oracles := map[string]func(string) bool{}
	for _, p := range all {
		oracles[p] = oracle(t, p)
	}
	checked := 0
	for _, earlier := range all {
		p, err := model.ParsePath(earlier)
		if err != nil {
			t.Fatalf("%s: %v", earlier, err)
		}
		match := oracles[earlier]
		for _, later := range all {
			q, err := model.ParsePath(later)
			if err != nil {
				t.Fatalf("%s: %v", later, err)
			}
			want := true
			for _, s := range samples(later) {
				if !oracles[later](s) {
					t.Fatalf("sample %q is not in %s", s, later)
				}
				if !match(s) {
					want = false
					break
				}
			}
			if got := p.Covers(q); got != want {
				t.Errorf("%s covers %s = %v, the matchers say %v", earlier, later, got, want)
			}
			checked++
		}
	}
	if checked < 1000 {
		t.Errorf("only %d pairs checked", checked)
	}
}
