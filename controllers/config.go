// Package controllers reconciles LLMInferenceServices into the Kubernetes objects that run them. Each object
// has one pure builder (spec in, object out); the reconciler only compares what it built with what exists and
// writes the difference.
package controllers

import "github.com/llm-d/llm-d/api/v1alpha1"

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
	// EPPImage is the endpoint picker (the Gateway API Inference Extension's cmd/epp) of services with
	// spec.router.
	EPPImage string
	// Gateway is the Gateway of routed services and pools whose router names none; an empty name means none.
	Gateway v1alpha1.GatewayRef
	// InferencePools reports whether the InferencePool API (inference.networking.k8s.io/v1) is served;
	// without it, routing waits and says so. Off by default: the operator turns it on when it finds the API
	// at startup, and watches InferencePools only then.
	InferencePools bool
	// HTTPRoutes reports whether the Gateway API's HTTPRoute (gateway.networking.k8s.io/v1) is served; off
	// by default, like InferencePools.
	HTTPRoutes bool
}

// DefaultEPPImage is the Gateway API Inference Extension's release of the endpoint picker that the tests run
// (hack/tools.sh epp builds the same version).
const DefaultEPPImage = "registry.k8s.io/gateway-api-inference-extension/epp:v1.5.0"

// DefaultConfig returns the configuration the operator's flags default to.
func DefaultConfig() Config {
	return Config{
		VLLMImage:     "vllm/vllm-openai:v0.11.0",
		S3Image:       "amazon/aws-cli:2.31.0",
		GCSImage:      "gcr.io/google.com/cloudsdktool/google-cloud-cli:545.0.0-slim",
		ScalerAddress: "llm-d-scaler.llm-d-system.svc:9090",
		ClusterDomain: "cluster.local",
		KEDA:          true,
		EPPImage:      DefaultEPPImage,
	}
}
