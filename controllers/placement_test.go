package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/test/testenv"
)

// Where model server pods land, decided by the real kube-scheduler on a control plane of the test's own
// (the suite's has no scheduler, and its GPU node would take part):
//   - with no node labelled with its GPU memory, a model no GPU can hold (405B parameters on one GPU, about
//     810 GB of bf16 weights) is refused: Ready=False VRAMMisfit, a Warning event, no Deployment;
//   - GPU nodes without nvidia.com/gpu.memory still take pods (a cluster without GPU feature discovery);
//   - with a 24 GB and an 80 GB node, a model that needs about 40 GB per GPU lands on the 80 GB node only;
//   - status.gpuProduct names the GPU most of the ready pods run on (nvidia.com/gpu.product).
func TestGPUPlacementOnTheRealScheduler(t *testing.T) {
	e, err := testenv.Start(testenv.Options{Controllers: []string{"deployment", "replicaset", "persistentvolume-binder"}, Scheduler: true, Routing: true})
	must(t, err)
	t.Cleanup(func() { _ = e.Stop() })
	c := e.Client
	ctx := context.Background()
	mgr, err := ctrl.NewManager(e.Config, ctrl.Options{Scheme: e.Scheme, Metrics: metricsserver.Options{BindAddress: "0"},
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)}})
	must(t, err)
	opCfg := cfg
	opCfg.DefaultStorageClass = ""
	must(t, (&controllers.LLMInferenceServiceReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("llm-d-operator"), Config: opCfg}).SetupWithManager(mgr))
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = mgr.Start(mctx) }()
	t.Cleanup(func() { cancel(); <-done })

	const ns = "placement"
	must(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	service := func(name, id string, replicas int32, args ...string) *v1alpha1.LLMInferenceService {
		s := &v1alpha1.LLMInferenceService{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: v1alpha1.LLMInferenceServiceSpec{
				Model:     v1alpha1.ModelSpec{ID: id},
				Engine:    v1alpha1.EngineSpec{Args: args},
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{contract.GPUResource: resource.MustParse("1")}},
				Replicas:  ptr.To(replicas),
			},
		}
		must(t, c.Create(ctx, s))
		return s
	}
	poll := func(what string, f func() error) {
		t.Helper()
		if err := poll.Eventually(ctx, timeout, f); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// No node says how much memory its GPUs have: the weights alone exceed any GPU.
	huge := service("llama-405b", "meta-llama/Llama-3.1-405B-Instruct", 1, "--max-model-len=8192")
	poll("Ready=False VRAMMisfit", func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(huge), s); err != nil {
			return err
		}
		r := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
		if r == nil || r.Status != metav1.ConditionFalse || r.Reason != controllers.ReasonVRAMMisfit || !strings.Contains(r.Message, "largest GPU made") {
			return fmt.Errorf("Ready %+v", r)
		}
		return nil
	})
	poll("a VRAMMisfit Warning event", func() error {
		evs := &eventsv1.EventList{}
		if err := c.List(ctx, evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.Regarding.Name == huge.Name && ev.Type == corev1.EventTypeWarning && ev.Reason == controllers.ReasonVRAMMisfit {
				return nil
			}
		}
		return errors.New("no event yet")
	})
	if err := c.Get(ctx, client.ObjectKeyFromObject(huge), &appsv1.Deployment{}); isNotFound(err) != nil {
		t.Fatalf("a Deployment for a model no GPU can hold: %v", err)
	}

	// A GPU node without the label: the affinity's DoesNotExist term lets pods onto it.
	addGPUNode(t, c, "gpu-unlabelled", "", "")
	// Qwen2.5 32B in fp8 with a 16k context: 29.8 GiB weights + 5 GiB KV cache + 1 GiB, /0.9 = ~40 GiB per GPU.
	const mid = "qwen-32b"
	service(mid, "Qwen/Qwen2.5-32B-Instruct", 2, "--quantization=fp8", "--max-model-len=16384")
	modelCacheVolume(t, c, ns, mid)
	poll("both pods on the unlabelled node", func() error { return placed(ctx, c, ns, mid, map[string]int{"gpu-unlabelled": 2}) })

	// Nodes with feature discovery's label; the unlabelled one is cordoned so the new pods choose between them.
	addGPUNode(t, c, "gpu-24gb", "23028", "NVIDIA-A10G")
	addGPUNode(t, c, "gpu-80gb", "81920", "NVIDIA-A100-SXM4-80GB")
	node := &corev1.Node{}
	must(t, c.Get(ctx, types.NamespacedName{Name: "gpu-unlabelled"}, node))
	node.Spec.Unschedulable = true
	must(t, c.Update(ctx, node))
	poll("scale to 6", func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: mid}, s); err != nil {
			return err
		}
		s.Spec.Replicas = ptr.To[int32](6)
		return c.Update(ctx, s)
	})
	poll("the 4 new pods on the 80 GB node only", func() error {
		return placed(ctx, c, ns, mid, map[string]int{"gpu-unlabelled": 2, "gpu-80gb": 4})
	})

	// Every pod ready, the most on the A100 node: the service reports that GPU.
	pods := &corev1.PodList{}
	must(t, c.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{contract.LabelInstance: mid}))
	for i := range pods.Items {
		p := &pods.Items[i]
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}
		must(t, c.Status().Update(ctx, p))
	}
	poll("status.gpuProduct", func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: mid}, s); err != nil {
			return err
		}
		if s.Status.GPUProduct != "NVIDIA-A100-SXM4-80GB" {
			return fmt.Errorf("status.gpuProduct %q", s.Status.GPUProduct)
		}
		return nil
	})
}

// addGPUNode registers a node with 8 GPUs, as a kubelet with NVIDIA's device plugin would, labelled with
// feature discovery's nvidia.com/gpu.memory and nvidia.com/gpu.product when memMiB and product are set,
// and clears the not-ready taint the API server puts on a new node (no node controller runs here to lift it).
func addGPUNode(t *testing.T, c client.Client, name, memMiB, product string) {
	t.Helper()
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("512Gi"),
		corev1.ResourcePods: resource.MustParse("110"), contract.GPUResource: resource.MustParse("8")}
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}},
		Status: corev1.NodeStatus{Capacity: res, Allocatable: res,
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, LastHeartbeatTime: metav1.Now()}}},
	}
	if memMiB != "" {
		n.Labels[contract.LabelGPUMemory] = memMiB
	}
	if product != "" {
		n.Labels[contract.LabelGPUProduct] = product
	}
	must(t, c.Create(context.Background(), n))
	if err := poll.Eventually(context.Background(), timeout, func() error {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(n), n); err != nil {
			return err
		}
		n.Spec.Taints = nil
		return c.Update(context.Background(), n)
	}); err != nil {
		t.Fatal(err)
	}
}

// modelCacheVolume creates a volume bound in advance to the service's model-cache claim: the control
// plane has no storage provisioner, and the scheduler places no pod whose claim is unbound.
func modelCacheVolume(t *testing.T, c client.Client, ns, name string) {
	t.Helper()
	must(t, c.Create(context.Background(), &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Ti")},
			AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/nonexistent/llm-d"}},
			ClaimRef:               &corev1.ObjectReference{Namespace: ns, Name: name + "-model-cache"},
		},
	}))
}

// placed checks that the service's pods are bound to nodes exactly as want counts them.
func placed(ctx context.Context, c client.Client, ns, name string, want map[string]int) error {
	pods := &corev1.PodList{}
	if err := c.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{contract.LabelInstance: name}); err != nil {
		return err
	}
	got := map[string]int{}
	for _, p := range pods.Items {
		got[p.Spec.NodeName]++
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		return fmt.Errorf("pods per node %v, want %v", got, want)
	}
	return nil
}
