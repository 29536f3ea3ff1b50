package validate

import (
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/translate"
)

// HostConflicts refuses hosts that another APIRule already claims. claims holds, by host as
// written in rule, the other APIRules that list the same host (the caller finds them through
// the operator's host index). A short host (one label) is completed with the domain of the
// Gateway, so it conflicts only with an APIRule on the same Gateway; a host with a domain
// conflicts whatever the Gateway, because the policies of two APIRules for one host would
// widen each other's access.
//
// On update (old is not nil), only hosts the update adds are checked: an APIRule keeps the
// hosts it already has, and for claims older than this check (or made in a race) the
// reconciler decides by age who serves the host.
func HostConflicts(rule, old *apiv2.APIRule, claims map[string][]apiv2.APIRule, opts translate.Options) Problems {
	var ps Problems
	self := types.NamespacedName{Namespace: rule.Namespace, Name: rule.Name}
	gateway, _ := translate.GatewayRef(rule, opts)
	hostsPath := field.NewPath("spec", "hosts")
	for i, h := range rule.Spec.Hosts {
		if old != nil && slices.Contains(old.Spec.Hosts, h) {
			continue
		}
		short := !strings.Contains(string(h), ".")
		var holders []string
		for _, other := range claims[string(h)] {
			key := types.NamespacedName{Namespace: other.Namespace, Name: other.Name}
			if key == self || !other.DeletionTimestamp.IsZero() || !slices.Contains(other.Spec.Hosts, h) {
				continue
			}
			if short {
				if theirs, ok := translate.GatewayRef(&other, opts); !ok || theirs != gateway {
					continue
				}
			}
			holders = append(holders, key.String())
		}
		if len(holders) == 0 {
			continue
		}
		slices.Sort(holders)
		ps.fail(conditions.ReasonHostConflict, hostsPath.Index(i), string(h),
			"host %q is already claimed by APIRule %s; one host is served by one APIRule, so that the policies of one never open the other's paths: "+
				"remove the host here, or add these rules to %s", h, strings.Join(holders, ", "), holders[0])
	}
	return ps
}

// HostIndex is the name of the operator's cache index of APIRules by host. The admission
// webhook finds the APIRules that claim a host through it (with HostIndexKey), instead of
// listing them all.
const HostIndex = "apirule.io/hosts"

// HostIndexKey is the key under which the operator's APIRule host index lists a host: the host
// as written, or short:<name> for a short host.
func HostIndexKey(host apiv2.Host) string {
	if strings.Contains(string(host), ".") {
		return string(host)
	}
	return "short:" + string(host)
}
