// Package envoyeval evaluates the subset of Envoy configuration that istiod emits for
// Gateways, VirtualServices, RequestAuthentications and AuthorizationPolicies: listener
// filter-chain selection, the HTTP connection manager's header and address handling, route
// selection, jwt_authn, RBAC and ext_authz gating.
//
// No Envoy binary can run where these tests run, so this package stands in for it. It reads
// the real xDS protos that Istio generated and decides a request the way Envoy documents it.
// Anything it does not model is an error, never a silent match: a matcher this package does
// not know would otherwise make a policy look stricter or looser than Envoy would enforce it.
package envoyeval
