package webhook_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/render"
)

// apirulectl refuses exactly what the API server and this webhook refuse: for every refusal
// of this suite (and a schema refusal, which the server makes before the webhook), the same
// APIRules given to apirulectl in the order they were applied give the refused APIRule
// errors on the same fields, and the accepted ones none.
func TestOfflineValidationAgreesWithAdmission(t *testing.T) {
	yes := true
	cases := map[string]struct {
		earlier []*apiv2.APIRule // created first, accepted
		refused *apiv2.APIRule
	}{
		"shadowed rule": {refused: apiRule("shadowed", "shadowed-off.example.com",
			noAuth("/health", "GET"), jwt("/api/{**}", "https://idp.example.com/jwks", "GET"), jwt("/api/users", "https://idp.example.com/jwks", "GET"))},
		"noAuth opens a protected rule": {refused: apiRule("opened", "opened-off.example.com",
			noAuth("/public/{**}", "GET"), jwt("/public/admin", "https://idp.example.com/jwks", "GET", "POST"))},
		"host claimed by another APIRule": {
			earlier: []*apiv2.APIRule{apiRule("first", "claimed-off.example.com", noAuth("/a", "GET"))},
			refused: apiRule("second", "claimed-off.example.com", noAuth("/b", "GET")),
		},
		"issuer configured differently": {refused: apiRule("issuers", "issuers-off.example.com",
			jwt("/a", "https://idp.example.com/jwks", "GET"), jwt("/b", "https://idp.example.com/other-jwks", "GET"))},
		"host Istio refuses": {refused: apiRule("numeric", "api.example.456", noAuth("/a", "GET"))},
		"no gateway and no default": {refused: func() *apiv2.APIRule {
			r := apiRule("nogateway", "nogateway-off.example.com", noAuth("/a", "GET"))
			r.Spec.Gateway = nil
			return r
		}()},
		"issuer configured differently on a shared workload": {
			earlier: []*apiv2.APIRule{apiRule("headers", "headers-off.example.com", jwt("/a", "https://idp.example.com/jwks", "GET"))},
			refused: func() *apiv2.APIRule {
				r := apiRule("cookies", "cookies-off.example.com", jwt("/b", "https://idp.example.com/jwks", "GET"))
				r.Spec.Rules[0].JWT.Authentications[0].FromCookies = []string{"session"}
				return r
			}(),
		},
		"backend in another namespace": {refused: func() *apiv2.APIRule {
			r := apiRule("elsewhere", "elsewhere-off.example.com", noAuth("/a", "GET"))
			other := "default"
			r.Spec.Service.Namespace = &other
			return r
		}()},
		"two strategies (schema)": {refused: apiRule("both", "both-off.example.com", apiv2.Rule{
			Path: "/a", Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: &yes,
			JWT: &apiv2.JWTConfig{Authentications: []apiv2.JWTAuthentication{{Issuer: "https://i", JWKSURI: ptr("https://i/k")}}},
		})},
	}
	ctx := context.Background()
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			ns := namespace(t)
			// The backend every case's APIRules share, in the cluster and in the offline input.
			backend := &corev1.Service{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "backend"},
				Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": "backend"}, Ports: []corev1.ServicePort{{Port: 8080}}},
			}
			if err := k8s.Create(ctx, backend.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			var applied []*apiv2.APIRule
			for _, r := range c.earlier {
				r = in(ns, r.DeepCopy())
				if err := k8s.Create(ctx, r); err != nil {
					t.Fatal(err)
				}
				applied = append(applied, r)
			}
			refused := in(ns, c.refused.DeepCopy())
			serverFields := refusedFields(t, ctx, refused)

			service, err := yaml.Marshal(backend)
			if err != nil {
				t.Fatal(err)
			}
			input := append(append(manifests(t, append(applied, refused)...), "---\n"...), service...)
			bundle, err := render.Load(bytes.NewReader(input))
			if err != nil {
				t.Fatal(err)
			}
			results, err := render.Render(bundle, render.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				var fields []string
				for _, f := range r.Findings.Errors() {
					if f.Field != nil {
						fields = append(fields, f.Field.String())
					}
				}
				slices.Sort(fields)
				fields = slices.Compact(fields)
				switch {
				case r.APIRule.Name == refused.Name:
					if !r.Refused || !slices.Equal(fields, serverFields) {
						t.Errorf("offline: refused %v on %v; the API server refused on %v", r.Refused, fields, serverFields)
					}
				case r.Refused:
					t.Errorf("offline refused %s, which the API server accepted: %v", r.APIRule.Name, fields)
				}
			}
		})
	}
}

// dryRunUntilRefused creates the APIRule as a dry run until it is refused or 10 s have
// passed: the webhook reads other APIRules from the operator's cache, which sees an APIRule
// created just before a moment later.
func dryRunUntilRefused(ctx context.Context, r *apiv2.APIRule) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := k8s.Create(ctx, r.DeepCopy(), client.DryRunAll)
		if err != nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// refusedFields returns the fields of the causes of the API server's refusal of the APIRule.
func refusedFields(t *testing.T, ctx context.Context, r *apiv2.APIRule) []string {
	t.Helper()
	err := dryRunUntilRefused(ctx, r)
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		t.Fatalf("the API server did not refuse %s: %v", r.Name, err)
	}
	var fields []string
	for _, cause := range status.Status().Details.Causes {
		if cause.Field != "" {
			fields = append(fields, cause.Field)
		}
	}
	slices.Sort(fields)
	return slices.Compact(fields)
}

// manifests writes APIRules as apirulectl reads them.
func manifests(t *testing.T, rules ...*apiv2.APIRule) []byte {
	t.Helper()
	var out bytes.Buffer
	for _, r := range rules {
		r = r.DeepCopy()
		r.APIVersion, r.Kind = apiv2.GroupVersion.String(), "APIRule"
		r.ResourceVersion, r.UID, r.Generation, r.ManagedFields, r.CreationTimestamp = "", "", 0, nil, metav1.Time{}
		raw, err := yaml.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out.WriteString("---\n")
		out.Write(raw)
	}
	return out.Bytes()
}

func ptr[T any](v T) *T { return &v }
