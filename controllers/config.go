// Package controllers reconciles LLMInferenceServices into the Kubernetes objects that run them. Each object
// has one pure builder (spec in, object out); the reconciler only compares what it built with what exists and
// writes the difference.
package controllers

// Config is the operator-wide configuration, set by cmd/operator's flags (and so by the chart's values).
type Config struct {
	// VLLMImage is the engine image used when a service does not name one.
	VLLMImage string
	// S3Image and GCSImage run the init container that copies weights from object storage into the cache.
	S3Image  string
	GCSImage string
	// ScalerAddress is host:port of the llm-d scaler's gRPC service, written into every ScaledObject trigger.
	ScalerAddress string
	// DefaultStorageClass is the model-cache class for services that name none; empty means the cluster default.
	DefaultStorageClass string
	// ClusterDomain is the cluster's DNS suffix, used in the endpoint URL shown in status.
	ClusterDomain string
	// ScalerTLSSecret, when set, turns on mutual TLS between KEDA and the scaler: the name of the Secret in
	// KEDA's namespace holding ca.crt, tls.crt and tls.key for KEDA's side. Triggers then dial with TLS and
	// refer to the ClusterTriggerAuthentication the operator writes from it.
	ScalerTLSSecret string
	// KEDA reports whether KEDA's ScaledObject API is served; without it, autoscaling waits and says so.
	KEDA bool
}

// DefaultConfig returns the configuration the operator's flags default to.
func DefaultConfig() Config {
	return Config{
		VLLMImage:     "vllm/vllm-openai:v0.11.0",
		S3Image:       "amazon/aws-cli:2.31.0",
		GCSImage:      "gcr.io/google.com/cloudsdktool/google-cloud-cli:545.0.0-slim",
		ScalerAddress: "llm-d-scaler.llm-d-system.svc:9090",
		ClusterDomain: "cluster.local",
		KEDA:          true,
	}
}
