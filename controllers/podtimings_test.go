package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/controllers"
)

// The operator's startup metrics come from a real pod's status as the kubelet writes it: the pod the
// real Deployment and ReplicaSet controllers created for the sample llama-3-8b.
func TestPodTimings(t *testing.T) {
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token-secret")
	svc := sample(t, "llama-3-8b.yaml")
	svc.Namespace = ns
	must(t, k8s.Create(context.Background(), svc))

	var pod corev1.Pod
	eventually(t, "a pod of the service", func() error {
		pods := &corev1.PodList{}
		if err := k8s.List(context.Background(), pods, client.InNamespace(ns), client.MatchingLabels{contract.LabelInstance: svc.Name}); err != nil {
			return err
		}
		if len(pods.Items) == 0 {
			return errString("no pod yet")
		}
		pod = pods.Items[0]
		return nil
	})
	created := pod.CreationTimestamp.Time

	reg := prometheus.NewPedanticRegistry()
	timings, err := controllers.NewPodTimings(k8s, reg, created.Add(-time.Minute))
	must(t, err)
	reconcile := func() {
		t.Helper()
		_, err := timings.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: pod.Name}})
		must(t, err)
	}

	// Pending, the download still running: nothing to observe yet.
	must(t, get(&pod, ns, pod.Name))
	pod.Status.Phase = corev1.PodPending
	pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: controllers.DownloadContainerName,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(created.Add(5 * time.Second))}}}}
	must(t, k8s.Status().Update(context.Background(), &pod))
	reconcile()
	if n := series(t, reg); n != 0 {
		t.Fatalf("%d series before anything finished", n)
	}

	// Download done in 40 s, Ready 95 s after creation.
	must(t, get(&pod, ns, pod.Name))
	pod.Status.Phase = corev1.PodRunning
	pod.Status.InitContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 0, StartedAt: metav1.NewTime(created.Add(5 * time.Second)), FinishedAt: metav1.NewTime(created.Add(45 * time.Second)),
	}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(created.Add(95 * time.Second))}}
	must(t, k8s.Status().Update(context.Background(), &pod))
	reconcile()
	reconcile() // every later event of the same pod must not count it again

	for metric, sum := range map[string]float64{controllers.MetricPodStartup: 95, controllers.MetricModelDownload: 40} {
		h := histogram(t, reg, metric)
		if h.GetSampleCount() != 1 || h.GetSampleSum() != sum {
			t.Errorf("%s: count %d sum %v, want 1 observation of %v", metric, h.GetSampleCount(), h.GetSampleSum(), sum)
		}
		if got := labelsOf(t, reg, metric); got != "namespace="+ns+",service="+svc.Name {
			t.Errorf("%s labels: %s", metric, got)
		}
	}

	// An operator that starts after the pod was Ready does not replay it.
	lateReg := prometheus.NewPedanticRegistry()
	late, err := controllers.NewPodTimings(k8s, lateReg, created.Add(10*time.Minute))
	must(t, err)
	late.Observe(&pod)
	if n := series(t, lateReg); n != 0 {
		t.Errorf("a restarted operator replayed %d observations of an old pod", n)
	}
}

// A failed download is not a download time, and a pod that never became Ready has no startup time.
func TestPodTimingsFailedDownload(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	timings, err := controllers.NewPodTimings(nil, reg, time.Unix(0, 0))
	must(t, err)
	created := time.Unix(1000, 0)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "p", UID: "u1", CreationTimestamp: metav1.NewTime(created),
			Labels: map[string]string{contract.LabelInstance: "llama"}},
		Status: corev1.PodStatus{InitContainerStatuses: []corev1.ContainerStatus{{Name: controllers.DownloadContainerName,
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1,
				StartedAt: metav1.NewTime(created), FinishedAt: metav1.NewTime(created.Add(time.Second))}}}}},
	}
	timings.Observe(pod)
	if n := series(t, reg); n != 0 {
		t.Fatalf("%d observations from a failed download and an unready pod", n)
	}
	// The kubelet runs the init container again, and it succeeds in 30 s: that run is the download time.
	pod.Status.InitContainerStatuses[0].State.Terminated = &corev1.ContainerStateTerminated{ExitCode: 0,
		StartedAt: metav1.NewTime(created.Add(10 * time.Second)), FinishedAt: metav1.NewTime(created.Add(40 * time.Second))}
	timings.Observe(pod)
	timings.Observe(pod)
	if h := histogram(t, reg, controllers.MetricModelDownload); h.GetSampleCount() != 1 || h.GetSampleSum() != 30 {
		t.Fatalf("retried download: %d observations, sum %v; want one of 30 s", h.GetSampleCount(), h.GetSampleSum())
	}
	// A new pod with the same name is a new pod.
	pod.UID = "u2"
	timings.Observe(pod)
	if h := histogram(t, reg, controllers.MetricModelDownload); h.GetSampleCount() != 2 {
		t.Fatalf("new pod of the same name: %d observations, want 2", h.GetSampleCount())
	}
}

// series counts the observed series in reg.
func series(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

type errString string

func (e errString) Error() string { return string(e) }

func histogram(t *testing.T, reg *prometheus.Registry, name string) interface {
	GetSampleCount() uint64
	GetSampleSum() float64
} {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram()
		}
	}
	t.Fatalf("no single series of %s", name)
	return nil
}

func labelsOf(t *testing.T, reg *prometheus.Registry, name string) string {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			var parts []string
			for _, l := range mf.GetMetric()[0].GetLabel() {
				parts = append(parts, l.GetName()+"="+l.GetValue())
			}
			return strings.Join(parts, ",")
		}
	}
	return ""
}
