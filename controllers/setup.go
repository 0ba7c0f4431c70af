package controllers

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CacheOptions limit the operator's cache of pods to model server pods: it never holds the cluster's others.
func CacheOptions() cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{&corev1.Pod{}: {Label: ServerPods()}}}
}

// Setup registers everything the operator runs with mgr (whose cache must use CacheOptions): the service
// and pool reconcilers and the pod timings, whose metrics go to reg. cmd/operator and the tests that run the
// operator under its chart's RBAC call the same function.
func Setup(mgr ctrl.Manager, cfg Config, reg prometheus.Registerer) error {
	rec := mgr.GetEventRecorder("llm-d-operator")
	if err := (&LLMInferenceServiceReconciler{Client: mgr.GetClient(), Recorder: rec, Config: cfg}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LLMInferenceService controller: %w", err)
	}
	if err := (&LLMInferencePoolReconciler{Client: mgr.GetClient(), Recorder: rec}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the LLMInferencePool controller: %w", err)
	}
	timings, err := NewPodTimings(mgr.GetClient(), reg, time.Now())
	if err != nil {
		return err
	}
	if err := timings.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the pod timings controller: %w", err)
	}
	return nil
}
