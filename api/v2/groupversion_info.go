// Package v2 contains the APIRule API of the gateway.apirule.io group, version v2.
//
// The spec is field-compatible with Kyma's APIRule v2 (gateway.kyma-project.io/v2): a Kyma
// manifest is accepted after changing its apiVersion. Fields marked NEW extend it.
//
// +kubebuilder:object:generate=true
// +groupName=gateway.apirule.io
package v2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every type in this package.
	GroupVersion = schema.GroupVersion{Group: "gateway.apirule.io", Version: "v2"}

	// SchemeBuilder registers the types of this package with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion, &APIRule{}, &APIRuleList{})
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
