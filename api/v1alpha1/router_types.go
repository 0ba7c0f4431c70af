package v1alpha1

// FailureMode is what a gateway does with a request when the endpoint picker cannot answer.
// +kubebuilder:validation:Enum=FailOpen;FailClose
type FailureMode string

const (
	// FailOpen sends the request to a pod of the gateway's choosing.
	FailOpen FailureMode = "FailOpen"
	// FailClose refuses the request (a 5xx from the gateway).
	FailClose FailureMode = "FailClose"
)

// Picker is how the endpoint picker chooses among the scored pods.
// +kubebuilder:validation:Enum=MaxScore;WeightedRandom
type Picker string

const (
	// PickerMaxScore takes the pod with the highest score, ties at random: the picker's default.
	PickerMaxScore Picker = "MaxScore"
	// PickerWeightedRandom draws a pod with probability proportional to its score: a burst that arrives
	// between two scrapes of the pods' metrics spreads instead of going to the pod that looked best.
	PickerWeightedRandom Picker = "WeightedRandom"
)

// RouterSpec puts a service behind the Gateway API Inference Extension: the operator writes an InferencePool
// (inference.networking.k8s.io/v1) of the service's pods and runs its endpoint picker, which scores the pods
// on their vLLM metrics and chooses one for each request a conformant gateway (Istio, kgateway, NGINX
// Gateway Fabric, GKE) asks it about. The Service and its endpoint stay as they are.
type RouterSpec struct {
	// Gateway is the Gateway (gateway.networking.k8s.io/v1) whose HTTPRoute sends the service's traffic to
	// its InferencePool. Empty means the operator's --gateway (the chart's router.gateway); with neither,
	// the pool and picker run and no route reaches them.
	// +optional
	Gateway *GatewayRef `json:"gateway,omitempty"`

	// FailureMode is what the gateway does when the picker cannot answer: FailClose refuses the request,
	// FailOpen sends it to a pod of its own choosing.
	// +kubebuilder:default=FailClose
	// +optional
	FailureMode FailureMode `json:"failureMode,omitempty"`

	// Scoring weighs the picker's scorers; unset fields take the extension's defaults.
	// +optional
	Scoring RouterScoring `json:"scoring,omitzero"`
}

// GatewayRef names a Gateway.
type GatewayRef struct {
	// Name is the Gateway's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// Namespace is the Gateway's namespace; empty means the service's. A Gateway in another namespace must
	// allow routes from the service's namespace (its listeners' allowedRoutes).
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Namespace string `json:"namespace,omitempty"`
}

// RouterScoring is the endpoint picker's scoring. A pod's score is the weighted sum of its queue score
// (fewest waiting requests among the pods: 1, most: 0), its KV-cache score (1 - KV-cache usage) and its
// prefix-cache score (the share of the prompt's blocks the picker last sent to it); a weight of 0 leaves
// the scorer out.
// +kubebuilder:validation:XValidation:rule="!has(self.queueWeight) || !has(self.kvCacheWeight) || !has(self.prefixCacheWeight) || self.queueWeight + self.kvCacheWeight + self.prefixCacheWeight > 0",message="at least one scoring weight must be above 0: the picker needs a scorer"
type RouterScoring struct {
	// QueueWeight weighs the queue-depth score (vllm:num_requests_waiting). Unset means 2.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	QueueWeight *int32 `json:"queueWeight,omitempty"`

	// KVCacheWeight weighs the KV-cache usage score (vllm:kv_cache_usage_perc). Unset means 2.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	KVCacheWeight *int32 `json:"kvCacheWeight,omitempty"`

	// PrefixCacheWeight weighs prefix-cache affinity: requests sharing a prompt prefix go where it is likely
	// cached. Unset means 3.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	PrefixCacheWeight *int32 `json:"prefixCacheWeight,omitempty"`

	// Picker chooses among the scored pods: MaxScore (the highest) or WeightedRandom (in proportion to the
	// scores). Unset means MaxScore.
	// +optional
	Picker Picker `json:"picker,omitempty"`
}

// Condition type and reasons of a service's routing.
const (
	// ConditionRouting is True when a Gateway's HTTPRoute sends the service's traffic to its InferencePool
	// and the picker is ready.
	ConditionRouting = "Routing"
)
