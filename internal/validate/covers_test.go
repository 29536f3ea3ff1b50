package validate

import (
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
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
	r := apiRule([]apiv2.Host{"api.example.com"}, rule(path, "GET"))
	out := translate.Translate(translate.Input{
		APIRule: r,
		Gateway: &translate.Gateway{Namespace: "istio-system", Name: "public", Hosts: []string{"*.example.com"}},
		Services: map[types.NamespacedName]translate.Service{{Namespace: "shop", Name: "api"}: {
			Namespace: "shop", Name: "api", Selector: map[string]string{"app": "api"}, Ports: []int32{80}}},
	})
	if len(out.Objects.VirtualServices) != 1 {
		t.Fatalf("%s: no route: %v", path, out.Findings)
	}
	uri := out.Objects.VirtualServices[0].Spec.Http[0].Match[0].Uri
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
	if path == anyPath {
		return []string{"/", "/a", "/a/b", "/x y", "/a/"}
	}
	out := []string{""}
	for _, seg := range strings.Split(path[1:], "/") {
		var values []string
		switch seg {
		case oneSegment:
			values = []string{"a", "b", "zz"}
		case anyRest:
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
	segs := []string{"a", "b", oneSegment}
	out := []string{anyPath, "/"}
	var grow func(prefix string, depth int)
	grow = func(prefix string, depth int) {
		if depth == 3 {
			return
		}
		for _, s := range segs {
			p := prefix + "/" + s
			out = append(out, p, p+"/", p+"/"+anyRest)
			grow(p, depth+1)
		}
	}
	out = append(out, "/"+anyRest)
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
		p, err := parsePath(earlier)
		if err != nil {
			t.Fatalf("%s: %v", earlier, err)
		}
		match := oracles[earlier]
		for _, later := range all {
			q, err := parsePath(later)
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
			if got := p.covers(q); got != want {
				t.Errorf("%s covers %s = %v, the matchers say %v", earlier, later, got, want)
			}
			checked++
		}
	}
	if checked < 1000 {
		t.Errorf("only %d pairs checked", checked)
	}
}
