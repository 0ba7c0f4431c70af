package controllers

import (
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/vram"
)

const (
	cacheVolume = "model-cache"
	cacheMount  = "/model-cache"
	// hfHome puts the Hugging Face cache on the PVC, so a restarted pod finds the weights there.
	hfHome = cacheMount + "/huggingface"
	// objectStoreDir is where S3 and GCS weights are copied to; vLLM loads them from there.
	objectStoreDir = cacheMount + "/models"
	gcsKeyDir      = "/var/run/secrets/llm-d/gcs"
	// gcsKeyFile is the key of the GCS credentials Secret that holds a service-account key.
	gcsKeyFile = "key.json"

	// The probes: a first start may load weights for many minutes (downloads happen before, in the init
	// container), so the startup probe allows 30 minutes; after that, readiness takes a pod out of the Service
	// within 15 s and liveness restarts an engine whose /health fails for a minute.
	startupPeriodSeconds   = 10
	startupFailures        = 180
	readinessPeriodSeconds = 5
	livenessPeriodSeconds  = 10
	livenessFailures       = 6

	// Graceful drain: preStop keeps the pod serving while endpoints stop routing to it; then SIGTERM lets
	// vLLM finish in-flight streams. The grace period covers both with room for long generations.
	preStopSeconds                = 15
	terminationGracePeriodSeconds = 180
)

// gcsKeyCheck stops the GCS download, in the kubelet's own words, when the credentials Secret or its key
// file is missing. The Secret's volume is optional so that the pod starts and its status says what is
// missing (a required volume would keep the pod waiting with the reason in events only): the operator
// reads it there, as it reads the kubelet's "secret ... not found" for the other sources.
const gcsKeyCheck = `[ -s "$GOOGLE_APPLICATION_CREDENTIALS" ] || ` +
	`{ echo "secret \"$CREDENTIALS_SECRET\" not found or has no ` + gcsKeyFile + `" | tee /dev/termination-log >&2; exit 1; }; `

// hfDownload fetches model.id into HF_HOME with the huggingface_hub library that the vLLM image ships. The id
// comes from the environment, never from the script text, so no model id can inject code. Consolidated
// checkpoints under original/ (Llama's .pth copies) are skipped: vLLM loads the safetensors.
const hfDownload = `import os
from huggingface_hub import snapshot_download
snapshot_download(os.environ["MODEL_ID"], ignore_patterns=["original/*", "*.pth"])
`

// BuildDeployment builds the vLLM Deployment of a service. Its replica count is the starting size: the
// reconciler keeps writing it only while autoscaling is off.
func BuildDeployment(svc *v1alpha1.LLMInferenceService, cfg Config) *appsv1.Deployment {
	image := svc.Spec.Engine.Image
	if image == "" {
		image = cfg.VLLMImage
	}
	src := svc.Spec.Model.Source
	initC, modelArgs := downloadContainer(svc, cfg, image)
	kept, _ := userArgs(svc)
	args := append(append(modelArgs, fmt.Sprintf("--port=%d", contract.HTTPPort)), kept...)

	env := []corev1.EnvVar{
		{Name: "HF_HOME", Value: hfHome},
		{Name: "VLLM_NO_USAGE_STATS", Value: "1"},
	}
	if src.HuggingFaceTokenSecret != "" {
		env = append(env, hfTokenEnv(svc))
	}

	podLabels := Labels(svc, ComponentServer)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:      svc.Name,
			Namespace: svc.Namespace,
			Labels:    podLabels,
		},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(initialReplicas(svc)),
			Selector: &metav1.LabelSelector{MatchLabels: contract.SelectorLabels(svc.Name)},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{initC},
					Containers: []corev1.Container{{
						Name:           contract.ContainerName,
						Image:          image,
						Args:           args,
						Env:            env,
						Ports:          []corev1.ContainerPort{{Name: "http", ContainerPort: contract.HTTPPort, Protocol: corev1.ProtocolTCP}},
						Resources:      svc.Spec.Resources,
						StartupProbe:   healthProbe(startupPeriodSeconds, startupFailures),
						ReadinessProbe: healthProbe(readinessPeriodSeconds, 3),
						LivenessProbe:  healthProbe(livenessPeriodSeconds, livenessFailures),
						// A crash's last output (vLLM's argument errors) reaches the pod's status, where the
						// operator reads it for the Ready condition.
						TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						Lifecycle: &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{
							Sleep: &corev1.SleepAction{Seconds: preStopSeconds},
						}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: cacheVolume, MountPath: cacheMount},
							{Name: "dshm", MountPath: "/dev/shm"},
						},
					}},
					Volumes:                       volumes(svc),
					Tolerations:                   gpuTolerations(svc),
					Affinity:                      gpuMemoryAffinity(svc),
					TerminationGracePeriodSeconds: ptr.To[int64](terminationGracePeriodSeconds),
					EnableServiceLinks:            ptr.To(false),
				},
			},
		},
	}
}

// initialReplicas is the Deployment's size before anything else owns it: spec.replicas, held inside
// [minReplicas, maxReplicas] when autoscaling is on.
func initialReplicas(svc *v1alpha1.LLMInferenceService) int32 {
	n := replicas(svc)
	if a := svc.Spec.Autoscaling; a != nil && a.Enabled {
		n = max(n, a.MinReplicas, 1)
		if a.MaxReplicas > 0 {
			n = min(n, a.MaxReplicas)
		}
	}
	return n
}

// downloadContainer builds the init container that puts the weights into the cache before vLLM starts, so a
// download is never cut short by a probe, and returns the vLLM flags that point at them.
func downloadContainer(svc *v1alpha1.LLMInferenceService, cfg Config, vllmImage string) (corev1.Container, []string) {
	src := svc.Spec.Model.Source
	c := corev1.Container{
		Name:                     DownloadContainerName,
		VolumeMounts:             []corev1.VolumeMount{{Name: cacheVolume, MountPath: cacheMount}},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		Env: []corev1.EnvVar{
			{Name: "MODEL_ID", Value: svc.Spec.Model.ID},
			{Name: "MODEL_URI", Value: src.URI},
			{Name: "MODEL_DIR", Value: objectStoreDir},
		},
	}
	servedAs := []string{"--model=" + objectStoreDir, "--served-model-name=" + svc.Spec.Model.ID}
	switch src.Type {
	case v1alpha1.ModelSourceS3:
		c.Image = cfg.S3Image
		c.Command = []string{"sh", "-c", `aws s3 sync "$MODEL_URI" "$MODEL_DIR" --only-show-errors`}
		if src.CredentialsSecret != "" {
			c.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: src.CredentialsSecret},
			}}}
		}
		return c, servedAs
	case v1alpha1.ModelSourceGCS:
		c.Image = cfg.GCSImage
		script := `gcloud storage rsync --recursive "$MODEL_URI" "$MODEL_DIR"`
		if src.CredentialsSecret != "" {
			key := gcsKeyDir + "/" + gcsKeyFile
			c.Env = append(c.Env,
				corev1.EnvVar{Name: "GOOGLE_APPLICATION_CREDENTIALS", Value: key},
				corev1.EnvVar{Name: "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", Value: key},
				corev1.EnvVar{Name: "CREDENTIALS_SECRET", Value: src.CredentialsSecret})
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "gcs-credentials", MountPath: gcsKeyDir, ReadOnly: true})
			script = gcsKeyCheck + script
		}
		c.Command = []string{"sh", "-c", script}
		return c, servedAs
	default:
		c.Image = vllmImage
		c.Command = []string{"python3", "-c", hfDownload}
		c.Env = append(c.Env, corev1.EnvVar{Name: "HF_HOME", Value: hfHome})
		if src.HuggingFaceTokenSecret != "" {
			c.Env = append(c.Env, hfTokenEnv(svc))
		}
		return c, []string{"--model=" + svc.Spec.Model.ID}
	}
}

// hfTokenEnv references the token Secret; the value never passes through the operator.
func hfTokenEnv(svc *v1alpha1.LLMInferenceService) corev1.EnvVar {
	return corev1.EnvVar{Name: "HF_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: svc.Spec.Model.Source.HuggingFaceTokenSecret},
		Key:                  hfTokenKey(svc),
	}}}
}

// hfTokenKey is the Secret key holding the token (the CRD default, for objects the API server did not default).
func hfTokenKey(svc *v1alpha1.LLMInferenceService) string {
	if k := svc.Spec.Model.Source.HuggingFaceTokenSecretKey; k != "" {
		return k
	}
	return "HF_TOKEN"
}

func healthProbe(period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: "/health", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   5,
		// Set although it is the API server's default: the reconciler compares integers exactly, and an
		// unset 0 here would look like drift on every reconcile.
		SuccessThreshold: 1,
	}
}

func volumes(svc *v1alpha1.LLMInferenceService) []corev1.Volume {
	v := []corev1.Volume{
		{Name: cacheVolume, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
			ClaimName: ModelCacheName(svc),
		}}},
		// vLLM's workers share tensors through /dev/shm; the container runtime's 64 MiB default is too small.
		{Name: "dshm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
	}
	src := svc.Spec.Model.Source
	if src.Type == v1alpha1.ModelSourceGCS && src.CredentialsSecret != "" {
		v = append(v, corev1.Volume{Name: "gcs-credentials", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: src.CredentialsSecret, Optional: ptr.To(true), // gcsKeyCheck says when it is missing
		}}})
	}
	return v
}

// gpuTolerations lets GPU pods onto nodes the NVIDIA GPU Operator taints for GPU workloads only.
func gpuTolerations(svc *v1alpha1.LLMInferenceService) []corev1.Toleration {
	if contract.GPUsPerReplica(svc.Spec.Resources) == 0 {
		return nil
	}
	return []corev1.Toleration{{Key: string(contract.GPUResource), Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
}

// gpuMemoryAffinity keeps a GPU pod off nodes whose GPUs GPU feature discovery labels as too small for the
// model (nvidia.com/gpu.memory, MiB per GPU, below what one GPU of a replica needs): such a pod would be
// scheduled and crash while loading the weights. Nodes without the label stay eligible (the terms are
// ORed), so a cluster without feature discovery schedules as before. No affinity when the model's size is
// unknown or it asks for no GPU.
func gpuMemoryAffinity(svc *v1alpha1.LLMInferenceService) *corev1.Affinity {
	v, ok := vram.Estimate(svc)
	if !ok || contract.GPUsPerReplica(svc.Spec.Resources) == 0 {
		return nil
	}
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
			{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: contract.LabelGPUMemory, Operator: corev1.NodeSelectorOpGt, Values: []string{strconv.FormatInt(v.MinGPUMiB()-1, 10)},
			}}},
			{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: contract.LabelGPUMemory, Operator: corev1.NodeSelectorOpDoesNotExist}}},
		}},
	}}
}
