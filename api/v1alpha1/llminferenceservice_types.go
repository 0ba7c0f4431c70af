package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ModelSourceType says where a model's weights come from.
// +kubebuilder:validation:Enum=HuggingFace;S3;GCS
type ModelSourceType string

const (
	// ModelSourceHuggingFace downloads the model id from the Hugging Face Hub.
	ModelSourceHuggingFace ModelSourceType = "HuggingFace"
	// ModelSourceS3 copies the weights from an s3:// URI.
	ModelSourceS3 ModelSourceType = "S3"
	// ModelSourceGCS copies the weights from a gs:// URI.
	ModelSourceGCS ModelSourceType = "GCS"
)

// EngineType names the inference engine that serves the model.
// +kubebuilder:validation:Enum=vLLM
type EngineType string

// EngineVLLM is vLLM's OpenAI-compatible server.
const EngineVLLM EngineType = "vLLM"

// AutoscalingMetricType names a scaling signal.
// +kubebuilder:validation:Enum=RequestQueue;Throughput
type AutoscalingMetricType string

const (
	// MetricRequestQueue scales up when requests wait in vLLM's queue.
	MetricRequestQueue AutoscalingMetricType = "RequestQueue"
	// MetricThroughput scales down when decode throughput per pod falls below a floor.
	MetricThroughput AutoscalingMetricType = "Throughput"
)

// LLMInferenceServiceSpec is the desired state of one model served by vLLM.
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.limits) || !('nvidia.com/gpu' in self.resources.limits) || (isQuantity(string(self.resources.limits['nvidia.com/gpu'])) && quantity(string(self.resources.limits['nvidia.com/gpu'])).isInteger())",message="resources.limits of nvidia.com/gpu must be a whole number: a pod cannot hold part of a GPU (to share one, use the GPU operator's time-slicing)"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.requests) || !('nvidia.com/gpu' in self.resources.requests) || (isQuantity(string(self.resources.requests['nvidia.com/gpu'])) && quantity(string(self.resources.requests['nvidia.com/gpu'])).isInteger())",message="resources.requests of nvidia.com/gpu must be a whole number: a pod cannot hold part of a GPU (to share one, use the GPU operator's time-slicing)"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.limits) || !has(self.resources.requests) || !('nvidia.com/gpu' in self.resources.limits) || !('nvidia.com/gpu' in self.resources.requests) || string(self.resources.limits['nvidia.com/gpu']) == string(self.resources.requests['nvidia.com/gpu'])",message="nvidia.com/gpu requests and limits must be equal: Kubernetes does not overcommit GPUs (set only limits, requests follow)"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.limits) || !has(self.resources.requests) || !('memory' in self.resources.limits) || !('memory' in self.resources.requests) || !isQuantity(string(self.resources.limits['memory'])) || !isQuantity(string(self.resources.requests['memory'])) || quantity(string(self.resources.requests['memory'])).compareTo(quantity(string(self.resources.limits['memory']))) <= 0",message="resources.requests.memory is above resources.limits.memory: Kubernetes refuses such a pod; lower the request or raise the limit"
// +kubebuilder:validation:XValidation:rule="!has(self.resources) || !has(self.resources.limits) || !has(self.resources.requests) || !('cpu' in self.resources.limits) || !('cpu' in self.resources.requests) || !isQuantity(string(self.resources.limits['cpu'])) || !isQuantity(string(self.resources.requests['cpu'])) || quantity(string(self.resources.requests['cpu'])).compareTo(quantity(string(self.resources.limits['cpu']))) <= 0",message="resources.requests.cpu is above resources.limits.cpu: Kubernetes refuses such a pod; lower the request or raise the limit"
type LLMInferenceServiceSpec struct {
	// Model is the model to serve and where its weights come from.
	Model ModelSpec `json:"model"`

	// Engine is the inference engine and its command-line arguments.
	// +kubebuilder:default={type: vLLM}
	// +optional
	Engine EngineSpec `json:"engine,omitzero"`

	// Resources are the compute resources of each model server pod, for example
	// `nvidia.com/gpu: "1"` and `memory: 24Gi`. GPUs per replica are read from here.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`

	// Replicas is the number of model server pods when autoscaling is disabled. With autoscaling
	// enabled, it is only the size the Deployment starts with; the HPA owns the count from then on.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Autoscaling scales the service on LLM signals (request queue depth and decode throughput) through a KEDA
	// ScaledObject whose external trigger is the llm-d scaler.
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`

	// ModelCache is the PersistentVolumeClaim that caches the weights, so that a restarted pod loads them
	// locally (30-90 s) instead of downloading them again (minutes).
	// +kubebuilder:default={size: "100Gi"}
	// +optional
	ModelCache ModelCacheSpec `json:"modelCache,omitzero"`

	// Router routes requests by load instead of at random: the operator writes an InferencePool of the
	// service's pods with an endpoint picker (the Gateway API Inference Extension's), and an HTTPRoute on a
	// Gateway that sends the service's traffic to it. The Service and its endpoint are kept.
	// +optional
	Router *RouterSpec `json:"router,omitempty"`
}

// ModelSpec names a model and its source.
type ModelSpec struct {
	// ID is the model's name: the Hugging Face repository id (for example
	// `meta-llama/Meta-Llama-3.1-8B-Instruct`), also the name clients send in the `model` field of requests.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][A-Za-z0-9._/-]*$`
	ID string `json:"id"`

	// Parameters is the model's parameter count, such as "8B", "3.8B" or "70B", used to estimate the GPU
	// memory it needs. Empty means it is read from the model id (".../Meta-Llama-3.1-8B-Instruct" is 8B).
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?[MBTmbt]$`
	// +optional
	Parameters string `json:"parameters,omitempty"`

	// Source is where the weights are downloaded from before the server starts.
	// +kubebuilder:default={type: HuggingFace}
	// +optional
	Source ModelSource `json:"source,omitzero"`
}

// ModelSource says where the weights come from and which credentials fetch them.
// +kubebuilder:validation:XValidation:rule="self.type != 'HuggingFace' || !has(self.uri)",message="uri is for S3 and GCS sources; a HuggingFace source downloads model.id"
// +kubebuilder:validation:XValidation:rule="self.type != 'S3' || (has(self.uri) && self.uri.startsWith('s3://'))",message="an S3 source needs uri: s3://bucket/path"
// +kubebuilder:validation:XValidation:rule="self.type != 'GCS' || (has(self.uri) && self.uri.startsWith('gs://'))",message="a GCS source needs uri: gs://bucket/path"
// +kubebuilder:validation:XValidation:rule="self.type == 'HuggingFace' || !has(self.huggingFaceTokenSecret)",message="huggingFaceTokenSecret is for HuggingFace sources; use credentialsSecret for S3 and GCS"
// +kubebuilder:validation:XValidation:rule="self.type != 'HuggingFace' || !has(self.credentialsSecret)",message="credentialsSecret is for S3 and GCS sources; use huggingFaceTokenSecret for HuggingFace"
type ModelSource struct {
	// Type is the kind of source: HuggingFace (the Hub), S3 or GCS.
	// +kubebuilder:default=HuggingFace
	// +optional
	Type ModelSourceType `json:"type,omitempty"`

	// HuggingFaceTokenSecret names a Secret in the service's namespace whose key
	// `huggingFaceTokenSecretKey` holds a Hugging Face access token, needed for gated models such as Llama.
	// The token reaches the pod as an environment variable reference; the operator never reads or copies it.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	HuggingFaceTokenSecret string `json:"huggingFaceTokenSecret,omitempty"`

	// HuggingFaceTokenSecretKey is the key in HuggingFaceTokenSecret that holds the token.
	// +kubebuilder:default=HF_TOKEN
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	// +optional
	HuggingFaceTokenSecretKey string `json:"huggingFaceTokenSecretKey,omitempty"`

	// URI is the object-store prefix that holds the weights: `s3://bucket/path` for S3, `gs://bucket/path`
	// for GCS.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	URI string `json:"uri,omitempty"`

	// CredentialsSecret names a Secret in the service's namespace with object-store credentials. For S3 its
	// keys become environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ...); for GCS it
	// must hold a service-account key under `key.json`. Leave it empty to use workload identity.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +optional
	CredentialsSecret string `json:"credentialsSecret,omitempty"`
}

// EngineSpec configures the inference engine.
type EngineSpec struct {
	// Type is the inference engine. vLLM is the only engine.
	// +kubebuilder:default=vLLM
	// +optional
	Type EngineType `json:"type,omitempty"`

	// Image is the engine's container image. Empty means the operator's pinned default
	// (see the operator's --vllm-image flag).
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Args are extra vLLM command-line arguments, for example `--dtype=bfloat16` and `--max-model-len=32768`.
	// The operator sets `--model` (from model.id) and `--port`; the same flags here are dropped and reported
	// in the ConfigurationWarning condition. Always set `--max-model-len`: without it vLLM reserves KV cache for
	// the model's whole context window.
	// +kubebuilder:validation:MaxItems=128
	// +kubebuilder:validation:items:MaxLength=4096
	// +optional
	Args []string `json:"args,omitempty"`
}

// AutoscalingSpec is the scaling policy of a service.
// +kubebuilder:validation:XValidation:rule="!self.enabled || has(self.maxReplicas)",message="enabled autoscaling needs maxReplicas: the most replicas it may create"
// +kubebuilder:validation:XValidation:rule="!has(self.maxReplicas) || self.minReplicas <= self.maxReplicas",message="autoscaling.minReplicas must be less than or equal to autoscaling.maxReplicas"
// +kubebuilder:validation:XValidation:rule="!self.enabled || (has(self.metrics) && self.metrics.exists(m, m.type == 'RequestQueue'))",message="enabled autoscaling needs a RequestQueue metric: it is the signal that scales up"
type AutoscalingSpec struct {
	// Enabled turns autoscaling on. When false, the Deployment runs spec.replicas and no ScaledObject exists.
	Enabled bool `json:"enabled"`

	// MinReplicas is the fewest replicas autoscaling keeps. It is at least 1: with no pod running there is no
	// queue to measure demand from.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +optional
	MinReplicas int32 `json:"minReplicas,omitempty"`

	// MaxReplicas is the most replicas autoscaling creates. Required when enabled.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	MaxReplicas int32 `json:"maxReplicas,omitempty"`

	// Metrics are the scaling signals, at most one of each type. RequestQueue is required when enabled.
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=2
	// +optional
	Metrics []AutoscalingMetric `json:"metrics,omitempty"`

	// ScaleDownStabilizationSeconds is how long every recommendation must have allowed a smaller size before
	// the service shrinks (the highest recommendation in the window wins; scale-up is immediate). Pods take
	// minutes to start, so a premature scale-down followed by a burst costs latency: keep it above 120.
	// +kubebuilder:default=300
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=3600
	// +optional
	ScaleDownStabilizationSeconds *int32 `json:"scaleDownStabilizationSeconds,omitempty"`

	// Objective is the service level the scaler sizes the service for: a time to first token that a share of
	// requests should meet. The scaler estimates, from each pod's own metrics, how many pods keep that share
	// of requests within it, and scales up at once when requests queue above the RequestQueue target. Without
	// an objective, the RequestQueue target is the service level: at most that many requests waiting ahead of
	// a request in its pod, for 99 % of the requests.
	// +optional
	Objective *AutoscalingObjective `json:"objective,omitempty"`
}

// AutoscalingObjective is a time-to-first-token objective.
// +kubebuilder:validation:XValidation:rule="duration(self.timeToFirstToken) >= duration('50ms') && duration(self.timeToFirstToken) <= duration('10m')",message="objective.timeToFirstToken must be between 50ms and 10m, for example 2s"
type AutoscalingObjective struct {
	// TimeToFirstToken is the longest a request should wait for its first token, arrival to first token, as
	// vllm:time_to_first_token_seconds measures it: for example 2s for interactive chat, 10s for batch work.
	// It includes the request's own prefill, so a prompt that alone takes longer to prefill cannot meet it.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Format=duration
	TimeToFirstToken metav1.Duration `json:"timeToFirstToken"`

	// Attainment is the share of requests that should meet TimeToFirstToken, as a decimal string between 0.5
	// and 0.9999 (for example "0.99" for 99 %). The scaler plans for it; it does not guarantee it.
	// +kubebuilder:default="0.99"
	// +kubebuilder:validation:Pattern=`^0\.[0-9]{1,4}$`
	// +kubebuilder:validation:XValidation:rule="double(self) >= 0.5",message="objective.attainment must be at least 0.5 (for example \"0.99\"): below half the requests, a time to first token says little"
	// +optional
	Attainment string `json:"attainment,omitempty"`
}

// AutoscalingMetric is one scaling signal and its target. Exactly the block that matches type is set.
// +kubebuilder:validation:XValidation:rule="(self.type == 'RequestQueue') == has(self.requestQueue)",message="a RequestQueue metric needs its requestQueue block, and only a RequestQueue metric may have one"
// +kubebuilder:validation:XValidation:rule="(self.type == 'Throughput') == has(self.throughput)",message="a Throughput metric needs its throughput block, and only a Throughput metric may have one"
type AutoscalingMetric struct {
	// Type is the signal: RequestQueue (waiting requests per ready pod, scales up) or Throughput (decode
	// tokens per second per pod, allows scaling down).
	Type AutoscalingMetricType `json:"type"`

	// RequestQueue is the target of a RequestQueue metric.
	// +optional
	RequestQueue *RequestQueueTarget `json:"requestQueue,omitempty"`

	// Throughput is the target of a Throughput metric.
	// +optional
	Throughput *ThroughputTarget `json:"throughput,omitempty"`
}

// RequestQueueTarget is the queue depth a service is scaled to hold.
type RequestQueueTarget struct {
	// TargetAverageQueueDepth is the number of waiting requests (vllm:num_requests_waiting) per ready pod
	// above which the service scales up.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	TargetAverageQueueDepth int32 `json:"targetAverageQueueDepth"`
}

// ThroughputTarget is the decode throughput below which a pod is under-used.
type ThroughputTarget struct {
	// TargetDecodeTokensPerSecond is the floor of generated tokens per second per pod (the rate of
	// vllm:generation_tokens_total). Below it, and with the queue under its target, the service may shrink.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000000
	TargetDecodeTokensPerSecond int32 `json:"targetDecodeTokensPerSecond"`
}

// ModelCacheSpec is the PersistentVolumeClaim that holds downloaded weights.
// +kubebuilder:validation:XValidation:rule="!has(self.size) || !isQuantity(string(self.size)) || quantity(string(self.size)).compareTo(quantity('1Gi')) >= 0",message="modelCache.size must be at least 1Gi: it holds the model's weights (about 2 bytes per parameter in bf16, 16Gi for an 8B model); a number without a unit is bytes"
type ModelCacheSpec struct {
	// StorageClassName is the claim's storage class. Empty means the operator's --default-storage-class (the
	// chart's global.storageClass), and if that is empty too, the cluster's default class.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// Size is the claim's requested capacity; it must hold the weights (about 16 GB for an 8B model in bf16).
	// +kubebuilder:default="100Gi"
	// +optional
	Size resource.Quantity `json:"size,omitzero"`

	// AccessMode is the claim's access mode. ReadWriteOnce works with any storage class but holds every
	// replica on one node; use ReadWriteMany (NFS, CephFS, Filestore, EFS) to spread replicas over nodes.
	// +kubebuilder:default=ReadWriteOnce
	// +kubebuilder:validation:Enum=ReadWriteOnce;ReadWriteMany;ReadWriteOncePod
	// +optional
	AccessMode corev1.PersistentVolumeAccessMode `json:"accessMode,omitempty"`
}

// Condition types of an LLMInferenceService.
const (
	// ConditionReady is True when at least one replica serves requests.
	ConditionReady = "Ready"
	// ConditionAutoscaling tells whether the ScaledObject exists and why not.
	ConditionAutoscaling = "Autoscaling"
	// ConditionConfigurationWarning is True when the spec works but is likely a mistake.
	ConditionConfigurationWarning = "ConfigurationWarning"
)

// LLMInferenceServiceStatus is the observed state of a service.
type LLMInferenceServiceStatus struct {
	// ObservedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions are Ready, Autoscaling, Routing and ConfigurationWarning, each with a reason and a message.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Replicas is the number of model server pods, ready or not.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of model server pods that pass their readiness probe.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// Endpoint is the OpenAI-compatible base URL inside the cluster, for example
	// http://llama-3-8b.inference.svc.cluster.local/v1.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// Selector is the label selector of the model server pods, in string form (for the scale subresource).
	// +optional
	Selector string `json:"selector,omitempty"`

	// ScaledObject is the name of the KEDA ScaledObject that scales the service, when there is one.
	// +optional
	ScaledObject string `json:"scaledObject,omitempty"`

	// GPUProduct is the GPU the ready replicas run on, from their nodes' nvidia.com/gpu.product label (GPU
	// feature discovery), the most common one when they differ; empty when no node says. The scaler's
	// capacity model starts from what this GPU does for the model's size.
	// +optional
	GPUProduct string `json:"gpuProduct,omitempty"`

	// Autoscaler is the llm-d scaler's latest decision and the signals behind it, written by the scaler when
	// the decision changes, and when only the signals changed at most every 30 seconds.
	// +optional
	Autoscaler *AutoscalerStatus `json:"autoscaler,omitempty"`
}

// AutoscalerStatus explains the scaler's latest decision for a service.
type AutoscalerStatus struct {
	// DesiredReplicas is the replica count the scaler asks the HPA for.
	DesiredReplicas int32 `json:"desiredReplicas"`

	// Recommendation is the count the signals alone ask for, before the stabilization window and the
	// min/max bounds.
	Recommendation int32 `json:"recommendation"`

	// DemandReplicas is the service's own decision, before its pool's budget; DesiredReplicas differs from
	// it only when the pool grants less (or more, to reach minReplicas).
	// +optional
	DemandReplicas int32 `json:"demandReplicas,omitempty"`

	// Pool is the LLMInferencePool the service belongs to, if any.
	// +optional
	Pool string `json:"pool,omitempty"`

	// Rule is the rule that decided, for example ScaleUpQueue, ScaleDown, ScaleDownStabilizing,
	// StartingPodsAbsorbDemand, MissingData or WarmingUp.
	Rule string `json:"rule"`

	// Reason explains the decision in a sentence.
	Reason string `json:"reason"`

	// LastDecisionTime is when the decision shown was taken: the scaler decides every scrape interval but
	// writes only what changed.
	LastDecisionTime metav1.Time `json:"lastDecisionTime"`

	// ReadyPods, StartingPods and MissingPods count the pods the decision saw: ready, not yet ready, and
	// ready but without fresh metrics.
	ReadyPods    int32 `json:"readyPods"`
	StartingPods int32 `json:"startingPods"`
	MissingPods  int32 `json:"missingPods"`

	// WaitingPerPod is vllm:num_requests_waiting per ready pod with data, in decimal text.
	WaitingPerPod string `json:"waitingPerPod"`
	// RunningPerPod is vllm:num_requests_running per ready pod with data, in decimal text.
	RunningPerPod string `json:"runningPerPod"`
	// DecodeTokensPerSecondPerPod is the rate of vllm:generation_tokens_total per ready pod, in decimal text.
	DecodeTokensPerSecondPerPod string `json:"decodeTokensPerSecondPerPod"`
	// KVCacheUsage is the mean KV-cache usage (0 to 1) of the ready pods, in decimal text.
	KVCacheUsage string `json:"kvCacheUsage"`
}

// LLMInferenceService runs one model on vLLM: a Deployment, a Service with an OpenAI-compatible endpoint, a
// PersistentVolumeClaim that caches the weights and, with autoscaling, a KEDA ScaledObject.
//
// Its name becomes the Service's name, a DNS label (RFC 1035), and the app.kubernetes.io/instance label
// value of every object the operator creates: at most 63 characters, lowercase letters, digits and '-',
// starting with a letter. The names derived from it with a suffix (the claim <name>-model-cache, KEDA's
// HPA keda-hpa-<name>) are DNS subdomains, valid up to 253 characters, so 63 keeps every one valid.
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it names the Service (a DNS label) and is the app.kubernetes.io/instance label value of every object the operator creates"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must start with a lowercase letter and hold only lowercase letters, digits and '-' (no '.'): it names the Service, a DNS label (RFC 1035)"
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=llmdsvc;llmd,categories=llm-d
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model.id`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`,description="Replicas that serve requests"
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.status.replicas`,description="Replicas, ready or not"
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.autoscaler.desiredReplicas`,description="Replicas the llm-d scaler asks for"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,description="Reason of the Ready condition"
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.status.endpoint`,description="OpenAI-compatible base URL"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type LLMInferenceService struct {
	metav1.TypeMeta `json:",inline"`

	// Standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state.
	Spec LLMInferenceServiceSpec `json:"spec"`

	// Status is the observed state, written by the operator and the scaler.
	// +optional
	Status LLMInferenceServiceStatus `json:"status,omitzero"`
}

// LLMInferenceServiceList is a list of LLMInferenceService.
// +kubebuilder:object:root=true
type LLMInferenceServiceList struct {
	metav1.TypeMeta `json:",inline"`
	// Standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the services.
	Items []LLMInferenceService `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LLMInferenceService{}, &LLMInferenceServiceList{})
}
