// Package slim holds the transforms that keep in the operator's cache only what it reads of
// objects it does not manage: Pods, Secrets and VirtualServices of the whole cluster would
// otherwise be most of its memory, and Secret values other than certificates must never enter
// it. apirulectl's live mode reads a cluster through the same transforms.
package slim

import (
	"bytes"
	"runtime"
	"sync"
	"weak"

	networkingv1 "istio.io/api/networking/v1"
	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/apirule-operator/apirule-operator/internal/apply"
	"github.com/apirule-operator/apirule-operator/internal/manifest"
	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// produced holds, weakly, the VirtualServices the transform returned. client-go may pass an
// object the transform produced to it again (a watch list transforms each object into a
// temporary store, then again as it replaces the cache's content), and such an object must
// come back as it is: its routes are gone, so its digest cannot be computed again, and a
// digest the stored object carries is never believed.
var produced sync.Map

// VirtualService keeps in the cache only what the checks and indexes read of a
// VirtualService: hosts and gateways (the host-conflict check) and, of the operator's own,
// also the Services each HTTP route sends to (what serves now), its owner reference, and the
// digest of its whole state (apply.StateDigestAnnotation), against which the applier compares
// the desired state. The routes themselves, most of a VirtualService, stay out of memory.
func VirtualService(obj any) (any, error) {
	vs, ok := obj.(*networkingclientv1.VirtualService)
	if !ok {
		return obj, nil
	}
	if _, again := produced.Load(weak.Make(vs)); again {
		return vs, nil
	}
	slim := &networkingclientv1.VirtualService{ObjectMeta: slimMeta(vs.ObjectMeta)}
	// Recorded before it is returned, and forgotten once the cache drops it.
	key := weak.Make(slim)
	produced.Store(key, struct{}{})
	runtime.AddCleanup(slim, func(k weak.Pointer[networkingclientv1.VirtualService]) { produced.Delete(k) }, key)
	slim.Spec.Hosts = vs.Spec.Hosts
	slim.Spec.Gateways = vs.Spec.Gateways
	if _, managed := ownership.OwnerFromLabels(vs.Labels); !managed {
		return slim, nil
	}
	vs.SetGroupVersionKind(networkingclientv1.SchemeGroupVersion.WithKind("VirtualService"))
	state, err := manifest.ToUnstructured(vs)
	if err != nil {
		return nil, err
	}
	digest, err := apply.StateDigest(state.Object)
	if err != nil {
		return nil, err
	}
	slim.OwnerReferences = vs.OwnerReferences
	slim.Annotations = map[string]string{apply.StateDigestAnnotation: digest}
	for _, route := range vs.Spec.Http {
		kept := &networkingv1.HTTPRoute{}
		for _, d := range route.Route {
			kept.Route = append(kept.Route, &networkingv1.HTTPRouteDestination{
				Destination: &networkingv1.Destination{Host: d.GetDestination().GetHost()},
			})
		}
		slim.Spec.Http = append(slim.Spec.Http, kept)
	}
	return slim, nil
}

// Pod keeps in the cache only what the sidecar check and the trusted-proxy check read of
// a Pod.
func Pod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Pod{ObjectMeta: slimMeta(pod.ObjectMeta)}
	if proxyConfig, ok := pod.Annotations[meshconfig.ProxyConfigAnnotation]; ok {
		slim.Annotations = map[string]string{meshconfig.ProxyConfigAnnotation: proxyConfig}
	}
	// Of the containers only the sidecar, as a container or a native sidecar (an init
	// container): the sidecar check looks for it, and a container is a large struct.
	slim.Spec.Containers = sidecarOnly(pod.Spec.Containers)
	slim.Spec.InitContainers = sidecarOnly(pod.Spec.InitContainers)
	// A finished Pod (a Job's) gets no traffic: the sidecar check leaves it out.
	slim.Status.Phase = pod.Status.Phase
	return slim, nil
}

func sidecarOnly(containers []corev1.Container) []corev1.Container {
	for _, c := range containers {
		if c.Name == meshconfig.SidecarContainer {
			return []corev1.Container{{Name: c.Name}}
		}
	}
	return nil
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

// slimMeta keeps the metadata a cached object needs: identity, labels and lifecycle.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
	}
}
