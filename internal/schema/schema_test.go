package schema_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/schema"
)

type object = map[string]any

// valid is a valid noAuth APIRule as a YAML decoder gives it: numbers are float64.
func valid() object {
	return object{
		"apiVersion": "gateway.apirule.io/v2",
		"kind":       "APIRule",
		"metadata":   object{"name": "httpbin", "namespace": "shop"},
		"spec": object{
			"hosts":   []any{"httpbin.example.com"},
			"gateway": "istio-system/public",
			"service": object{"name": "httpbin", "port": float64(8000)},
			"rules": []any{
				object{"path": "/headers", "methods": []any{"GET"}, "noAuth": true},
			},
		},
	}
}

func spec(o object) object  { return o["spec"].(object) }
func rule0(o object) object { return spec(o)["rules"].([]any)[0].(object) }

// cause is an error as the API server reports it: the field and the message of the cause.
type cause struct{ field, message string }

func causes(errs field.ErrorList) []cause {
	var out []cause
	for _, e := range errs {
		out = append(out, cause{e.Field, e.ErrorBody()})
	}
	return out
}

const strategyMessage = "set exactly one access strategy per rule: noAuth: true, jwt or extAuth"

// notChecked is the cause the server adds when schema errors keep it from running the CEL rules.
var notChecked = cause{"<nil>", "Invalid value: null: some validation rules were not checked because the object was invalid; correct the existing errors to complete validation"}

func TestValidAPIRulePasses(t *testing.T) {
	in := valid()
	out, errs := schema.Validate(in)
	if len(errs) != 0 {
		t.Fatalf("a valid APIRule is refused: %v", errs)
	}
	// The defaulted object decodes strictly into the Go type, with the integer port.
	raw, err := yaml.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	rule := &apiv2.APIRule{}
	if err := yaml.UnmarshalStrict(raw, rule); err != nil {
		t.Fatalf("the validated object does not decode strictly: %v\n%s", err, raw)
	}
	if rule.Name != "httpbin" || rule.Namespace != "shop" || rule.Spec.Service == nil || rule.Spec.Service.Port != 8000 {
		t.Errorf("the validated object lost its content: %s", raw)
	}
	if !reflect.DeepEqual(in, valid()) {
		t.Errorf("Validate modified its input: %v", in)
	}
}

// TestRefusals checks the inputs that passed offline before this package, each with the
// causes the API server gives: the tests/crd suite compares every case of its table with a
// real API server; these run without one.
func TestRefusals(t *testing.T) {
	for _, c := range []struct {
		name   string
		mutate func(o object)
		want   []cause
	}{
		{"two strategies in one rule", func(o object) {
			rule0(o)["jwt"] = object{"authentications": []any{object{"issuer": "https://idp.example.com", "jwksUri": "https://idp.example.com/jwks"}}}
		}, []cause{{"spec.rules[0]", "Invalid value: " + strategyMessage}}},
		{"no strategy", func(o object) { delete(rule0(o), "noAuth") },
			[]cause{{"spec.rules[0]", "Invalid value: " + strategyMessage}}},
		{"noAuth: false", func(o object) { rule0(o)["noAuth"] = false },
			[]cause{{"spec.rules[0]", "Invalid value: " + strategyMessage}}},
		// Enum errors block the CEL rules, as on the server.
		{"methods: [get, FETCH]", func(o object) { rule0(o)["methods"] = []any{"get", "FETCH"} }, []cause{
			{"spec.rules[0].methods[0]", `Unsupported value: "get": supported values: "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"`},
			{"spec.rules[0].methods[1]", `Unsupported value: "FETCH": supported values: "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"`},
			notChecked,
		}},
		{"CIDR with host bits", func(o object) { spec(o)["ipRestriction"] = object{"allow": []any{"203.0.113.7/24"}} }, []cause{
			{"spec.ipRestriction.allow[0]", `Invalid value: "203.0.113.7/24": CIDR range has bits set after its prefix length; write the network address, such as 203.0.113.0/24 instead of 203.0.113.7/24`},
		}},
		{"prefix length 33", func(o object) { spec(o)["ipRestriction"] = object{"deny": []any{"10.0.0.0/33"}} }, []cause{
			{"spec.ipRestriction.deny[0]", `Invalid value: "10.0.0.0/33": must be an IPv4 or IPv6 address or CIDR range, such as 203.0.113.0/24 or 2001:db8::/32`},
		}},
		{"internalTraffic allow with fromNamespaces", func(o object) {
			spec(o)["internalTraffic"] = object{"allow": true, "fromNamespaces": []any{"monitoring"}}
		}, []cause{{"spec.internalTraffic", "Invalid value: allow: true already admits every in-mesh caller; remove fromNamespaces and fromServiceAccounts, or set allow to false to admit only them"}}},
		{"name longer than 63", func(o object) { o["metadata"].(object)["name"] = strings.Repeat("a", 64) }, []cause{
			{"<nil>", "Invalid value: metadata.name must be at most 63 characters: it is used as a label value on the generated objects"},
		}},
		{"name not a DNS subdomain", func(o object) { o["metadata"].(object)["name"] = "Httpbin" }, []cause{
			{"metadata.name", `Invalid value: "Httpbin": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`},
		}},
		{"port as a string", func(o object) { spec(o)["service"].(object)["port"] = "8000" }, []cause{
			{"spec.service.port", `Invalid value: "string": spec.service.port in body must be of type integer: "string"`},
			notChecked,
		}},
		{"port as a fraction", func(o object) { spec(o)["service"].(object)["port"] = 80.5 }, []cause{
			{"spec.service.port", `Invalid value: "float64": spec.service.port in body must be of type int32: "float64"`},
			{"<nil>", `Invalid value: "": Checked value must be of type integer with format int32 in spec.service.port`},
			notChecked,
		}},
		{"wrong kind", func(o object) { o["kind"] = "APIRules" }, []cause{{"kind", `Invalid value: "APIRules": must be APIRule`}}},
		{"wrong version", func(o object) { o["apiVersion"] = "gateway.apirule.io/v1" }, []cause{{"apiVersion", `Invalid value: "gateway.apirule.io/v1": must be gateway.apirule.io/v2`}}},
		// Unknown fields refuse the object before any other check, as with fieldValidation=Strict.
		{"unknown fields", func(o object) {
			spec(o)["host"] = "x"
			rule0(o)["noAuth"] = false
			rule0(o)["method"] = "GET"
			o["metadata"].(object)["label"] = "x"
		}, []cause{
			{"metadata.label", "Forbidden: unknown field"},
			{"spec.host", "Forbidden: unknown field"},
			{"spec.rules[0].method", "Forbidden: unknown field"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := valid()
			c.mutate(o)
			_, errs := schema.Validate(o)
			if got := causes(errs); !reflect.DeepEqual(got, c.want) {
				t.Errorf("causes:\n got %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestCreatePreparation(t *testing.T) {
	o := valid()
	delete(o["metadata"].(object), "namespace")
	// status is reset by the server on create: not validated, not kept.
	o["status"] = object{"state": "Nonsense"}
	out, errs := schema.Validate(o)
	if len(errs) != 0 {
		t.Fatalf("refused: %v", errs)
	}
	if _, ok := out["status"]; ok {
		t.Errorf("status was kept: %v", out["status"])
	}
	if ns := out["metadata"].(object)["namespace"]; ns != schema.DefaultNamespace {
		t.Errorf("namespace = %v, want %s", ns, schema.DefaultNamespace)
	}
}

func TestGenerateName(t *testing.T) {
	o := valid()
	meta := o["metadata"].(object)
	delete(meta, "name")
	// The server truncates the base so that the generated name fits the 63 characters of the
	// CEL rule; a name of the same length would be refused.
	meta["generateName"] = strings.Repeat("a", 70)
	out, errs := schema.Validate(o)
	if len(errs) != 0 {
		t.Fatalf("refused: %v", errs)
	}
	if _, ok := out["metadata"].(object)["name"]; ok {
		t.Errorf("the returned object has a name the server would pick differently: %v", out["metadata"])
	}
	meta["generateName"] = "Bad-"
	_, errs = schema.Validate(o)
	if len(errs) == 0 || errs[0].Field != "metadata.generateName" {
		t.Errorf("an invalid generateName passes: %v", errs)
	}
	delete(meta, "generateName")
	_, errs = schema.Validate(o)
	if got := causes(errs); len(got) == 0 || got[0] != (cause{"metadata.name", "Required value: name or generateName is required"}) {
		t.Errorf("no name: %q", got)
	}
}

// TestDecode: integers are int64 and floats float64, as on the server; duplicate keys are
// refused as by the server's strict decoding.
func TestDecode(t *testing.T) {
	o, err := schema.Decode([]byte("spec:\n  port: 8000\n  ratio: 0.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if port := o["spec"].(object)["port"]; port != int64(8000) {
		t.Errorf("port = %#v, want int64(8000)", port)
	}
	if ratio := o["spec"].(object)["ratio"]; ratio != 0.5 {
		t.Errorf("ratio = %#v, want 0.5", ratio)
	}
	if _, err := schema.Decode([]byte("a: 1\na: 2\n")); err == nil {
		t.Error("a duplicate key is accepted")
	}
}

// TestSamplesPass: every sample APIRule, decoded as apirulectl reads it, passes.
func TestSamplesPass(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "gateway_v2_apirule_*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("samples: %v %v", files, err)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		o, err := schema.Decode(raw)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if _, errs := schema.Validate(o); len(errs) != 0 {
			t.Errorf("%s is refused: %v", file, errs)
		}
	}
}

// manyRules is an APIRule at the schema's limits: 128 rules, each with 9 methods, JWT with
// headers, claims and 16 hosts, so that every CEL rule runs many times.
func manyRules() object {
	o := valid()
	var hosts []any
	for i := 0; i < 16; i++ {
		hosts = append(hosts, fmt.Sprintf("h%d.example.com", i))
	}
	spec(o)["hosts"] = hosts
	spec(o)["ipRestriction"] = object{"allow": []any{"203.0.113.0/24", "2001:db8::/32"}, "deny": []any{"10.0.0.0/8"}}
	var rules []any
	for i := 0; i < 128; i++ {
		headers := object{}
		for j := 0; j < 32; j++ {
			headers[fmt.Sprintf("X-H%d", j)] = "v"
		}
		rules = append(rules, object{
			"path":    fmt.Sprintf("/api/v%d/{*}/items/{**}", i),
			"methods": []any{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"},
			"request": object{"headers": headers},
			"jwt": object{
				"authentications": []any{object{"issuer": "https://idp.example.com", "jwksUri": "https://idp.example.com/jwks",
					"fromHeaders": []any{object{"name": "X-Token", "prefix": "Bearer "}}}},
				"authorizations": []any{object{"requiredScopes": []any{"read", "write"}, "audiences": []any{"shop"},
					"claims": object{"tenant": []any{"a", "b"}, "group": []any{"c"}}}},
				"outputClaimToHeaders": []any{object{"header": "X-User", "claim": "sub"}},
			},
			"ipRestriction": object{"deny": []any{"198.51.100.0/24"}},
		})
	}
	spec(o)["rules"] = rules
	return o
}

func TestManyRulesFitTheCostBudget(t *testing.T) {
	if _, errs := schema.Validate(manyRules()); len(errs) != 0 {
		t.Fatalf("an APIRule at the limits is refused: %v", errs)
	}
}

func BenchmarkValidate128Rules(b *testing.B) {
	o := manyRules()
	schema.Validate(o) // compile outside the measurement
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, errs := schema.Validate(o); len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}

// TestSameKubernetesMinorAsEnvtest: Validate is the API server code of the k8s.io modules in
// go.mod (v0.N.x is Kubernetes 1.N), and tests/crd proves it equal to a kube-apiserver of
// ENVTEST_K8S_VERSION. CEL libraries, cost limits and messages change between minors, so a
// bump of one without the other would make that proof about another server.
func TestSameKubernetesMinorAsEnvtest(t *testing.T) {
	minor := func(file, prefix, major string) string {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("..", "..", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(raw), "\n") {
			fields := strings.Fields(line)
			if len(fields) >= 2 && fields[0] == prefix {
				v := strings.Split(strings.TrimPrefix(fields[len(fields)-1], major), ".")
				if len(v) < 2 {
					break
				}
				return v[0]
			}
		}
		t.Fatalf("%s: no %s version", file, prefix)
		return ""
	}
	envtest := minor("Makefile", "ENVTEST_K8S_VERSION", "v1.")
	for _, module := range []string{"k8s.io/apiextensions-apiserver", "k8s.io/apiserver"} {
		if got := minor("go.mod", module, "v0."); got != envtest {
			t.Errorf("go.mod has %s v0.%s.x, the envtest control plane is Kubernetes 1.%s", module, got, envtest)
		}
	}
}

func BenchmarkValidateOneRule(b *testing.B) {
	o := valid()
	schema.Validate(o) // compile outside the measurement
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, errs := schema.Validate(o); len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}
