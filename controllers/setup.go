package controllers

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/contract"
)

// CacheOptions limit the operator's cache to what it manages: model server and endpoint picker pods, and its
// own ConfigMaps, ServiceAccounts, Roles and RoleBindings, never the cluster's others.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{contract.LabelManagedBy: contract.ManagedByValue})
	pods, err := labels.Parse(fmt.Sprintf("%s=%s,%s in (%s,%s)", contract.LabelManagedBy, contract.ManagedByValue,
		LabelComponent, ComponentServer, ComponentPicker))
	if err != nil {
		panic(err) // a constant selector
	}
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}:            {Label: pods},
		&corev1.ConfigMap{}:      {Label: managed},
		&corev1.ServiceAccount{}: {Label: managed},
		&rbacv1.Role{}:           {Label: managed},
		&rbacv1.RoleBinding{}:    {Label: managed},
	}}
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
