package controllers

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/vram"
)

func svcWith(f func(*v1alpha1.LLMInferenceService)) *v1alpha1.LLMInferenceService {
	s := &v1alpha1.LLMInferenceService{
		ObjectMeta: metav1.ObjectMeta{Name: "m", Namespace: "ns"},
		Spec: v1alpha1.LLMInferenceServiceSpec{
			Model: v1alpha1.ModelSpec{ID: "org/model-8B", Source: v1alpha1.ModelSource{Type: v1alpha1.ModelSourceHuggingFace}},
		},
	}
	if f != nil {
		f(s)
	}
	return s
}

func TestUserArgs(t *testing.T) {
	cases := []struct {
		name         string
		src          v1alpha1.ModelSourceType
		args         []string
		kept         string
		droppedCount int
	}{
		{"plain args kept in order", v1alpha1.ModelSourceHuggingFace, []string{"--dtype=bfloat16", "--max-model-len", "4096"}, "--dtype=bfloat16 --max-model-len 4096", 0},
		{"inline --port dropped", v1alpha1.ModelSourceHuggingFace, []string{"--port=9000", "--dtype=auto"}, "--dtype=auto", 1},
		{"two-token --model dropped with its value", v1alpha1.ModelSourceHuggingFace, []string{"--model", "x/y", "--enforce-eager"}, "--enforce-eager", 1},
		{"lookalike flags are not reserved", v1alpha1.ModelSourceHuggingFace, []string{"--port_=1", "--po_rt=2"}, "--port_=1 --po_rt=2", 0},
		{"--max_model_len is not reserved", v1alpha1.ModelSourceHuggingFace, []string{"--max_model_len=8192"}, "--max_model_len=8192", 0},
		{"flag followed by a flag keeps the next", v1alpha1.ModelSourceHuggingFace, []string{"--port", "--enforce-eager"}, "--enforce-eager", 1},
		{"served name is the user's for HF", v1alpha1.ModelSourceHuggingFace, []string{"--served-model-name=llama"}, "--served-model-name=llama", 0},
		{"served name is the operator's for S3", v1alpha1.ModelSourceS3, []string{"--served_model_name", "llama"}, "", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := svcWith(func(s *v1alpha1.LLMInferenceService) {
				s.Spec.Model.Source.Type = tc.src
				s.Spec.Engine.Args = tc.args
			})
			kept, dropped := userArgs(s)
			if strings.Join(kept, " ") != tc.kept || len(dropped) != tc.droppedCount {
				t.Fatalf("kept %q dropped %q; want kept %q and %d dropped", kept, dropped, tc.kept, tc.droppedCount)
			}
		})
	}
}

func TestBuildDeploymentSources(t *testing.T) {
	cfg := DefaultConfig()
	cases := []struct {
		name      string
		source    v1alpha1.ModelSource
		initImage string
		initCmd   string
		args      string
		envFrom   string
		volume    string
	}{
		{"huggingface", v1alpha1.ModelSource{Type: v1alpha1.ModelSourceHuggingFace, HuggingFaceTokenSecret: "hf"},
			cfg.VLLMImage, "snapshot_download", "--model=org/model-8B --port=8000", "", ""},
		{"s3", v1alpha1.ModelSource{Type: v1alpha1.ModelSourceS3, URI: "s3://b/m", CredentialsSecret: "aws"},
			cfg.S3Image, "aws s3 sync", "--model=/model-cache/models --served-model-name=org/model-8B --port=8000", "aws", ""},
		{"gcs", v1alpha1.ModelSource{Type: v1alpha1.ModelSourceGCS, URI: "gs://b/m", CredentialsSecret: "gcp"},
			cfg.GCSImage, "gcloud storage rsync", "--model=/model-cache/models --served-model-name=org/model-8B --port=8000", "", "gcp"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := BuildDeployment(svcWith(func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.Source = tc.source }), cfg)
			pod := d.Spec.Template.Spec
			ic := pod.InitContainers[0]
			if ic.Image != tc.initImage || !strings.Contains(strings.Join(ic.Command, " "), tc.initCmd) {
				t.Errorf("init container %s %q", ic.Image, ic.Command)
			}
			// The model id and URI reach the downloader through the environment, never the script text.
			if strings.Contains(strings.Join(ic.Command, " "), "org/model-8B") || strings.Contains(strings.Join(ic.Command, " "), "://") {
				t.Errorf("model id or URI interpolated into a shell or Python command: %q", ic.Command)
			}
			if got := strings.Join(pod.Containers[0].Args, " "); got != tc.args {
				t.Errorf("args %q, want %q", got, tc.args)
			}
			if tc.envFrom != "" && (len(ic.EnvFrom) != 1 || ic.EnvFrom[0].SecretRef.Name != tc.envFrom) {
				t.Errorf("envFrom %+v", ic.EnvFrom)
			}
			if tc.volume != "" && pod.Volumes[len(pod.Volumes)-1].Secret.SecretName != tc.volume {
				t.Errorf("volumes %+v", pod.Volumes)
			}
			for _, c := range append(pod.InitContainers, pod.Containers...) {
				for _, e := range c.Env {
					if e.Name == "HF_TOKEN" && (e.Value != "" || e.ValueFrom.SecretKeyRef.Name != "hf") {
						t.Errorf("%s: HF_TOKEN %+v", c.Name, e)
					}
				}
			}
		})
	}
}

func TestInitialReplicas(t *testing.T) {
	cases := []struct {
		replicas *int32
		as       *v1alpha1.AutoscalingSpec
		want     int32
	}{
		{nil, nil, 1},
		{ptr.To[int32](3), nil, 3},
		{ptr.To[int32](0), nil, 0},
		{ptr.To[int32](3), &v1alpha1.AutoscalingSpec{Enabled: false, MinReplicas: 5, MaxReplicas: 8}, 3},
		{ptr.To[int32](1), &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 2, MaxReplicas: 8}, 2},
		{ptr.To[int32](9), &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 1, MaxReplicas: 4}, 4},
		{ptr.To[int32](0), &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 1, MaxReplicas: 4}, 1},
	}
	for _, tc := range cases {
		s := svcWith(func(s *v1alpha1.LLMInferenceService) { s.Spec.Replicas, s.Spec.Autoscaling = tc.replicas, tc.as })
		if got := *BuildDeployment(s, DefaultConfig()).Spec.Replicas; got != tc.want {
			t.Errorf("replicas %v autoscaling %+v: got %d, want %d", tc.replicas, tc.as, got, tc.want)
		}
	}
}

func TestBuildModelCacheStorageClass(t *testing.T) {
	cases := []struct {
		crClass, defaultClass string
		want                  *string
	}{
		{"", "", nil},
		{"", "standard", ptr.To("standard")},
		{"fast", "standard", ptr.To("fast")},
	}
	for _, tc := range cases {
		s := svcWith(func(s *v1alpha1.LLMInferenceService) {
			if tc.crClass != "" {
				s.Spec.ModelCache.StorageClassName = ptr.To(tc.crClass)
			}
		})
		cfg := DefaultConfig()
		cfg.DefaultStorageClass = tc.defaultClass
		p := BuildModelCache(s, cfg)
		if !ptrEqual(p.Spec.StorageClassName, tc.want) {
			t.Errorf("cr %q default %q: got %v", tc.crClass, tc.defaultClass, p.Spec.StorageClassName)
		}
		if q := p.Spec.Resources.Requests[corev1.ResourceStorage]; q.Cmp(resource.MustParse("100Gi")) != 0 || p.Spec.AccessModes[0] != corev1.ReadWriteOnce {
			t.Errorf("size %v modes %v", q, p.Spec.AccessModes)
		}
	}
}

func TestBuildScaledObject(t *testing.T) {
	s := svcWith(func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 2, MaxReplicas: 8}
	})
	so := BuildScaledObject(s, DefaultConfig())
	if *so.Spec.MinReplicaCount != 2 || *so.Spec.MaxReplicaCount != 8 || so.Spec.ScaleTargetRef.Name != "m" {
		t.Fatalf("spec %+v", so.Spec)
	}
	tr := so.Spec.Triggers[0]
	if tr.Type != "external" || tr.Metadata[contract.MetadataService] != "m" || tr.Metadata[contract.MetadataScalerAddress] == "" || tr.MetricType != "AverageValue" {
		t.Errorf("trigger %+v", tr)
	}
	b := so.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior
	if *b.ScaleDown.StabilizationWindowSeconds != 0 || !b.ScaleDown.Tolerance.IsZero() || !b.ScaleUp.Tolerance.IsZero() {
		t.Errorf("the HPA must apply the scaler's number as is: %+v", b)
	}
	if so.Spec.Fallback.Behavior != "currentReplicas" || so.Spec.Fallback.FailureThreshold < 1 {
		t.Errorf("fallback %+v", so.Spec.Fallback)
	}
}

func TestConfigurationWarningsTable(t *testing.T) {
	cases := []struct {
		name string
		f    func(*v1alpha1.LLMInferenceService)
		want []string
	}{
		{"clean", func(s *v1alpha1.LLMInferenceService) { s.Spec.Engine.Args = []string{"--max-model-len=8192"} }, nil},
		{"no max-model-len", nil, []string{"no --max-model-len"}},
		{"reserved flag", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Engine.Args = []string{"--max-model-len=8192", "--port=1"}
		}, []string{"ignored --port=1"}},
		{"RWO with many replicas", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Engine.Args = []string{"--max-model-len=8192"}
			s.Spec.Replicas = ptr.To[int32](3)
		}, []string{"ReadWriteOnce and the service may run 3 replicas"}},
		{"RWX with many replicas", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Engine.Args = []string{"--max-model-len=8192"}
			s.Spec.Replicas = ptr.To[int32](3)
			s.Spec.ModelCache.AccessMode = corev1.ReadWriteMany
		}, nil},
		{"cache smaller than the weights", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Engine.Args = []string{"--max-model-len=8192"}
			s.Spec.Model.ID = "meta-llama/Meta-Llama-3.1-70B-Instruct"
			s.Spec.ModelCache.Size = resource.MustParse("100Gi")
		}, []string{"modelCache.size is 100Gi but the weights alone take about 130.4Gi"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ConfigurationWarnings(svcWith(tc.f))
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d", got, len(tc.want))
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("warning %q lacks %q", got[i], tc.want[i])
				}
			}
		})
	}
}

func TestGPUs(t *testing.T) {
	s := svcWith(func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Resources.Limits = corev1.ResourceList{contract.GPUResource: resource.MustParse("2")}
	})
	if contract.GPUsPerReplica(s.Spec.Resources) != 2 || len(gpuTolerations(s)) != 1 {
		t.Errorf("gpus %d tolerations %v", contract.GPUsPerReplica(s.Spec.Resources), gpuTolerations(s))
	}
	if cpu := svcWith(nil); contract.GPUsPerReplica(cpu.Spec.Resources) != 0 || gpuTolerations(cpu) != nil {
		t.Errorf("a CPU service asks for no GPU")
	}
}

func TestBuildScaledObjectWithMutualTLS(t *testing.T) {
	s := svcWith(func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Autoscaling = &v1alpha1.AutoscalingSpec{Enabled: true, MinReplicas: 1, MaxReplicas: 4}
	})
	c := DefaultConfig()
	if tr := BuildScaledObject(s, c).Spec.Triggers[0]; tr.AuthenticationRef != nil || tr.Metadata[MetadataEnableTLS] != "" {
		t.Errorf("TLS off, yet the trigger asks for it: %+v", tr)
	}
	c.ScalerTLSSecret = "llm-d-scaler-client-tls"
	tr := BuildScaledObject(s, c).Spec.Triggers[0]
	if tr.Metadata[MetadataEnableTLS] != "true" || tr.AuthenticationRef == nil ||
		tr.AuthenticationRef.Name != TriggerAuthenticationName || tr.AuthenticationRef.Kind != "ClusterTriggerAuthentication" {
		t.Errorf("trigger %+v", tr)
	}
	ta := BuildTriggerAuthentication(c)
	got := map[string]string{}
	for _, r := range ta.Spec.SecretTargetRef {
		if r.Name != c.ScalerTLSSecret {
			t.Errorf("ref %+v names another Secret", r)
		}
		got[r.Parameter] = r.Key
	}
	// The parameter names are those KEDA's external scaler reads (pkg/scalers/external_scaler.go).
	want := map[string]string{"caCert": "ca.crt", "tlsClientCert": "tls.crt", "tlsClientKey": "tls.key"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("secret refs %v, want %v", got, want)
	}
}

func ptrEqual[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// GPU pods require a node whose GPUs are large enough, or a node that does not say; pods without a GPU or
// of a model of unknown size get no affinity.
func TestGPUMemoryAffinity(t *testing.T) {
	gpu := func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Engine.Args = []string{"--max-model-len=8192"}
		s.Spec.Resources.Limits = corev1.ResourceList{contract.GPUResource: resource.MustParse("1")}
	}
	a := gpuMemoryAffinity(svcWith(gpu))
	v, _ := vram.Estimate(svcWith(gpu))
	if a == nil {
		t.Fatal("no affinity for a GPU pod of known size")
	}
	terms := a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 2 || terms[0].MatchExpressions[0].Operator != corev1.NodeSelectorOpGt ||
		terms[0].MatchExpressions[0].Values[0] != fmt.Sprint(v.MinGPUMiB()-1) || terms[1].MatchExpressions[0].Operator != corev1.NodeSelectorOpDoesNotExist {
		t.Errorf("terms %+v", terms)
	}
	if gpuMemoryAffinity(svcWith(nil)) != nil {
		t.Error("affinity for a pod without a GPU")
	}
	if gpuMemoryAffinity(svcWith(func(s *v1alpha1.LLMInferenceService) { gpu(s); s.Spec.Model.ID = "org/mystery" })) != nil {
		t.Error("affinity for a model of unknown size")
	}
}
