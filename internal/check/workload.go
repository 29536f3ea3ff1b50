package check

import (
	"reflect"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/conditions"
	"github.com/apirule-operator/apirule-operator/internal/model"
)

// checkWorkloadPeers checks the APIRule together with the other APIRules on the workloads it
// serves. Istio merges every RequestAuthentication of a workload into one token check, so one
// issuer configured with other token locations, audiences or claim headers by another APIRule
// would apply to this APIRule's routes too (a cookie token accepted on routes meant for
// headers only). And istiod runs one ext-authz provider per workload unless told otherwise,
// dropping the CUSTOM policies of all of them. The APIRule whose current spec already serves
// keeps its configuration, else the older one (as for hosts); the other is refused, naming it.
func checkWorkloadPeers(in model.Input, specPath *field.Path, fs *Findings) {
	if len(in.Peers) == 0 {
		return
	}
	mine := in.APIRule
	for _, peer := range in.Peers {
		if !peerPrevails(peer.APIRule, mine) {
			continue // the peer's own check refuses it
		}
		theirs := peerIssuers(peer)
		var myProviders []string
		for i, r := range mine.Spec.Rules {
			if !servesAny(in, i, peer.Workloads) {
				continue
			}
			rulePath := specPath.Child("rules").Index(i)
			if c, ok := model.JWTConfig(r, rulePath); ok {
				for j, a := range c.Config.Authentications {
					if other, ok := theirs[a.Issuer]; ok && !reflect.DeepEqual(other, issuerConfigOf(a, c.Config.OutputClaimToHeaders)) {
						fs.add(conditions.Accepted, conditions.ReasonWorkloadConflict, c.Path.Child("authentications").Index(j), a.Issuer,
							"issuer %q is configured differently by APIRule %s on the same workload; Istio merges the token checks of a workload, "+
								"so the other configuration would apply here too: use the same jwksUri or jwks, token locations, "+
								"forwardOriginalToken and outputClaimToHeaders as it does, or another backend", a.Issuer, model.Owner(peer.APIRule))
					}
				}
			}
			if r.ExtAuth != nil {
				myProviders = append(myProviders, r.ExtAuth.Authorizers...)
			}
		}
		if in.Options.MultipleCustomProviders || len(myProviders) == 0 {
			continue
		}
		theirProviders := peerProviders(peer)
		for _, p := range theirProviders {
			if !slices.Contains(myProviders, p) || slices.ContainsFunc(myProviders, func(q string) bool { return !slices.Contains(theirProviders, q) }) {
				fs.add(conditions.Accepted, conditions.ReasonWorkloadConflict, specPath.Child("rules"), p,
					"APIRule %s already uses ext-authz provider %s on the same workload, and istiod runs one provider per workload "+
						"unless started with PILOT_ENABLE_MULTIPLE_CUSTOM_AUTHZ_PROVIDERS=true (it would deny every extAuth rule of the workload); "+
						"use %s here too, or another backend", model.Owner(peer.APIRule), p, p)
				break
			}
		}
	}
}

// peerPrevails says whether the peer keeps its configuration against the APIRule. The one
// whose current spec is what serves wins: a new APIRule, or an edit, never takes a live
// configuration away from another team. Between two of the same kind (both new, or both live
// after a race), the older wins.
func peerPrevails(peer, mine *apiv2.APIRule) bool {
	if p, m := conditions.ProgrammedAsIs(peer), conditions.ProgrammedAsIs(mine); p != m {
		return p
	}
	return olderThan(peer, mine)
}

// olderThan says whether a was created before b (by name when at the same time). An APIRule
// not created yet (at admission) is younger than every other.
func olderThan(a, b *apiv2.APIRule) bool {
	if b.CreationTimestamp.IsZero() && !a.CreationTimestamp.IsZero() {
		return true
	}
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return strings.Compare(model.Owner(a).String(), model.Owner(b).String()) < 0
}

// servesAny says whether rule i of the input's APIRule sends traffic to one of the workloads.
func servesAny(in model.Input, i int, workloads []string) bool {
	ref, _, ok := model.BackendRef(in.APIRule, i)
	svc, found := in.Services[ref]
	return ok && found && slices.Contains(workloads, model.WorkloadKey(svc))
}

// peerIssuers is the configuration of each issuer the peer's rules on the shared Services use.
func peerIssuers(peer model.Peer) map[string]issuerConfig {
	out := map[string]issuerConfig{}
	for i, r := range peer.APIRule.Spec.Rules {
		if ref, _, ok := model.BackendRef(peer.APIRule, i); !ok || !slices.Contains(peer.Services, ref) {
			continue
		}
		if c, ok := model.JWTConfig(r, field.NewPath("spec")); ok {
			for _, a := range c.Config.Authentications {
				if _, seen := out[a.Issuer]; !seen {
					out[a.Issuer] = issuerConfigOf(a, c.Config.OutputClaimToHeaders)
				}
			}
		}
	}
	return out
}

// peerProviders are the ext-authz providers the peer's rules on the shared Services use.
func peerProviders(peer model.Peer) []string {
	var out []string
	for i, r := range peer.APIRule.Spec.Rules {
		if ref, _, ok := model.BackendRef(peer.APIRule, i); ok && slices.Contains(peer.Services, ref) && r.ExtAuth != nil {
			for _, p := range r.ExtAuth.Authorizers {
				if !slices.Contains(out, p) {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// AcrossAPIRules is what Full checks against other APIRules and routes, for admission: the
// workload-wide view and the mTLS hosts other routes of the ingress gateway cover.
func AcrossAPIRules(in model.Input) Findings {
	var fs Findings
	checkWorkloadPeers(in, field.NewPath("spec"), &fs)
	checkFronting(in, field.NewPath("spec", "hosts"), &fs)
	return fs
}
