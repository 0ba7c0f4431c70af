package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PoolPriority orders members under pressure.
// +kubebuilder:validation:Enum=high;normal;low
type PoolPriority string

const (
	PriorityHigh   PoolPriority = "high"
	PriorityNormal PoolPriority = "normal"
	PriorityLow    PoolPriority = "low"
)

// EvictionPolicy says what happens when members want more GPUs than the budget holds.
// +kubebuilder:validation:Enum=LowPriority;None
type EvictionPolicy string

const (
	// EvictionLowPriority lets a member take GPUs from members of lower priority above their minimum.
	EvictionLowPriority EvictionPolicy = "LowPriority"
	// EvictionNone shares contended GPUs by weight only.
	EvictionNone EvictionPolicy = "None"
)

// LLMInferencePoolSpec groups services that share one GPU budget.
type LLMInferencePoolSpec struct {
	// Services are the pool's members: LLMInferenceServices in the pool's namespace. A service belongs to at
	// most one pool.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Services []PoolMember `json:"services"`

	// ResourcePolicy is the budget the members share and how contention is resolved.
	ResourcePolicy ResourcePolicy `json:"resourcePolicy"`
}

// PoolMember is one service of a pool.
type PoolMember struct {
	// Name is the LLMInferenceService's metadata.name, in the pool's namespace: a DNS label, as every
	// service name is (at most 63 characters, lowercase letters, digits and '-', starting with a letter).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="a member names an LLMInferenceService, whose name starts with a lowercase letter and holds only lowercase letters, digits and '-' (no '.')"
	Name string `json:"name"`

	// Priority orders members under pressure: with evictionPolicy LowPriority, a member gives up replicas
	// above its minimum to members of higher priority.
	// +kubebuilder:default=normal
	// +optional
	Priority PoolPriority `json:"priority,omitempty"`

	// Weight is the member's share of the budget: weight / sum of weights. A member that needs less than its
	// share lends the rest to members that want more.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Weight int32 `json:"weight,omitempty"`
}

// ResourcePolicy is a pool's budget.
// +kubebuilder:validation:XValidation:rule="isQuantity(string(self.gpuBudget)) && quantity(string(self.gpuBudget)).isInteger() && quantity(string(self.gpuBudget)).asInteger() > 0",message="gpuBudget must be a whole number of GPUs above 0, e.g. \"4\""
type ResourcePolicy struct {
	// GPUBudget is the most GPUs (nvidia.com/gpu) the members' replicas may hold together: the sum over
	// members of replicas x GPUs per replica never exceeds it.
	// +kubebuilder:validation:XIntOrString
	GPUBudget resource.Quantity `json:"gpuBudget"`

	// EvictionPolicy resolves contention: LowPriority lets higher-priority members take GPUs from
	// lower-priority ones (down to their minimum); None shares by weight only.
	// +kubebuilder:default=None
	// +optional
	EvictionPolicy EvictionPolicy `json:"evictionPolicy,omitempty"`
}

// Condition types and reasons of an LLMInferencePool.
const (
	// PoolConditionReady is True when every member exists, belongs to this pool only, fits the GPUs it may
	// land on, and the members' minimums fit the budget.
	PoolConditionReady = "Ready"
)

// PoolMemberStatus is what the pool grants one member.
type PoolMemberStatus struct {
	// Name is the member's name.
	Name string `json:"name"`
	// ShareGPUs is the member's weighted share of the budget, in GPUs.
	ShareGPUs int64 `json:"shareGPUs"`
	// GPUsPerReplica is what one replica of the member requests.
	GPUsPerReplica int64 `json:"gpusPerReplica"`
	// DemandReplicas is what the member's own autoscaling asks for.
	// +optional
	DemandReplicas int32 `json:"demandReplicas,omitempty"`
	// AllocatedReplicas is what the pool grants.
	// +optional
	AllocatedReplicas int32 `json:"allocatedReplicas,omitempty"`
	// Reason says why the allocation differs from the demand.
	// +optional
	Reason string `json:"reason,omitempty"`
	// VRAMPerGPU is the estimated GPU memory one replica needs on each of its GPUs (weights plus KV cache
	// for one sequence of --max-model-len), for example "17.1Gi".
	// +optional
	VRAMPerGPU string `json:"vramPerGPU,omitempty"`
}

// LLMInferencePoolStatus is the observed state of a pool.
type LLMInferencePoolStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions has Ready, with a reason and a message that says what to fix.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// GPUsInUse is the sum over members of their replicas x GPUs per replica.
	// +optional
	GPUsInUse int64 `json:"gpusInUse,omitempty"`
	// Members is each member's share, demand and allocation.
	// +listType=map
	// +listMapKey=name
	// +optional
	Members []PoolMemberStatus `json:"members,omitempty"`
}

// LLMInferencePool shares one GPU budget among several LLMInferenceServices, by weight and priority.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=llmdpool,categories=llm-d
// +kubebuilder:printcolumn:name="Services",type=string,JSONPath=`.spec.services[*].name`
// +kubebuilder:printcolumn:name="GPUs",type=integer,JSONPath=`.status.gpusInUse`,description="GPUs held by the members' replicas"
// +kubebuilder:printcolumn:name="Budget",type=string,JSONPath=`.spec.resourcePolicy.gpuBudget`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LLMInferencePool struct {
	metav1.TypeMeta `json:",inline"`
	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Spec is the desired state.
	Spec LLMInferencePoolSpec `json:"spec"`
	// Status is the observed state, written by the operator and the scaler.
	// +optional
	Status LLMInferencePoolStatus `json:"status,omitzero"`
}

// LLMInferencePoolList is a list of LLMInferencePool.
// +kubebuilder:object:root=true
type LLMInferencePoolList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the pools.
	Items []LLMInferencePool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LLMInferencePool{}, &LLMInferencePoolList{})
}
