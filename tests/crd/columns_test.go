package crd_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
)

// What kubectl get shows is the API server's Table of the CRD's printer columns: the
// columns and their cells are checked as the server renders them.
var _ = Describe("kubectl get apirules", func() {
	It("shows readiness, the reason and the hosts as served, and more with -o wide", func() {
		gw := apiv2.GatewayReference("istio-system/public")
		yes := true
		rule := &apiv2.APIRule{
			ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "columns"},
			Spec: apiv2.APIRuleSpec{
				Hosts: []apiv2.Host{"httpbin"}, Gateway: &gw, Service: &apiv2.Service{Name: "httpbin", Port: 8000},
				Rules: []apiv2.Rule{{Path: "/*", Methods: []apiv2.HTTPMethod{"GET"}, NoAuth: &yes}},
			},
		}
		Expect(k8s.Create(ctx, rule)).To(Succeed())
		DeferCleanup(func() { Expect(k8s.Delete(ctx, rule)).To(Succeed()) })
		rule.Status = apiv2.APIRuleStatus{
			State: apiv2.StateError, Description: "ResolvedRefs: spec.service: Service default/httpbin not found",
			Hosts: []string{"httpbin.apps.example.com"}, Gateway: "istio-system/public",
		}
		conditions.Set(&rule.Status.Conditions, conditions.Ready, metav1.ConditionFalse, conditions.ReasonServiceNotFound, "not found", rule.Generation)
		Expect(k8s.Status().Update(ctx, rule)).To(Succeed())

		httpClient, err := rest.HTTPClientFor(env.Config)
		Expect(err).NotTo(HaveOccurred())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(env.Config.Host, "/")+"/apis/gateway.apirule.io/v2/namespaces/default/apirules/columns", nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
		resp, err := httpClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		raw, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusOK), "%s", raw)
		var table metav1.Table
		Expect(json.Unmarshal(raw, &table)).To(Succeed())

		cells := map[string]any{}
		var shown, wide []string
		for i, c := range table.ColumnDefinitions {
			cells[c.Name] = table.Rows[0].Cells[i]
			if c.Priority == 0 {
				shown = append(shown, c.Name)
			} else {
				wide = append(wide, c.Name)
			}
		}
		Expect(shown).To(Equal([]string{"Name", "Ready", "Reason", "Hosts", "Age"}))
		Expect(wide).To(Equal([]string{"State", "Gateway", "Description"}))
		Expect(cells["Ready"]).To(Equal("False"))
		Expect(cells["Reason"]).To(Equal("ServiceNotFound"))
		Expect(cells["Hosts"]).To(Equal(`["httpbin.apps.example.com"]`), "the hosts as served, not the short host as written")
		Expect(cells["State"]).To(Equal("Error"))
		Expect(cells["Gateway"]).To(Equal("istio-system/public"))
	})
})
