// Package v1alpha1 holds the inference.llm-d.ai/v1alpha1 API: LLMInferenceService, one vLLM model server and
// its autoscaling policy, and LLMInferencePool, several services sharing one GPU budget.
//
// +kubebuilder:object:generate=true
// +groupName=inference.llm-d.ai
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "inference.llm-d.ai", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
