package localcluster_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	"google.golang.org/grpc"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/internal/poll"
	"github.com/llm-d/llm-d/localcluster"
	"github.com/llm-d/llm-d/proto/externalscaler"
)

// fixedScaler is a KEDA external scaler that always reports value against target, so the HPA wants
// ceil(value/target) replicas.
type fixedScaler struct {
	externalscaler.UnimplementedExternalScalerServer
	target, value int64
	calls         atomic.Int64
}

func (s *fixedScaler) IsActive(context.Context, *externalscaler.ScaledObjectRef) (*externalscaler.IsActiveResponse, error) {
	s.calls.Add(1)
	return &externalscaler.IsActiveResponse{Result: true}, nil
}

func (s *fixedScaler) GetMetricSpec(context.Context, *externalscaler.ScaledObjectRef) (*externalscaler.GetMetricSpecResponse, error) {
	s.calls.Add(1)
	return &externalscaler.GetMetricSpecResponse{MetricSpecs: []*externalscaler.MetricSpec{{MetricName: "load", TargetSize: s.target}}}, nil
}

func (s *fixedScaler) GetMetrics(_ context.Context, req *externalscaler.GetMetricsRequest) (*externalscaler.GetMetricsResponse, error) {
	s.calls.Add(1)
	return &externalscaler.GetMetricsResponse{MetricValues: []*externalscaler.MetricValue{{MetricName: req.MetricName, MetricValue: s.value}}}, nil
}

// TestKEDAScalesDeploymentOnKwokNode runs the whole autoscaling path: KEDA's operator asks an external
// scaler over gRPC, creates the HPA, the HPA controller reads the metric through the aggregated API from
// KEDA's adapter, the Deployment scales, the scheduler places the pods on a fake GPU node and kwok runs
// them with loopback pod IPs.
func TestKEDAScalesDeploymentOnKwokNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a whole local cluster with KEDA (minutes on first build, ~30s after); not in -short")
	}
	ctx := context.Background()
	start := time.Now()
	c, err := localcluster.Start(ctx, localcluster.Options{
		Nodes:         []localcluster.Node{{Name: "gpu-node-0", GPUs: 8, GPUProduct: "NVIDIA-A100-SXM4-80GB", GPUMemoryMiB: 81920}},
		HPASyncPeriod: 2 * time.Second,
		KeepDir:       os.Getenv("LLMD_KEEP_CLUSTER") != "",
		Logf:          t.Logf,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster started in %s; logs in %s", time.Since(start).Round(time.Millisecond), c.LogDir)
	t.Cleanup(func() {
		if t.Failed() {
			if err := c.Failed(); err != nil {
				t.Log(err)
			}
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})

	node := &corev1.Node{}
	if err := c.Client.Get(ctx, types.NamespacedName{Name: "gpu-node-0"}, node); err != nil {
		t.Fatal(err)
	}
	if got := node.Status.Allocatable[localcluster.ResourceGPU]; got.Value() != 8 {
		t.Fatalf("node allocatable %s = %s, want 8", localcluster.ResourceGPU, got.String())
	}
	if got := node.Labels[localcluster.LabelGPUMemory]; got != "81920" {
		t.Fatalf("node label %s = %q, want 81920", localcluster.LabelGPUMemory, got)
	}

	// A ServiceAccount's kubeconfig authenticates as that account, which RBAC has granted nothing.
	saKubeconfig, err := c.ServiceAccountKubeconfig("default", "default")
	if err != nil {
		t.Fatal(err)
	}
	saConfig, err := clientcmd.BuildConfigFromFlags("", saKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	saClient, err := client.New(saConfig, client.Options{Scheme: c.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := saClient.List(ctx, &corev1.PodList{}, client.InNamespace("default")); !apierrors.IsForbidden(err) ||
		!strings.Contains(err.Error(), "system:serviceaccount:default:default") {
		t.Fatalf("listing pods as the default ServiceAccount: got %v, want Forbidden for system:serviceaccount:default:default", err)
	}

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scaler := &fixedScaler{target: 10, value: 30}
	srv := grpc.NewServer()
	externalscaler.RegisterExternalScalerServer(srv, scaler)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	labels := map[string]string{"app": "sim"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "sim", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:  "vllm",
					Image: "vllm/vllm-openai:latest", // never pulled: kwok runs no containers
					Resources: corev1.ResourceRequirements{
						Limits: corev1.ResourceList{localcluster.ResourceGPU: resource.MustParse("1")},
					},
				}}},
			},
		},
	}
	if err := c.Client.Create(ctx, dep); err != nil {
		t.Fatal(err)
	}
	so := &kedav1alpha1.ScaledObject{
		ObjectMeta: metav1.ObjectMeta{Name: "sim", Namespace: "default"},
		Spec: kedav1alpha1.ScaledObjectSpec{
			ScaleTargetRef:  &kedav1alpha1.ScaleTarget{Name: "sim"},
			MinReplicaCount: ptr.To[int32](1),
			MaxReplicaCount: ptr.To[int32](5),
			PollingInterval: ptr.To[int32](1),
			Triggers: []kedav1alpha1.ScaleTriggers{{
				Type:     "external",
				Metadata: map[string]string{"scalerAddress": lis.Addr().String()},
			}},
		},
	}
	applied := time.Now()
	if err := c.Client.Create(ctx, so); err != nil {
		t.Fatal(err)
	}

	err = poll.Eventually(ctx, 2*time.Minute, func() error {
		return c.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "keda-hpa-sim"}, &autoscalingv2.HorizontalPodAutoscaler{})
	})
	if err != nil {
		t.Fatalf("KEDA did not create the HPA: %v", err)
	}
	cidr := netip.MustParsePrefix(c.PodCIDR)
	err = poll.Eventually(ctx, 3*time.Minute, func() error {
		d := &appsv1.Deployment{}
		if err := c.Client.Get(ctx, client.ObjectKeyFromObject(dep), d); err != nil {
			return err
		}
		if d.Spec.Replicas == nil || *d.Spec.Replicas != 3 {
			return fmt.Errorf("deployment wants %v replicas, not 3", ptr.Deref(d.Spec.Replicas, 0))
		}
		pods := &corev1.PodList{}
		if err := c.Client.List(ctx, pods, client.InNamespace("default"), client.MatchingLabels(labels)); err != nil {
			return err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
				continue
			}
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || !cidr.Contains(ip) {
				return fmt.Errorf("pod %s runs with IP %q, not in %s", p.Name, p.Status.PodIP, cidr)
			}
			if p.Spec.NodeName != "gpu-node-0" {
				return fmt.Errorf("pod %s is on node %q", p.Name, p.Spec.NodeName)
			}
			running++
		}
		if running != 3 {
			return fmt.Errorf("%d of %d pods running, want 3", running, len(pods.Items))
		}
		return nil
	})
	if err != nil {
		hpa := &autoscalingv2.HorizontalPodAutoscaler{}
		_ = c.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "keda-hpa-sim"}, hpa)
		t.Fatalf("deployment did not reach 3 running pods: %v\nHPA status: %+v\nscaler calls: %d", err, hpa.Status, scaler.calls.Load())
	}
	t.Logf("1 -> 3 running pods %s after the ScaledObject was applied", time.Since(applied).Round(time.Millisecond))
}
