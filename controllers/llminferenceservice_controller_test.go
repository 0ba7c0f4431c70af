package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
)

// The autoscaled sample (config/samples/llama-3-8b-autoscaling.yaml), applied verbatim into its namespace.
func TestAutoscaledSampleManifest(t *testing.T) {
	ns := namespace(t, "inference")
	hfSecret(t, ns, "hf-token-secret")
	applyManifest(t, "llama-3-8b-autoscaling.yaml")
	const name = "llama-3-8b"

	d := deployment(t, ns, name)
	if got := *d.Spec.Replicas; got != 1 {
		t.Errorf("deployment replicas = %d, want 1", got)
	}
	c := d.Spec.Template.Spec.Containers[0]
	wantArgs := []string{"--model=meta-llama/Meta-Llama-3.1-8B-Instruct", "--port=8000", "--dtype=bfloat16", "--max-model-len=32768"}
	if strings.Join(c.Args, " ") != strings.Join(wantArgs, " ") {
		t.Errorf("args = %q, want %q", c.Args, wantArgs)
	}
	if c.Image != cfg.VLLMImage {
		t.Errorf("image = %q, want the pinned default %q", c.Image, cfg.VLLMImage)
	}
	gpu := c.Resources.Limits[contract.GPUResource]
	mem := c.Resources.Requests[corev1.ResourceMemory]
	if gpu.Value() != 1 || mem.Cmp(resource.MustParse("24Gi")) != 0 {
		t.Errorf("resources = %+v", c.Resources)
	}
	var token *corev1.EnvVar
	for i := range c.Env {
		if c.Env[i].Name == "HF_TOKEN" {
			token = &c.Env[i]
		}
	}
	if token == nil || token.Value != "" || token.ValueFrom.SecretKeyRef.Name != "hf-token-secret" || token.ValueFrom.SecretKeyRef.Key != "HF_TOKEN" {
		t.Errorf("HF_TOKEN must reference the secret, never copy it: %+v", token)
	}
	if c.ReadinessProbe.HTTPGet.Path != "/health" || c.StartupProbe.FailureThreshold*c.StartupProbe.PeriodSeconds < 600 {
		t.Errorf("probes: readiness %+v startup %+v", c.ReadinessProbe, c.StartupProbe)
	}
	if d.Labels[contract.LabelManagedBy] != "llm-d" || d.Spec.Template.Labels[contract.LabelManagedBy] != "llm-d" {
		t.Errorf("labels: %v / %v", d.Labels, d.Spec.Template.Labels)
	}
	if claim := d.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim; claim == nil || claim.ClaimName != "llama-3-8b-model-cache" {
		t.Errorf("model cache volume: %+v", d.Spec.Template.Spec.Volumes)
	}

	svc := &corev1.Service{}
	eventually(t, "service", func() error { return get(svc, ns, name) })
	ports := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		ports[p.Name] = p.Port
	}
	if ports["http"] != 80 || ports["metrics"] != 8000 {
		t.Errorf("service ports = %v, want http:80 and metrics:8000", ports)
	}

	pvc := &corev1.PersistentVolumeClaim{}
	eventually(t, "pvc", func() error { return get(pvc, ns, name+"-model-cache") })
	if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast-ssd" {
		t.Errorf("pvc storage class = %v, want the operator default fast-ssd", pvc.Spec.StorageClassName)
	}

	// Autoscaling waits for the first ready replica, so that the scaler has a pod to measure ...
	condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonWaitingForFirstReadyReplica)
	condition(t, ns, name, v1alpha1.ConditionReady, controllers.ReasonWaitingForReadyReplica)
	if err := get(&kedav1alpha1.ScaledObject{}, ns, name); isNotFound(err) != nil {
		t.Fatalf("ScaledObject before any ready replica: %v", err)
	}
	// ... and starts once a pod is Ready.
	markOnePodReady(t, ns, name)
	condition(t, ns, name, v1alpha1.ConditionReady, controllers.ReasonAvailable)
	condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)
	so := &kedav1alpha1.ScaledObject{}
	must(t, get(so, ns, name))
	if so.Spec.ScaleTargetRef.Name != name || *so.Spec.MinReplicaCount != 1 || *so.Spec.MaxReplicaCount != 8 {
		t.Errorf("scaledobject target/min/max: %+v %d %d", so.Spec.ScaleTargetRef, *so.Spec.MinReplicaCount, *so.Spec.MaxReplicaCount)
	}
	tr := so.Spec.Triggers[0]
	if tr.Type != "external" || tr.Metadata["scalerAddress"] != cfg.ScalerAddress || tr.Metadata["service"] != name {
		t.Errorf("trigger = %+v", tr)
	}
	if so.Spec.Fallback == nil || so.Spec.Fallback.Behavior != kedav1alpha1.FallbackBehaviorCurrentReplicas {
		t.Errorf("fallback must hold the current size: %+v", so.Spec.Fallback)
	}
	if w := so.Spec.Advanced.HorizontalPodAutoscalerConfig.Behavior.ScaleDown.StabilizationWindowSeconds; w == nil || *w != 0 {
		t.Errorf("the scaler owns the scale-down window; the HPA's must be 0, got %v", w)
	}
	s := getService(t, ns, name)
	if s.Status.Endpoint != "http://llama-3-8b.inference.svc.cluster.local/v1" {
		t.Errorf("endpoint = %q", s.Status.Endpoint)
	}
	if s.Status.Selector != "app.kubernetes.io/instance=llama-3-8b,app.kubernetes.io/name=vllm" || s.Status.ReadyReplicas != 1 {
		t.Errorf("status = %+v", s.Status)
	}
	if s.Status.ScaledObject != name {
		t.Errorf("status.scaledObject = %q", s.Status.ScaledObject)
	}
	// The sample is valid; the one thing worth saying is that ReadWriteOnce holds 8 replicas on one node.
	w := condition(t, ns, name, v1alpha1.ConditionConfigurationWarning, controllers.ReasonSpecWarnings)
	if !strings.HasPrefix(w.Message, "modelCache.accessMode is ReadWriteOnce and the service may run 8 replicas") || strings.Contains(w.Message, "max-model-len") || strings.Contains(w.Message, "ignored") {
		t.Errorf("warnings = %q, want only the access-mode one", w.Message)
	}
}

// The sample without autoscaling (config/samples/llama-3-8b.yaml): a fixed single replica, no ScaledObject.
func TestSampleManifestWithoutAutoscaling(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	must(t, k8s.Create(context.Background(), s))
	deployment(t, ns, s.Name)
	markOnePodReady(t, ns, s.Name)
	condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonAvailable)
	condition(t, ns, s.Name, v1alpha1.ConditionAutoscaling, controllers.ReasonDisabled)
	if err := get(&kedav1alpha1.ScaledObject{}, ns, s.Name); isNotFound(err) != nil {
		t.Fatal(err)
	}
}

func TestInvalidSpecsAreRejected(t *testing.T) {
	ns := namespace(t, "")
	cases := []struct {
		name   string
		mutate func(*v1alpha1.LLMInferenceService)
		want   string
	}{
		{"min above max", func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.MinReplicas = 9 },
			"minReplicas must be less than or equal to autoscaling.maxReplicas"},
		{"no max when enabled", func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.MaxReplicas = 0 },
			"enabled autoscaling needs maxReplicas"},
		{"no RequestQueue metric", func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.Metrics = s.Spec.Autoscaling.Metrics[1:] },
			"enabled autoscaling needs a RequestQueue metric"},
		{"queue target zero", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Metrics[0].RequestQueue.TargetAverageQueueDepth = 0
		}, "targetAverageQueueDepth"},
		{"throughput target negative", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Metrics[1].Throughput.TargetDecodeTokensPerSecond = -5
		}, "targetDecodeTokensPerSecond"},
		{"metric block of the wrong type", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Metrics[1].RequestQueue = &v1alpha1.RequestQueueTarget{TargetAverageQueueDepth: 3}
		}, "only a RequestQueue metric may have one"},
		{"metric type without its block", func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.Metrics[0].RequestQueue = nil },
			"a RequestQueue metric needs its requestQueue block"},
		{"duplicate metric type", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Metrics[1] = s.Spec.Autoscaling.Metrics[0]
		}, "Duplicate value"},
		{"min replicas zero", func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.MinReplicas = -1 },
			"minReplicas"},
		{"S3 without uri", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Model.Source = v1alpha1.ModelSource{Type: v1alpha1.ModelSourceS3}
		}, "an S3 source needs uri: s3://bucket/path"},
		{"GCS with an s3 uri", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Model.Source = v1alpha1.ModelSource{Type: v1alpha1.ModelSourceGCS, URI: "s3://bucket/llama"}
		}, "a GCS source needs uri: gs://bucket/path"},
		{"token secret on an S3 source", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Model.Source = v1alpha1.ModelSource{Type: v1alpha1.ModelSourceS3, URI: "s3://b/m", HuggingFaceTokenSecret: "hf"}
		}, "huggingFaceTokenSecret is for HuggingFace sources"},
		{"unknown engine", func(s *v1alpha1.LLMInferenceService) { s.Spec.Engine.Type = "TGI" },
			`Unsupported value: "TGI"`},
		{"unknown source type", func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.Source.Type = "FTP" },
			`Unsupported value: "FTP"`},
		{"empty model id", func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.ID = "" }, "spec.model.id"},
		{"negative replicas", func(s *v1alpha1.LLMInferenceService) { s.Spec.Replicas = ptr.To[int32](-1) }, "spec.replicas"},
		{"objective without a time to first token", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Objective = &v1alpha1.AutoscalingObjective{}
		}, "objective.timeToFirstToken must be between 50ms and 10m"},
		{"objective of a microsecond", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Objective = &v1alpha1.AutoscalingObjective{TimeToFirstToken: metav1.Duration{Duration: time.Microsecond}}
		}, "objective.timeToFirstToken must be between 50ms and 10m"},
		{"attainment as a percentage", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Objective = &v1alpha1.AutoscalingObjective{TimeToFirstToken: metav1.Duration{Duration: 2 * time.Second}, Attainment: "99"}
		}, "spec.autoscaling.objective.attainment"},
		{"attainment under a half", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.Objective = &v1alpha1.AutoscalingObjective{TimeToFirstToken: metav1.Duration{Duration: 2 * time.Second}, Attainment: "0.2"}
		}, "objective.attainment must be at least 0.5"},
		{"window above an hour", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Autoscaling.ScaleDownStabilizationSeconds = ptr.To[int32](7200)
		}, "scaleDownStabilizationSeconds"},
		// What a careless user writes (docs/faults.md, "Bad input").
		{"name longer than a Service name", func(s *v1alpha1.LLMInferenceService) { s.Name = "llama-" + strings.Repeat("x", 58) },
			"metadata.name must be at most 63 characters"},
		{"name with a dot", func(s *v1alpha1.LLMInferenceService) { s.Name = "llama-3.1-8b" },
			"metadata.name must start with a lowercase letter and hold only lowercase letters, digits and '-' (no '.')"},
		{"name starting with a digit", func(s *v1alpha1.LLMInferenceService) { s.Name = "3b-model" },
			"metadata.name must start with a lowercase letter"},
		{"typo in a metric type", func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.Metrics[1].Type = "Througput" },
			`Unsupported value: "Througput": supported values: "RequestQueue", "Throughput"`},
		{"half a GPU", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Resources.Limits[contract.GPUResource] = resource.MustParse("0.5")
			s.Spec.Resources.Requests[contract.GPUResource] = resource.MustParse("0.5")
		}, "nvidia.com/gpu must be a whole number"},
		{"GPU requests unlike limits", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Resources.Requests[contract.GPUResource] = resource.MustParse("2")
		}, "nvidia.com/gpu requests and limits must be equal"},
		{"memory request above its limit", func(s *v1alpha1.LLMInferenceService) {
			s.Spec.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("16Gi")
		}, "resources.requests.memory is above resources.limits.memory"},
		{"cache size without a unit", func(s *v1alpha1.LLMInferenceService) { s.Spec.ModelCache.Size = resource.MustParse("100") },
			"modelCache.size must be at least 1Gi"},
		{"a hundred thousand replicas", func(s *v1alpha1.LLMInferenceService) { s.Spec.Replicas = ptr.To[int32](100000) },
			"spec.replicas: Invalid value: 100000: spec.replicas in body should be less than or equal to 1000"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := sample(t, "llama-3-8b-autoscaling.yaml")
			s.Namespace, s.Name = ns, fmt.Sprintf("invalid-%d", i)
			if s.Spec.Resources.Limits == nil {
				t.Fatal("the sample has no resource limits")
			}
			tc.mutate(s)
			err := k8s.Create(context.Background(), s)
			if err == nil {
				t.Fatalf("accepted an invalid spec")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// A valid objective is admitted, its attainment defaulted to 0.99.
func TestObjectiveAdmitted(t *testing.T) {
	ns := namespace(t, "")
	s := sample(t, "llama-3-8b-autoscaling.yaml")
	s.Namespace = ns
	s.Spec.Autoscaling.Objective = &v1alpha1.AutoscalingObjective{TimeToFirstToken: metav1.Duration{Duration: 1500 * time.Millisecond}}
	must(t, k8s.Create(context.Background(), s))
	got := getService(t, ns, s.Name)
	if o := got.Spec.Autoscaling.Objective; o == nil || o.TimeToFirstToken.Duration != 1500*time.Millisecond || o.Attainment != "0.99" {
		t.Fatalf("objective = %+v, want 1.5s and the default attainment 0.99", o)
	}
}

// The longest name admission lets through works: every name derived from it (the claim
// <name>-model-cache, the labels, KEDA's ScaledObject) is valid. A lowercase parameter count is read too.
func TestLongestNameAndLowercaseParameters(t *testing.T) {
	ns := namespace(t, "")
	hfSecret(t, ns, "hf-token-secret")
	s := sample(t, "llama-3-8b-autoscaling.yaml")
	s.Namespace, s.Name = ns, "l"+strings.Repeat("x", 62)
	s.Spec.Model.Parameters = "8b"
	must(t, k8s.Create(context.Background(), s))
	deployment(t, ns, s.Name)
	eventually(t, "the Service", func() error { return get(&corev1.Service{}, ns, s.Name) })
	eventually(t, "the model cache", func() error { return get(&corev1.PersistentVolumeClaim{}, ns, s.Name+"-model-cache") })
	markOnePodReady(t, ns, s.Name)
	condition(t, ns, s.Name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)
	must(t, get(&kedav1alpha1.ScaledObject{}, ns, s.Name))
}

// Autoscaling on, off and on again converges; while on, the HPA's replica count is left alone.
func TestAutoscalingToggleAndHPAOwnedReplicas(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b-autoscaling.yaml")
	s.Spec.Replicas = ptr.To[int32](2)
	must(t, k8s.Create(context.Background(), s))
	name := s.Name
	deployment(t, ns, name)
	markOnePodReady(t, ns, name)
	condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)

	// The HPA scales through the scale subresource; the operator must not undo it.
	scaleTo(t, ns, name, 5)
	// A reconcile for an unrelated reason: a new generation, which the condition below waits to see observed.
	edit(t, ns, name, func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.MaxReplicas = 7 })
	condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)
	if d := deployment(t, ns, name); *d.Spec.Replicas != 5 {
		t.Fatalf("operator overwrote the HPA's replicas: %d", *d.Spec.Replicas)
	}

	for round := 0; round < 2; round++ {
		setAutoscaling(t, ns, name, false)
		condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonDisabled)
		eventually(t, "scaledobject deleted", func() error { return isNotFound(get(&kedav1alpha1.ScaledObject{}, ns, name)) })
		eventually(t, "spec.replicas rules again", func() error {
			if d := deployment(t, ns, name); *d.Spec.Replicas != 2 {
				return fmt.Errorf("replicas %d, want spec.replicas 2", *d.Spec.Replicas)
			}
			return nil
		})
		setAutoscaling(t, ns, name, true)
		condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)
		eventually(t, "scaledobject back", func() error { return get(&kedav1alpha1.ScaledObject{}, ns, name) })
	}
	// An edit to a target reaches the ScaledObject without recreating it.
	so := &kedav1alpha1.ScaledObject{}
	must(t, get(so, ns, name))
	uid := so.UID
	edit(t, ns, name, func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.MaxReplicas = 6 })
	eventually(t, "max replicas updated", func() error {
		if err := get(so, ns, name); err != nil {
			return err
		}
		if *so.Spec.MaxReplicaCount != 6 || so.UID != uid {
			return fmt.Errorf("max %d uid %s (was %s)", *so.Spec.MaxReplicaCount, so.UID, uid)
		}
		return nil
	})
}

// A user's edit to a managed field is reverted; what other controllers add is kept.
func TestDriftIsRevertedAndForeignFieldsKept(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	must(t, k8s.Create(context.Background(), s))
	name := s.Name
	want := deployment(t, ns, name).Spec.Template.Spec.Containers[0]

	eventually(t, "edit the deployment by hand", func() error {
		d := &appsv1.Deployment{}
		if err := get(d, ns, name); err != nil {
			return err
		}
		d.Spec.Template.Spec.Containers[0].Image = "attacker/vllm:latest"
		d.Spec.Template.Spec.Containers[0].Args = []string{"--model=other"}
		d.Spec.Template.Annotations = map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-24T10:00:00Z"}
		if d.Annotations == nil { // the deployment controller may not have written its revision yet
			d.Annotations = map[string]string{}
		}
		d.Annotations["example.com/owner"] = "team-a"
		return k8s.Update(context.Background(), d)
	})

	eventually(t, "drift reverted", func() error {
		d := &appsv1.Deployment{}
		if err := get(d, ns, name); err != nil {
			return err
		}
		c := d.Spec.Template.Spec.Containers[0]
		if c.Image != want.Image || strings.Join(c.Args, " ") != strings.Join(want.Args, " ") {
			return fmt.Errorf("image %q args %q", c.Image, c.Args)
		}
		if d.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" || d.Annotations["example.com/owner"] != "team-a" {
			return fmt.Errorf("foreign annotations lost: %v %v", d.Spec.Template.Annotations, d.Annotations)
		}
		return nil
	})

	// A managed object deleted by hand comes back.
	svc := &corev1.Service{}
	must(t, get(svc, ns, name))
	must(t, k8s.Delete(context.Background(), svc))
	eventually(t, "service recreated", func() error {
		fresh := &corev1.Service{}
		if err := get(fresh, ns, name); err != nil {
			return err
		}
		if fresh.UID == svc.UID {
			return fmt.Errorf("not deleted yet")
		}
		return nil
	})
}

// Deleting the service removes everything it owns, through the real garbage collector.
func TestDeletionCascades(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b-autoscaling.yaml")
	must(t, k8s.Create(context.Background(), s))
	name := s.Name
	deployment(t, ns, name)
	markOnePodReady(t, ns, name)
	eventually(t, "scaledobject", func() error { return get(&kedav1alpha1.ScaledObject{}, ns, name) })

	must(t, k8s.Delete(context.Background(), s))
	for _, o := range []struct {
		obj  client.Object
		name string
	}{
		{&appsv1.Deployment{}, name}, {&corev1.Service{}, name},
		{&corev1.PersistentVolumeClaim{}, name + "-model-cache"}, {&kedav1alpha1.ScaledObject{}, name},
	} {
		eventually(t, fmt.Sprintf("%T collected", o.obj), func() error { return isNotFound(get(o.obj, ns, o.name)) })
	}
}

// A missing token Secret is reported by name, with the command that creates it and an event, from what
// the kubelet writes in the pod's status (the operator cannot read Secrets). The pod's status is set here
// as the kubelet sets it: CreateContainerConfigError on the download container, with its message.
func TestMissingSecretIsReported(t *testing.T) {
	ns := namespace(t, "")
	s := sample(t, "llama-3-8b.yaml")
	s.Namespace = ns
	must(t, k8s.Create(context.Background(), s))
	deployment(t, ns, s.Name)
	setInitWaiting(t, ns, s.Name, "CreateContainerConfigError", `secret "hf-token-secret" not found`)
	c := condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonSecretNotFound)
	if !strings.Contains(c.Message, "hf-token-secret (model.source.huggingFaceTokenSecret) not found") ||
		!strings.Contains(c.Message, "kubectl create secret generic hf-token-secret -n "+ns+" --from-literal=HF_TOKEN=<token>") {
		t.Errorf("message does not name the secret and the fix: %q", c.Message)
	}
	warningEvent(t, ns, s.Name, controllers.ReasonSecretNotFound, "hf-token-secret")

	// The Secret is created without the key the spec names: the kubelet says so, and so does the operator.
	setInitWaiting(t, ns, s.Name, "CreateContainerConfigError", "couldn't find key HF_TOKEN in Secret "+ns+"/hf-token-secret")
	c = condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonSecretKeyNotFound)
	if !strings.Contains(c.Message, "has no key HF_TOKEN") || !strings.Contains(c.Message, "huggingFaceTokenSecretKey") {
		t.Errorf("message does not name the key and the fix: %q", c.Message)
	}
	// Fixed: the kubelet starts the pod.
	markOnePodReady(t, ns, s.Name)
	condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonAvailable)
}

// setInitWaiting sets the download container of the service's pod waiting with reason and message, as
// the kubelet does.
func setInitWaiting(t *testing.T, ns, name, reason, msg string) {
	t.Helper()
	setPodStatus(t, ns, name, "the pod's download container waiting in "+reason, func(st *corev1.PodStatus) {
		st.Phase = corev1.PodPending
		st.InitContainerStatuses = []corev1.ContainerStatus{{Name: controllers.DownloadContainerName, Image: cfg.VLLMImage,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}}
	})
}

// Args without --max-model-len, and args that fight the operator's, are reported and handled predictably.
func TestConfigurationWarnings(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	s.Spec.Engine.Args = []string{"--dtype=bfloat16", "--port", "9000"}
	must(t, k8s.Create(context.Background(), s))
	c := condition(t, ns, s.Name, v1alpha1.ConditionConfigurationWarning, controllers.ReasonSpecWarnings)
	for _, want := range []string{"no --max-model-len", "ignored --port 9000"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("warning %q lacks %q", c.Message, want)
		}
	}
	warningEvent(t, ns, s.Name, controllers.ReasonSpecWarnings, "--max-model-len")
	args := deployment(t, ns, s.Name).Spec.Template.Spec.Containers[0].Args
	if strings.Join(args, " ") != "--model=meta-llama/Meta-Llama-3.1-8B-Instruct --port=8000 --dtype=bfloat16" {
		t.Errorf("args = %q", args)
	}
}

// An object of the same name that belongs to someone else is never taken over: a Service, or a claim
// named like the model cache.
func TestNameConflictIsReported(t *testing.T) {
	for _, tc := range []struct {
		kind    string
		foreign func(ns string) client.Object
		intact  func(client.Object) bool
	}{
		{"Service", func(ns string) client.Object {
			return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llama-3-8b"},
				Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 1234}}}}
		}, func(o client.Object) bool { return o.(*corev1.Service).Spec.Ports[0].Port == 1234 }},
		{"PersistentVolumeClaim", func(ns string) client.Object {
			return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "llama-3-8b-model-cache"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")}}}}
		}, func(o client.Object) bool {
			q := o.(*corev1.PersistentVolumeClaim).Spec.Resources.Requests[corev1.ResourceStorage]
			return q.Cmp(resource.MustParse("5Gi")) == 0 && len(o.GetOwnerReferences()) == 0
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ns := namespace(t, "")
			hfSecret(t, ns, "hf-token-secret")
			foreign := tc.foreign(ns)
			must(t, k8s.Create(context.Background(), foreign))
			s := sample(t, "llama-3-8b.yaml")
			s.Namespace = ns
			must(t, k8s.Create(context.Background(), s))
			c := condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonNameConflict)
			if want := tc.kind + " " + ns + "/" + foreign.GetName() + " exists and is not managed"; !strings.Contains(c.Message, want) {
				t.Errorf("message %q does not say %q", c.Message, want)
			}
			warningEvent(t, ns, s.Name, controllers.ReasonNameConflict, foreign.GetName())
			must(t, get(foreign, ns, foreign.GetName()))
			if !tc.intact(foreign) {
				t.Errorf("the foreign %s was modified: %+v", tc.kind, foreign)
			}
		})
	}
}

// A pod that cannot start says why in its status; the operator turns it into the Ready condition and a
// Warning event: an image that cannot be pulled (a typo in engine.image), then an engine that exits on a
// typo in engine.args, with vLLM's last output. The statuses are set as the kubelet sets them.
func TestPodStartFailuresAreReported(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	s.Spec.Engine.Image = "vllm/vllm-openai:latset"
	must(t, k8s.Create(context.Background(), s))
	deployment(t, ns, s.Name)
	setContainerStatus(t, ns, s.Name, corev1.ContainerStatus{Name: contract.ContainerName, Image: s.Spec.Engine.Image,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff",
			Message: `Back-off pulling image "vllm/vllm-openai:latset": ErrImagePull: manifest unknown`}}})
	c := condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonImagePullFailed)
	if !strings.Contains(c.Message, "cannot pull image vllm/vllm-openai:latset") || !strings.Contains(c.Message, "manifest unknown") {
		t.Errorf("message %q", c.Message)
	}
	warningEvent(t, ns, s.Name, controllers.ReasonImagePullFailed, "latset")

	setContainerStatus(t, ns, s.Name, corev1.ContainerStatus{Name: contract.ContainerName, Image: cfg.VLLMImage, RestartCount: 3,
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2,
			Message: "usage: vllm serve [-h] ...\nvllm serve: error: argument --dtype: invalid choice: 'bfloat15'"}}})
	c = condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonCrashLoopBackOff)
	if !strings.Contains(c.Message, "invalid choice: 'bfloat15'") || !strings.Contains(c.Message, "--previous") {
		t.Errorf("message %q", c.Message)
	}
	warningEvent(t, ns, s.Name, controllers.ReasonCrashLoopBackOff, "bfloat15")
}

// An access mode changed after the claim exists cannot be applied (a claim's access modes are
// immutable): the operator keeps the claim as it is and says how to apply the change.
func TestImmutableCacheChangeIsExplained(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	must(t, k8s.Create(context.Background(), s))
	eventually(t, "the model cache", func() error { return get(&corev1.PersistentVolumeClaim{}, ns, s.Name+"-model-cache") })
	edit(t, ns, s.Name, func(s *v1alpha1.LLMInferenceService) { s.Spec.ModelCache.AccessMode = corev1.ReadWriteMany })
	c := condition(t, ns, s.Name, v1alpha1.ConditionConfigurationWarning, controllers.ReasonSpecWarnings)
	if !strings.Contains(c.Message, "modelCache.accessMode is ReadWriteMany but PersistentVolumeClaim llama-3-8b-model-cache has [ReadWriteOnce]") ||
		!strings.Contains(c.Message, "kubectl delete pvc llama-3-8b-model-cache -n "+ns) {
		t.Errorf("warning %q", c.Message)
	}
	if r := condition(t, ns, s.Name, v1alpha1.ConditionReady, controllers.ReasonWaitingForReadyReplica); r.Status != metav1.ConditionFalse {
		t.Errorf("Ready %+v", r)
	}
}

// setContainerStatus sets the vLLM container's status on the service's pod, as the kubelet does.
func setContainerStatus(t *testing.T, ns, name string, cs corev1.ContainerStatus) {
	t.Helper()
	setPodStatus(t, ns, name, "the pod's container status", func(st *corev1.PodStatus) {
		st.Phase = corev1.PodPending
		st.ContainerStatuses = []corev1.ContainerStatus{cs}
	})
}

func scaleTo(t *testing.T, ns, name string, n int32) {
	t.Helper()
	d := deployment(t, ns, name)
	eventually(t, "scale the deployment as the HPA does", func() error {
		sc := &autoscalingv1.Scale{}
		if err := k8s.SubResource("scale").Get(context.Background(), d, sc); err != nil {
			return err
		}
		sc.Spec.Replicas = n
		return k8s.SubResource("scale").Update(context.Background(), d, client.WithSubResourceBody(sc))
	})
}

func edit(t *testing.T, ns, name string, f func(*v1alpha1.LLMInferenceService)) {
	t.Helper()
	eventually(t, "edit "+name, func() error {
		s := &v1alpha1.LLMInferenceService{}
		if err := get(s, ns, name); err != nil {
			return err
		}
		f(s)
		return k8s.Update(context.Background(), s)
	})
}

func setAutoscaling(t *testing.T, ns, name string, on bool) {
	edit(t, ns, name, func(s *v1alpha1.LLMInferenceService) { s.Spec.Autoscaling.Enabled = on })
}
