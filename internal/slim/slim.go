// Package slim holds the transforms that keep in the operator's cache only what it reads of
// objects it does not manage: Pods, Secrets and VirtualServices of the whole cluster would
// otherwise be most of its memory, and Secret values other than certificates must never enter
// it. apirulectl's live mode reads a cluster through the same transforms.
package slim

import (
	"bytes"

	networkingclientv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/apirule-operator/apirule-operator/internal/meshconfig"
	"github.com/apirule-operator/apirule-operator/internal/ownership"
)

// VirtualService keeps in the cache whole VirtualServices the operator generated and, of
// all others, only what the host-conflict check reads: hosts and gateways.
func VirtualService(obj any) (any, error) {
	vs, ok := obj.(*networkingclientv1.VirtualService)
	if !ok {
		return obj, nil
	}
	if _, managed := ownership.OwnerFromLabels(vs.Labels); managed {
		// This transform replaces the cache's default, which strips managedFields.
		vs.ManagedFields = nil
		return vs, nil
	}
	slim := &networkingclientv1.VirtualService{ObjectMeta: slimMeta(vs.ObjectMeta)}
	slim.Spec.Hosts = vs.Spec.Hosts
	slim.Spec.Gateways = vs.Spec.Gateways
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
	for _, c := range pod.Spec.Containers {
		slim.Spec.Containers = append(slim.Spec.Containers, corev1.Container{Name: c.Name})
	}
	for _, c := range pod.Spec.InitContainers {
		slim.Spec.InitContainers = append(slim.Spec.InitContainers, corev1.Container{Name: c.Name})
	}
	// A finished Pod (a Job's) gets no traffic: the sidecar check leaves it out.
	slim.Status.Phase = pod.Status.Phase
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

// slimMeta keeps the metadata a cached object needs: identity, labels and lifecycle.
func slimMeta(m metav1.ObjectMeta) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, Labels: m.Labels, UID: m.UID, ResourceVersion: m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp, DeletionTimestamp: m.DeletionTimestamp,
	}
}
