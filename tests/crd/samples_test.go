package crd_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/schema"
)

var _ = Describe("config/samples", func() {
	It("holds one APIRule per access strategy and mode, each accepted by the API server", func() {
		files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "gateway_v2_apirule_*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		strategies := map[string]bool{}
		for _, file := range files {
			raw, err := os.ReadFile(file)
			Expect(err).NotTo(HaveOccurred())
			// apirulectl validate reads the sample so; it must accept what the server accepts.
			obj, err := schema.Decode(raw)
			Expect(err).NotTo(HaveOccurred())
			_, errs := schema.Validate(obj)
			Expect(errs).To(BeEmpty(), "%s is refused offline", file)
			rule := &apiv2.APIRule{}
			Expect(yaml.UnmarshalStrict(raw, rule)).To(Succeed(), "%s has fields the API does not know", file)
			rule.Namespace = "default"
			Expect(k8s.Create(ctx, rule, client.DryRunAll)).To(Succeed(), "%s is rejected", file)
			if rule.Spec.MTLS != nil {
				strategies["mtls"] = true
			}
			if rule.Spec.IPRestriction != nil {
				strategies["ipRestriction"] = true
			}
			if rule.Spec.Gateway == nil && rule.Spec.MTLS == nil {
				strategies["default gateway"] = true
			}
			for _, r := range rule.Spec.Rules {
				switch {
				case r.NoAuth != nil && *r.NoAuth:
					strategies["noAuth"] = true
				case r.JWT != nil:
					strategies["jwt"] = true
				case r.ExtAuth != nil:
					strategies["extAuth"] = true
				}
			}
		}
		Expect(strategies).To(HaveKey("noAuth"))
		Expect(strategies).To(HaveKey("jwt"))
		Expect(strategies).To(HaveKey("extAuth"))
		Expect(strategies).To(HaveKey("mtls"))
		Expect(strategies).To(HaveKey("ipRestriction"))
		Expect(strategies).To(HaveKey("default gateway"))
	})
})
