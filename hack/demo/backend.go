package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/sandbox"
	"github.com/llm-d/llm-d/scaler/vllmmetrics"
)

// samples are the manifests the demo applies: llama-3-8b with its autoscaling block, a second model, and the
// production pool of the two.
var samples = []string{"llama-3-8b-autoscaling.yaml", "phi-3-mini.yaml", "production-pool.yaml"}

// backend is where the demo's services run: real pods on a real node, or kwok's fake pods served by the
// fleet of simulated servers.
type backend interface {
	client() client.Client
	logDir() string
	// deploy applies the samples with the demo's scale-down window and returns the services.
	deploy(ctx context.Context, window time.Duration) ([]*v1alpha1.LLMInferenceService, error)
	// serving reports whether one of the service's pods serves requests.
	serving(ctx context.Context, svc *v1alpha1.LLMInferenceService) bool
	// url is the base URL that spreads requests over the service's ready pods, as its Service does.
	url(ctx context.Context, svc *v1alpha1.LLMInferenceService) (string, error)
	// load is what the service's pods have waiting and running now.
	load(ctx context.Context, svc *v1alpha1.LLMInferenceService) (waiting, running float64)
	stop()
}

// kwokBackend runs llm-d's binaries on the machine and the model servers as kwok pods with simulated servers.
type kwokBackend struct{ stack *sandbox.Stack }

func startKwok(ctx context.Context, say func(string, ...any)) (backend, error) {
	stack, err := sandbox.Start(ctx, sandbox.Options{HPASyncPeriod: 5 * time.Second, ScrapeInterval: 2 * time.Second, Speed: 10, MutualTLS: true,
		StartupDelay: 30 * time.Second, Logf: say})
	if err != nil {
		return nil, err
	}
	return &kwokBackend{stack}, nil
}

func (b *kwokBackend) client() client.Client { return b.stack.Cluster.Client }
func (b *kwokBackend) logDir() string        { return b.stack.Cluster.LogDir }
func (b *kwokBackend) stop()                 { b.stack.Stop() }

func (b *kwokBackend) deploy(ctx context.Context, window time.Duration) ([]*v1alpha1.LLMInferenceService, error) {
	var services []*v1alpha1.LLMInferenceService
	k := b.client()
	for _, f := range samples[:2] {
		svc := &v1alpha1.LLMInferenceService{}
		if err := sample(f, svc); err != nil {
			return nil, err
		}
		w := int32(window / time.Second)
		svc.Spec.Autoscaling.ScaleDownStabilizationSeconds = &w
		if err := b.stack.ModelCacheVolume(ctx, ns, svc.Name); err != nil {
			return nil, err
		}
		if err := k.Create(ctx, svc); err != nil {
			return nil, err
		}
		services = append(services, svc)
	}
	pool := &v1alpha1.LLMInferencePool{}
	if err := sample(samples[2], pool); err != nil {
		return nil, err
	}
	return services, k.Create(ctx, pool)
}

// serving: kwok marks a pod Ready at once; its simulated vLLM serves only after its model load.
func (b *kwokBackend) serving(_ context.Context, svc *v1alpha1.LLMInferenceService) bool {
	for _, p := range b.stack.Fleet.Snapshot() {
		if p.Service == svc.Name && p.Ready {
			return true
		}
	}
	return false
}

func (b *kwokBackend) url(_ context.Context, svc *v1alpha1.LLMInferenceService) (string, error) {
	return b.stack.FrontDoor(ns, svc.Name)
}

func (b *kwokBackend) load(_ context.Context, svc *v1alpha1.LLMInferenceService) (waiting, running float64) {
	for _, p := range b.stack.Fleet.Snapshot() {
		if p.Service == svc.Name && p.Namespace == svc.Namespace {
			waiting += p.Waiting
			running += p.Running
		}
	}
	return waiting, running
}

// realBackend is llm-d installed by helm on a real node: every component and model server is a pod.
type realBackend struct {
	in *sandbox.Installation
	hc *http.Client
}

func startReal(ctx context.Context, say func(string, ...any)) (backend, error) {
	in, err := sandbox.Install(ctx, sandbox.InstallOptions{GPUs: 8, Volumes: 2, HPASyncPeriod: 5 * time.Second, Logf: say})
	if err != nil {
		return nil, err
	}
	return &realBackend{in: in, hc: &http.Client{Timeout: 2 * time.Second}}, nil
}

func (b *realBackend) client() client.Client { return b.in.Cluster.Client }
func (b *realBackend) logDir() string        { return b.in.Cluster.LogDir }
func (b *realBackend) stop()                 { _ = b.in.Stop() }

// deploy applies the manifests verbatim, then shortens each service's window as an operator would patch it.
func (b *realBackend) deploy(ctx context.Context, window time.Duration) ([]*v1alpha1.LLMInferenceService, error) {
	for _, f := range samples {
		if err := b.in.ApplySample(ctx, f); err != nil {
			return nil, err
		}
	}
	var services []*v1alpha1.LLMInferenceService
	for _, name := range []string{"llama-3-8b", "phi-3-mini"} {
		svc := &v1alpha1.LLMInferenceService{}
		svc.Namespace, svc.Name = ns, name
		patch := fmt.Appendf(nil, `{"spec":{"autoscaling":{"scaleDownStabilizationSeconds":%d}}}`, int(window/time.Second))
		if err := b.client().Patch(ctx, svc, client.RawPatch(types.MergePatchType, patch)); err != nil {
			return nil, err
		}
		services = append(services, svc)
	}
	return services, nil
}

func (b *realBackend) serving(ctx context.Context, svc *v1alpha1.LLMInferenceService) bool {
	s := &v1alpha1.LLMInferenceService{}
	return b.client().Get(ctx, client.ObjectKeyFromObject(svc), s) == nil && s.Status.ReadyReplicas > 0
}

func (b *realBackend) url(ctx context.Context, svc *v1alpha1.LLMInferenceService) (string, error) {
	return b.in.ServiceURL(ctx, svc.Namespace, svc.Name)
}

// load scrapes each running pod's vLLM metrics at its IP, as the scaler does.
func (b *realBackend) load(ctx context.Context, svc *v1alpha1.LLMInferenceService) (waiting, running float64) {
	pods := &corev1.PodList{}
	if err := b.client().List(ctx, pods, client.InNamespace(svc.Namespace), client.MatchingLabels{"app.kubernetes.io/instance": svc.Name}); err != nil {
		return 0, 0
	}
	for _, p := range pods.Items {
		if p.Status.PodIP == "" {
			continue
		}
		resp, err := b.hc.Get("http://" + p.Status.PodIP + ":8000/metrics")
		if err != nil {
			continue
		}
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if m, err := vllmmetrics.Parse(body.Bytes()); err == nil {
			waiting += m.Waiting
			running += m.Running
		}
	}
	return waiting, running
}
