package controllers

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

// defaultCacheSize matches the CRD default, for objects that reach the builder without API-server defaulting.
var defaultCacheSize = resource.MustParse("100Gi")

// BuildModelCache builds the PersistentVolumeClaim that caches a service's weights across pod restarts.
func BuildModelCache(svc *v1alpha1.LLMInferenceService, cfg Config) *corev1.PersistentVolumeClaim {
	size := cacheSize(svc)
	class := svc.Spec.ModelCache.StorageClassName
	if class == nil && cfg.DefaultStorageClass != "" {
		class = &cfg.DefaultStorageClass
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ModelCacheName(svc),
			Namespace: svc.Namespace,
			Labels:    Labels(svc, "model-cache"),
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{accessMode(svc)},
			StorageClassName: class,
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: size},
			},
		},
	}
}

// cacheSize is the model cache's requested size.
func cacheSize(svc *v1alpha1.LLMInferenceService) resource.Quantity {
	if svc.Spec.ModelCache.Size.IsZero() {
		return defaultCacheSize
	}
	return svc.Spec.ModelCache.Size
}

func accessMode(svc *v1alpha1.LLMInferenceService) corev1.PersistentVolumeAccessMode {
	if svc.Spec.ModelCache.AccessMode == "" {
		return corev1.ReadWriteOnce
	}
	return svc.Spec.ModelCache.AccessMode
}
