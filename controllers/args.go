package controllers

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/vram"
)

// reservedFlags are the vLLM flags the operator sets itself: the probes and the Service depend on --port,
// and --model (with --served-model-name for object-store sources) is what clients name in requests.
func reservedFlags(svc *v1alpha1.LLMInferenceService) map[string]string {
	r := map[string]string{
		"--model": "model.id sets it",
		"--port":  fmt.Sprintf("the probes and the Service use port %d", contract.HTTPPort),
	}
	if svc.Spec.Model.Source.Type == v1alpha1.ModelSourceS3 || svc.Spec.Model.Source.Type == v1alpha1.ModelSourceGCS {
		r["--served-model-name"] = "model.id sets it for object-store sources"
	}
	return r
}

// userArgs returns the user's engine args without the flags the operator owns, in their original order, and
// a description of each dropped flag. A reserved flag written as two tokens ("--port 9000") drops both.
func userArgs(svc *v1alpha1.LLMInferenceService) (kept []string, dropped []string) {
	reserved := reservedFlags(svc)
	args := svc.Spec.Engine.Args
	for i := 0; i < len(args); i++ {
		name, inline := vram.FlagName(args[i])
		why, isReserved := reserved[name]
		if !isReserved {
			kept = append(kept, args[i])
			continue
		}
		text := args[i]
		if !inline && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			i++
			text += " " + args[i]
		}
		dropped = append(dropped, fmt.Sprintf("%s (%s)", text, why))
	}
	return kept, dropped
}

// hasFlag reports whether args set the flag name in either spelling.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		if n, _ := vram.FlagName(a); n == name {
			return true
		}
	}
	return false
}

// ConfigurationWarnings lists what in a valid spec is likely a mistake, each with what to do about it.
func ConfigurationWarnings(svc *v1alpha1.LLMInferenceService) []string {
	var w []string
	if _, dropped := userArgs(svc); len(dropped) > 0 {
		w = append(w, "engine.args: ignored "+strings.Join(dropped, ", ")+"; remove them")
	}
	if !hasFlag(svc.Spec.Engine.Args, "--max-model-len") {
		w = append(w, "engine.args has no --max-model-len: vLLM then reserves KV cache for the model's whole "+
			"context window, which may not fit or leaves room for few requests; set it, e.g. --max-model-len=32768")
	}
	if v, ok := vram.Estimate(svc); ok {
		if size := cacheSize(svc); size.Value() < v.WeightsBytes {
			w = append(w, fmt.Sprintf("modelCache.size is %s but the weights alone take about %s: the download "+
				"would fill the claim and fail; raise modelCache.size", size.String(), vram.GiB(v.WeightsBytes)))
		}
	}
	if accessMode(svc) != corev1.ReadWriteMany && maxReplicas(svc) > 1 {
		w = append(w, fmt.Sprintf("modelCache.accessMode is %s and the service may run %d replicas: they can "+
			"only share the cache on one node; use ReadWriteMany to spread them over nodes",
			accessMode(svc), maxReplicas(svc)))
	}
	return w
}

// maxReplicas is the most replicas the service can run under its current spec.
func maxReplicas(svc *v1alpha1.LLMInferenceService) int32 {
	if a := svc.Spec.Autoscaling; a != nil && a.Enabled {
		return a.MaxReplicas
	}
	return replicas(svc)
}

func replicas(svc *v1alpha1.LLMInferenceService) int32 {
	if svc.Spec.Replicas == nil {
		return 1
	}
	return *svc.Spec.Replicas
}
