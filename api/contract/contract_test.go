package contract_test

import (
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/internal/repo"
)

// The CRD's default for scaleDownStabilizationSeconds (a +kubebuilder:default marker, which cannot name a Go
// constant) is the scaler's default for services the API server did not default.
func TestDefaultScaleDownWindowIsTheCRDs(t *testing.T) {
	file := filepath.Join(repo.Root(), "config", "crd", "bases", "inference.llm-d.ai_llminferenceservices.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema schema `json:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(data, &crd); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if len(crd.Spec.Versions) == 0 {
		t.Fatalf("%s has no versions", file)
	}
	for _, v := range crd.Spec.Versions {
		field := v.Schema.OpenAPIV3Schema.Properties["spec"].Properties["autoscaling"].Properties["scaleDownStabilizationSeconds"]
		if field.Default != float64(contract.DefaultScaleDownStabilizationSeconds) {
			t.Errorf("%s: version %s defaults spec.autoscaling.scaleDownStabilizationSeconds to %v, contract.DefaultScaleDownStabilizationSeconds is %d: "+
				"change both (the +kubebuilder:default marker in api/v1alpha1, then make manifests)",
				file, v.Name, field.Default, contract.DefaultScaleDownStabilizationSeconds)
		}
	}
}

type schema struct {
	Properties map[string]schema
	Default    any // a number here, an object or list elsewhere
}

func TestGPUsPerReplica(t *testing.T) {
	gpus := func(n string) corev1.ResourceList {
		return corev1.ResourceList{contract.GPUResource: resource.MustParse(n)}
	}
	for _, c := range []struct {
		name string
		r    corev1.ResourceRequirements
		want int64
	}{
		{"none", corev1.ResourceRequirements{}, 0},
		{"limit only (the API server copies it into requests)", corev1.ResourceRequirements{Limits: gpus("2")}, 2},
		{"request only", corev1.ResourceRequirements{Requests: gpus("1")}, 1},
		{"limit wins", corev1.ResourceRequirements{Limits: gpus("4"), Requests: gpus("4")}, 4},
		{"CPU only", corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}}, 0},
	} {
		if got := contract.GPUsPerReplica(c.r); got != c.want {
			t.Errorf("%s: GPUsPerReplica = %d, want %d", c.name, got, c.want)
		}
	}
}
