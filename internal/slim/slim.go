// Package slim holds the transforms that keep in the operator's cache only what it reads:
// Pods, Services, Secrets and VirtualServices of the whole cluster would otherwise be most of its
// memory, Secret values other than certificates must never enter it, and of the objects the
// operator generates it keeps what the checks read and the digest of their state, which the
// applier compares with the desired state. apirulectl's live mode reads a cluster through the
// same transforms.
package slim

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	networkingv1 "istio.io/api/networking/v1"
	securityv1 "istio.io/api/security/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	securityclientv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	apiv2 "github.com/apirule-operator/apirule-operator/api/v2"
	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// VirtualService keeps in the cache only what the checks and indexes read of a
// VirtualService: hosts and gateways (the host-conflict check) and, of the operator's own,
// also the hosts its HTTP routes send to (what serves now: index.RouteBackends), its owner
// reference, and the digest of its whole state (apply.StateDigestAnnotation), against which
// the applier compares the desired state. The routes themselves, most of a VirtualService,
// stay out of memory.
func VirtualService(obj any) (any, error) {
	vs, ok := obj.(*networkingclientv1.VirtualService)
	if !ok {
		return obj, nil
	}
	slim := &networkingclientv1.VirtualService{ObjectMeta: slimMeta(vs.ObjectMeta)}
	slim.Spec.Hosts = vs.Spec.Hosts
	slim.Spec.Gateways = vs.Spec.Gateways
	if _, managed := ownership.OwnerFromLabels(vs.Labels); !managed {
		return slim, nil
	}
	if err := keepOwnState(vs, &slim.ObjectMeta, networkingclientv1.SchemeGroupVersion.WithKind("VirtualService")); err != nil {
		return whole(vs, err)
	}
	var hosts []string
	for _, route := range vs.Spec.Http {
		for _, d := range route.Route {
			hosts = append(hosts, d.GetDestination().GetHost())
		}
	}
	keepDestinations(slim, hosts)
	return slim, nil
}

// keepDestinations keeps in one route every destination host once: what the checks and
// indexes read is the set of Services the routes send to, and a route is a large struct.
func keepDestinations(slim *networkingclientv1.VirtualService, hosts []string) {
	destinations := &networkingv1.HTTPRoute{}
	for _, host := range hosts {
		if !slices.ContainsFunc(destinations.Route, func(kept *networkingv1.HTTPRouteDestination) bool { return kept.Destination.Host == host }) {
			destinations.Route = append(destinations.Route, &networkingv1.HTTPRouteDestination{Destination: &networkingv1.Destination{Host: host}})
		}
	}
	if len(destinations.Route) > 0 {
		slim.Spec.Http = []*networkingv1.HTTPRoute{destinations}
	}
}

// RuleDigestsAnnotation holds, on an AuthorizationPolicy in the operator's cache only, the
// digests of its rules (RuleDigests), comma-separated, in order.
const RuleDigestsAnnotation = "apirule.io/cached-rule-digests"

// AuthorizationPolicy keeps in the cache, of the operator's own policies (the only ones
// cached), their identity, labels, owner reference, the digest of their state and the
// digests of their rules, which tell whether a new policy drops a rule the current one has.
func AuthorizationPolicy(obj any) (any, error) {
	ap, ok := obj.(*securityclientv1.AuthorizationPolicy)
	if !ok {
		return obj, nil
	}
	slim := &securityclientv1.AuthorizationPolicy{ObjectMeta: slimMeta(ap.ObjectMeta)}
	if err := keepOwnState(ap, &slim.ObjectMeta, securityclientv1.SchemeGroupVersion.WithKind("AuthorizationPolicy")); err != nil {
		return whole(ap, err)
	}
	digests, err := ruleDigests(ap.Spec.Rules)
	if err != nil {
		return whole(ap, err)
	}
	slim.Annotations[RuleDigestsAnnotation] = strings.Join(digests, ",")
	return slim, nil
}

// RequestAuthentication keeps in the cache, of the operator's own RequestAuthentications
// (the only ones cached), their identity, labels, owner reference and the digest of their
// state.
func RequestAuthentication(obj any) (any, error) {
	ra, ok := obj.(*securityclientv1.RequestAuthentication)
	if !ok {
		return obj, nil
	}
	slim := &securityclientv1.RequestAuthentication{ObjectMeta: slimMeta(ra.ObjectMeta)}
	if err := keepOwnState(ra, &slim.ObjectMeta, securityclientv1.SchemeGroupVersion.WithKind("RequestAuthentication")); err != nil {
		return whole(ra, err)
	}
	return slim, nil
}

// Default is the transform of every object that has none of its own: managedFields, a large
// part of every object that the operator never reads, are dropped, and so are the annotations
// only the operator's cache may carry (a digest on any other object is not the cache's); the
// strings many objects share are kept once (intern.go). Of APIRules, the kind whose number
// grows with the cluster, the annotation in which client-side kubectl apply keeps a whole copy
// of what it applied is dropped too: the operator never reads it, and it is 200 to 450 bytes
// of JSON for the APIRules of config/samples, about a tenth of what an APIRule costs in the
// cache. The operator writes APIRules with patches only, never with an update of what it
// read, so nothing it writes loses the annotation.
func Default(obj any) (any, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil
	}
	m.SetManagedFields(nil)
	dropCacheAnnotations(m)
	if rule, ok := obj.(*apiv2.APIRule); ok {
		if annotations := m.GetAnnotations(); annotations[corev1.LastAppliedConfigAnnotation] != "" {
			delete(annotations, corev1.LastAppliedConfigAnnotation)
			m.SetAnnotations(annotations)
		}
		sharedStrings.internFields(reflect.ValueOf(&rule.Spec).Elem())
		sharedStrings.internFields(reflect.ValueOf(&rule.Status).Elem())
	}
	sharedStrings.internMeta(m)
	return obj, nil
}

func dropCacheAnnotations(m metav1.Object) {
	annotations := m.GetAnnotations()
	_, digest := annotations[apply.StateDigestAnnotation]
	_, rules := annotations[RuleDigestsAnnotation]
	if digest || rules {
		delete(annotations, apply.StateDigestAnnotation)
		delete(annotations, RuleDigestsAnnotation)
		m.SetAnnotations(annotations)
	}
}

// whole keeps an object of the operator's whole (but for managedFields and forged cache
// annotations) when its digest cannot be computed: the applier then compares it field by
// field and the narrowing check reads its rules, so nothing is taken for up to date that was
// not checked. The event is not dropped, as an error would have it.
func whole[T client.Object](obj T, err error) (any, error) {
	log.Log.WithName("cache").Error(err, "keeping the object whole in the cache: its state digest failed",
		"kind", obj.GetObjectKind().GroupVersionKind().Kind, "namespace", obj.GetNamespace(), "name", obj.GetName())
	return Default(obj)
}

// keepOwnState keeps on the slim metadata of one of the operator's objects its owner
// references and the digest of the state the API server sent.
func keepOwnState(obj client.Object, slim *metav1.ObjectMeta, gvk schema.GroupVersionKind) error {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	// The object is dropped after this: its managedFields need not be encoded.
	obj.SetManagedFields(nil)
	digest, err := apply.ObjectStateDigest(obj)
	if err != nil {
		return err
	}
	ownState(slim, obj.GetOwnerReferences(), digest)
	return nil
}

// ownState keeps on the slim metadata of one of the operator's objects its owner references
// and the digest of its state, beside the annotations slimMeta kept.
func ownState(slim *metav1.ObjectMeta, owners []metav1.OwnerReference, digest string) {
	for i := range owners {
		sharedStrings.internOwner(&owners[i])
	}
	slim.OwnerReferences = owners
	if slim.Annotations == nil {
		slim.Annotations = map[string]string{}
	}
	slim.Annotations[apply.StateDigestAnnotation] = digest
}

// RuleDigests are the digests of the policy's rules, in order: those the cache keeps for it
// (RuleDigestsAnnotation), or, for a policy read elsewhere, computed from its rules. Two rules
// have the same digest exactly when they are equal as protocol buffers.
func RuleDigests(ap *securityclientv1.AuthorizationPolicy) ([]string, error) {
	if kept, cached := ap.Annotations[RuleDigestsAnnotation]; cached {
		if kept == "" {
			return nil, nil
		}
		return strings.Split(kept, ","), nil
	}
	return ruleDigests(ap.Spec.Rules)
}

func ruleDigests(rules []*securityv1.Rule) ([]string, error) {
	out := make([]string, 0, len(rules))
	for _, rule := range rules {
		// Deterministic: equal messages encode to equal bytes in one binary.
		raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(rule)
		if err != nil {
			return nil, fmt.Errorf("encoding a policy rule: %w", err)
		}
		sum := sha256.Sum256(raw)
		out = append(out, hex.EncodeToString(sum[:]))
	}
	return out, nil
}

// Pod keeps only what the sidecar check and the trusted-proxy check read of a Pod: its
// identity, labels and proxy-config annotation, and whether it runs the sidecar and whether it
// has finished, as marks (SidecarMark, FinishedMark) in place of its spec and status. The cache
// holds it as metadata (PodMetadata: a Pod's struct alone is over a kilobyte); apirulectl's
// in-memory store holds it as a Pod. Marks the Pod itself carries are not believed: the
// annotations are made here, from the spec and status.
func Pod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{ObjectMeta: podMeta(pod)}, nil
}

// podMeta is the metadata of a slim Pod: its identity, labels, proxy config and marks.
func podMeta(pod *corev1.Pod) metav1.ObjectMeta {
	slim := slimMeta(pod.ObjectMeta)
	annotations := map[string]string{}
	if proxyConfig, ok := pod.Annotations[meshconfig.ProxyConfigAnnotation]; ok {
		annotations[meshconfig.ProxyConfigAnnotation] = proxyConfig
	}
	// The sidecar as a container or a native sidecar (an init container).
	if hasContainer(pod.Spec.Containers, meshconfig.SidecarContainer) || hasContainer(pod.Spec.InitContainers, meshconfig.SidecarContainer) {
		annotations[SidecarMark] = "true"
	}
	// A finished Pod (a Job's) gets no traffic: the sidecar check leaves it out.
	if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		annotations[FinishedMark] = "true"
	}
	if len(annotations) > 0 {
		// Few Pods differ in these: one map serves all that are alike.
		slim.Annotations = sharedStrings.internLabels(annotations)
	}
	return slim
}

// The marks of a slim Pod. Only the cache and apirulectl's store carry them.
const (
	SidecarMark  = "apirule.io/cached-sidecar"
	FinishedMark = "apirule.io/cached-finished"
)

// PodHasSidecar says whether a slim Pod runs Istio's proxy, as a container or a native
// sidecar.
func PodHasSidecar(pod metav1.Object) bool { return pod.GetAnnotations()[SidecarMark] == "true" }

// PodFinished says whether a slim Pod has ended, and so is no endpoint of its Services.
func PodFinished(pod metav1.Object) bool { return pod.GetAnnotations()[FinishedMark] == "true" }

func hasContainer(containers []corev1.Container, name string) bool {
	return slices.ContainsFunc(containers, func(c corev1.Container) bool { return c.Name == name })
}

// PodMetadata is an empty Pod of the cache, which holds Pods as their (slim) metadata; the
// list form is PodMetadataList.
func PodMetadata() *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}}
}

// PodMetadataList is an empty list of the cache's Pods.
func PodMetadataList() *metav1.PartialObjectMetadataList {
	return &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PodList"}}
}

// podAsMetadata is the cache's form of a Pod.
func podAsMetadata(pod *corev1.Pod) *metav1.PartialObjectMetadata {
	cached := PodMetadata()
	cached.ObjectMeta = podMeta(pod)
	return cached
}

// Service keeps in the cache what the operator reads of a Service: its selector (the Pods it
// sends to, and so the workload its policies select) and its port numbers (an APIRule's port
// must be one of them). Addresses, IP families, port names and protocols, target ports and
// annotations stay out of memory.
func Service(obj any) (any, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Service{ObjectMeta: slimMeta(svc.ObjectMeta)}
	if svc.Spec.Selector != nil {
		slim.Spec.Selector = sharedStrings.internLabels(svc.Spec.Selector)
	}
	if len(svc.Spec.Ports) > 0 {
		slim.Spec.Ports = make([]corev1.ServicePort, len(svc.Spec.Ports))
		for i, port := range svc.Spec.Ports {
			slim.Spec.Ports[i] = corev1.ServicePort{Port: port.Port}
		}
	}
	return slim, nil
}

// Secret keeps in the cache only the certificates of a Secret, never a key or other
// confidential value: the operator reads server certificates and CA bundles. A value that is
// not only certificates is replaced by a marker, so the certificate check still reports the
// key as present but not a certificate.
func Secret(obj any) (any, error) {
	secret, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Secret{ObjectMeta: slimMeta(secret.ObjectMeta), Type: secret.Type}
	for key, value := range secret.Data {
		if slim.Data == nil {
			slim.Data = map[string][]byte{}
		}
		if bytes.Contains(value, []byte("-----BEGIN CERTIFICATE-----")) && !bytes.Contains(value, []byte("PRIVATE KEY")) {
			slim.Data[key] = value
		} else {
			slim.Data[key] = notCached
		}
	}
	return slim, nil
}

// notCached stands for a Secret value that is not kept in the cache.
var notCached = []byte("(not a certificate: not cached by apirule-operator)")

// slimMeta keeps the metadata a cached object needs: identity, labels, lifecycle and the
// annotations by which Istio enforces the object differently, with the
// strings other objects share kept once (intern.go).
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	slim := metav1.ObjectMeta{
		Name: m.Name, Namespace: sharedStrings.intern(m.Namespace), UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
	}
	if m.Labels != nil {
		slim.Labels = sharedStrings.internLabels(m.Labels)
	}
	// Istio enforces an object that carries one of these differently: the applier must see it.
	for _, key := range ownership.EnforcementAnnotations {
		if value, set := m.Annotations[key]; set {
			if slim.Annotations == nil {
				slim.Annotations = map[string]string{}
			}
			slim.Annotations[key] = value
		}
	}
	return slim
}
