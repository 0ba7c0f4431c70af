package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/internal/repo"
)

// applyInto creates a sample manifest verbatim except for its namespace.
func applyInto(t *testing.T, file, ns string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo.Root(), "config", "samples", file))
	must(t, err)
	u := &unstructured.Unstructured{}
	must(t, yaml.Unmarshal(data, &u.Object))
	u.SetNamespace(ns)
	must(t, k8s.Create(context.Background(), u))
}

func poolReady(t *testing.T, ns, name, reason string) *v1alpha1.LLMInferencePool {
	t.Helper()
	p := &v1alpha1.LLMInferencePool{}
	eventually(t, "pool condition "+reason, func() error {
		if err := get(p, ns, name); err != nil {
			return err
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConditionReady)
		if c == nil || c.Reason != reason || p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("ready condition %+v", c)
		}
		return nil
	})
	return p
}

func readyMessage(p *v1alpha1.LLMInferencePool) string {
	return meta.FindStatusCondition(p.Status.Conditions, v1alpha1.PoolConditionReady).Message
}

// The sample production-pool, verbatim, with its two members.
func TestProductionPool(t *testing.T) {
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token-secret")
	applyInto(t, "production-pool.yaml", ns)
	p := poolReady(t, ns, "production-pool", controllers.ReasonMemberNotFound)
	if !strings.Contains(readyMessage(p), ns+"/llama-3-8b not found") || !strings.Contains(readyMessage(p), "phi-3-mini") {
		t.Errorf("message %q", readyMessage(p))
	}
	applyInto(t, "llama-3-8b-autoscaling.yaml", ns)
	applyInto(t, "phi-3-mini.yaml", ns)
	p = poolReady(t, ns, "production-pool", controllers.ReasonMembersFit)
	shares := map[string]int64{}
	for _, m := range p.Status.Members {
		shares[m.Name] = m.ShareGPUs
		if m.GPUsPerReplica != 1 || m.VRAMPerGPU == "" {
			t.Errorf("member %+v", m)
		}
	}
	if shares["llama-3-8b"] != 2 || shares["phi-3-mini"] != 1 { // floor(4 x 60 %) and floor(4 x 40 %)
		t.Errorf("shares %v", shares)
	}
	if !strings.Contains(readyMessage(p), "at their minimums (2 GPUs)") {
		t.Errorf("message %q", readyMessage(p))
	}
}

func TestPoolProblems(t *testing.T) {
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token-secret")
	applyInto(t, "llama-3-8b-autoscaling.yaml", ns)
	applyInto(t, "phi-3-mini.yaml", ns)

	// A budget too small for the minimums says by how much.
	small := &v1alpha1.LLMInferencePool{}
	small.Namespace, small.Name = ns, "small"
	small.Spec.Services = []v1alpha1.PoolMember{{Name: "llama-3-8b", Weight: 1}, {Name: "phi-3-mini", Weight: 1}}
	small.Spec.ResourcePolicy.GPUBudget = resource.MustParse("1")
	must(t, k8s.Create(context.Background(), small))
	p := poolReady(t, ns, "small", controllers.ReasonBudgetBelowMinimums)
	if !strings.Contains(readyMessage(p), "need 2 GPUs and gpuBudget is 1: raise gpuBudget by 1") {
		t.Errorf("message %q", readyMessage(p))
	}

	// The same service in a second pool is reported on both.
	second := small.DeepCopy()
	second.ResourceVersion, second.Name = "", "second"
	second.Spec.Services = second.Spec.Services[:1]
	second.Spec.ResourcePolicy.GPUBudget = resource.MustParse("8")
	must(t, k8s.Create(context.Background(), second))
	p = poolReady(t, ns, "second", controllers.ReasonMemberInMultiplePools)
	if !strings.Contains(readyMessage(p), "llama-3-8b is also a member of pool small") {
		t.Errorf("message %q", readyMessage(p))
	}
	p = poolReady(t, ns, "small", controllers.ReasonMemberInMultiplePools)
	if !strings.Contains(readyMessage(p), "raise gpuBudget by 1") {
		t.Errorf("every problem is listed: %q", readyMessage(p))
	}
	warningEvent(t, ns, "second", controllers.ReasonMemberInMultiplePools, "llama-3-8b")
}

func TestPoolRejectsBadBudgets(t *testing.T) {
	ns := namespace(t, "")
	for _, budget := range []string{"0", "1.5", "500m"} {
		p := &v1alpha1.LLMInferencePool{}
		p.Namespace, p.Name = ns, "bad"
		p.Spec.Services = []v1alpha1.PoolMember{{Name: "a"}}
		p.Spec.ResourcePolicy.GPUBudget = resource.MustParse(budget)
		err := k8s.Create(context.Background(), p)
		if err == nil || !strings.Contains(err.Error(), "gpuBudget must be a whole number of GPUs above 0") {
			t.Errorf("budget %s: %v", budget, err)
		}
	}
	p := &v1alpha1.LLMInferencePool{}
	p.Namespace, p.Name = ns, "bad-priority"
	p.Spec.Services = []v1alpha1.PoolMember{{Name: "a", Priority: "urgent"}}
	p.Spec.ResourcePolicy.GPUBudget = resource.MustParse("1")
	if err := k8s.Create(context.Background(), p); err == nil || !strings.Contains(err.Error(), `Unsupported value: "urgent"`) {
		t.Errorf("priority: %v", err)
	}
	// A member no service can be named like.
	p = &v1alpha1.LLMInferencePool{}
	p.Namespace, p.Name = ns, "bad-member"
	p.Spec.Services = []v1alpha1.PoolMember{{Name: "llama-3.1-8b"}}
	p.Spec.ResourcePolicy.GPUBudget = resource.MustParse("1")
	if err := k8s.Create(context.Background(), p); err == nil || !strings.Contains(err.Error(), "a member names an LLMInferenceService") {
		t.Errorf("member name with a dot: %v", err)
	}
}

// A model that fits no GPU of the cluster is refused with the numbers before any pod exists, on the
// service and on its pool; two models that would share a time-sliced GPU must fit it together.
func TestVRAMMisfit(t *testing.T) {
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token-secret")
	s := sample(t, "llama-3-8b.yaml")
	s.Namespace, s.Name = ns, "llama-70b"
	s.Spec.Model.ID = "meta-llama/Meta-Llama-3.1-70B-Instruct"
	must(t, k8s.Create(context.Background(), s))
	c := condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonVRAMMisfit)
	if !strings.Contains(c.Message, "needs 141.4Gi per GPU") || !strings.Contains(c.Message, "nvidia.com/gpu.memory=81920") {
		t.Errorf("message %q", c.Message)
	}
	warningEvent(t, ns, s.Name, controllers.ReasonVRAMMisfit, "raise --tensor-parallel-size")
	if err := get(&appsv1.Deployment{}, ns, s.Name); isNotFound(err) != nil {
		t.Fatalf("a Deployment exists for a model that cannot fit: %v", err)
	}
	// With the advice taken, it runs.
	edit(t, ns, s.Name, func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Engine.Args = append(s.Spec.Engine.Args, "--tensor-parallel-size=4")
	})
	deployment(t, ns, s.Name)

	// Shared GPUs: a node time-slicing 24 GB GPUs among 2 pods cannot hold llama-3-8b (32k) and phi-3-mini together.
	must(t, k8s.Create(context.Background(), gpuNode("gpu-shared-a10g", "23028", "2")))
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), gpuNode("gpu-shared-a10g", "", "")) })
	applyInto(t, "llama-3-8b-autoscaling.yaml", ns)
	applyInto(t, "phi-3-mini.yaml", ns)
	pool := &v1alpha1.LLMInferencePool{}
	pool.Namespace, pool.Name = ns, "shared"
	pool.Spec.Services = []v1alpha1.PoolMember{{Name: "llama-3-8b", Weight: 1}, {Name: "phi-3-mini", Weight: 1}}
	pool.Spec.ResourcePolicy.GPUBudget = resource.MustParse("4")
	must(t, k8s.Create(context.Background(), pool))
	p := poolReady(t, ns, "shared", controllers.ReasonVRAMMisfit)
	if !strings.Contains(readyMessage(p), "node gpu-shared-a10g shares each GPU among 2 pods") || !strings.Contains(readyMessage(p), "llama-3-8b (19.9Gi) and phi-3-mini (9.6Gi)") {
		t.Errorf("message %q", readyMessage(p))
	}
}
