package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/llm-d/llm-d/api/contract"
)

// Names of the operator's own metrics: how long model servers take to start and to download their weights.
const (
	MetricPodStartup    = "llmd:pod_startup_seconds"
	MetricModelDownload = "llmd:model_download_seconds"
)

// ServerPods selects the model server pods of every service, for the operator's cache of pods: it never
// holds any other pod of the cluster.
func ServerPods() labels.Selector {
	return labels.SelectorFromSet(map[string]string{contract.LabelManagedBy: contract.ManagedByValue, LabelComponent: ComponentServer})
}

// PodTimings measures, from the pods themselves, how long model servers take to start: creation to the
// first Ready condition, and the model-download init container's run. Each pod is observed once per
// measurement. Only what happens after the operator starts is observed, so a restarted (or newly elected)
// operator does not replay every running pod's history into the histograms.
type PodTimings struct {
	Client client.Client

	startup, download *prometheus.HistogramVec
	since             time.Time

	mu   sync.Mutex
	seen map[types.NamespacedName]seenPod
}

// seenPod is what was recorded of one pod; the UID tells a new pod of the same name from the old one.
type seenPod struct {
	uid  types.UID
	done observed
}

type observed uint8

const (
	observedStartup observed = 1 << iota
	observedDownload
)

// NewPodTimings creates the histograms and registers them with reg.
func NewPodTimings(c client.Client, reg prometheus.Registerer, now time.Time) (*PodTimings, error) {
	p := &PodTimings{
		Client: c,
		startup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricPodStartup,
			Help: "Time from a model server pod's creation to its first Ready condition: scheduling, image pull, " +
				"weight download and vLLM's load and warm-up. The scale-up budget autoscaling lives with.",
			Buckets: []float64{5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 900, 1200, 1800, 3600},
		}, []string{"namespace", "service"}),
		download: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricModelDownload,
			Help: "Run time of a model server pod's model-download init container that succeeded: weights " +
				"fetched into the model cache (seconds when the cache already holds them).",
			Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600},
		}, []string{"namespace", "service"}),
		// Condition and container times have second precision.
		since: now.Truncate(time.Second),
		seen:  map[types.NamespacedName]seenPod{},
	}
	for _, c := range []prometheus.Collector{p.startup, p.download} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Reconcile observes what a pod has newly finished and forgets pods that are gone.
func (p *PodTimings) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pod := &corev1.Pod{}
	if err := p.Client.Get(ctx, req.NamespacedName, pod); err != nil {
		if apierrors.IsNotFound(err) {
			p.mu.Lock()
			delete(p.seen, req.NamespacedName)
			p.mu.Unlock()
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	p.Observe(pod)
	return ctrl.Result{}, nil
}

// Observe records pod's startup and download times if they are complete and not yet recorded.
func (p *PodTimings) Observe(pod *corev1.Pod) {
	svc := pod.Labels[contract.LabelInstance]
	key := types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}
	p.mu.Lock()
	defer p.mu.Unlock()
	var done observed
	if s, ok := p.seen[key]; ok && s.uid == pod.UID {
		done = s.done
	}
	if done&observedStartup == 0 {
		if at, ok := firstReady(pod); ok {
			done |= observedStartup
			if !at.Before(p.since) {
				p.startup.WithLabelValues(pod.Namespace, svc).Observe(at.Sub(pod.CreationTimestamp.Time).Seconds())
			}
		}
	}
	if done&observedDownload == 0 {
		// A failed run is no download time; the kubelet retries it, and the run that succeeds is measured.
		if t := downloadRun(pod); t != nil && t.ExitCode == 0 {
			done |= observedDownload
			if !t.FinishedAt.Time.Before(p.since) {
				p.download.WithLabelValues(pod.Namespace, svc).Observe(t.FinishedAt.Sub(t.StartedAt.Time).Seconds())
			}
		}
	}
	if done != 0 {
		p.seen[key] = seenPod{uid: pod.UID, done: done}
	}
}

// firstReady is when the pod became Ready, if it is. A pod that was Ready, lost readiness and regained it
// reports the later time; by then it was observed already.
func firstReady(pod *corev1.Pod) (time.Time, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// downloadRun is the model-download init container's finished run, if its latest run finished.
func downloadRun(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	for _, s := range pod.Status.InitContainerStatuses {
		if s.Name == DownloadContainerName {
			return s.State.Terminated
		}
	}
	return nil
}

// SetupWithManager watches model server pods (the manager's cache must be limited to ServerPods).
func (p *PodTimings) SetupWithManager(mgr ctrl.Manager) error {
	sel, err := predicate.LabelSelectorPredicate(metav1.LabelSelector{MatchLabels: map[string]string{
		contract.LabelManagedBy: contract.ManagedByValue, LabelComponent: ComponentServer,
	}})
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("podtimings").
		For(&corev1.Pod{}, builder.WithPredicates(sel)).
		Complete(p)
}
