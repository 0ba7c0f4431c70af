package controllers

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/llm-d/llm-d/api/contract"
	"github.com/llm-d/llm-d/api/v1alpha1"
)

// What the kubelet writes into a pod's status when it cannot start it, read as the Ready condition's
// reason and an actionable message.
func TestPodProblems(t *testing.T) {
	hf := svcWith(func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.Source.HuggingFaceTokenSecret = "hf-token" })
	gcs := svcWith(func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Model.Source = v1alpha1.ModelSource{Type: v1alpha1.ModelSourceGCS, URI: "gs://b/m", CredentialsSecret: "gcp-key"}
	})
	waiting := func(name, reason, msg string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, Image: "vllm/vllm-openai:latset", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}}
	}
	cases := []struct {
		name   string
		svc    *v1alpha1.LLMInferenceService
		init   []corev1.ContainerStatus
		main   []corev1.ContainerStatus
		reason string
		says   []string
	}{
		{"token Secret missing", hf, []corev1.ContainerStatus{waiting(DownloadContainerName, "CreateContainerConfigError", `secret "hf-token" not found`)}, nil,
			ReasonSecretNotFound, []string{"Secret hf-token (model.source.huggingFaceTokenSecret) not found", "kubectl create secret generic hf-token -n ns --from-literal=HF_TOKEN=<token>"}},
		{"token Secret without the key", hf, []corev1.ContainerStatus{waiting(DownloadContainerName, "CreateContainerConfigError", `couldn't find key HF_TOKEN in Secret ns/hf-token`)}, nil,
			ReasonSecretKeyNotFound, []string{"Secret hf-token (model.source.huggingFaceTokenSecret) has no key HF_TOKEN", "huggingFaceTokenSecretKey"}},
		{"a Secret the spec no longer names", hf, []corev1.ContainerStatus{waiting(DownloadContainerName, "CreateContainerConfigError", `secret "old-token" not found`)}, nil, "", nil},
		{"GCS key file missing", gcs, []corev1.ContainerStatus{{Name: DownloadContainerName,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, Message: `secret "gcp-key" not found or has no key.json` + "\n"}}}}, nil,
			ReasonSecretNotFound, []string{"Secret gcp-key (model.source.credentialsSecret) not found", "--from-file=key.json=<service-account key file>"}},
		{"image typo", hf, nil, []corev1.ContainerStatus{waiting(contract.ContainerName, "ImagePullBackOff", `Back-off pulling image "vllm/vllm-openai:latset"`)},
			ReasonImagePullFailed, []string{"cannot pull image vllm/vllm-openai:latset", "check engine.image"}},
		{"engine arg typo", hf, nil, []corev1.ContainerStatus{{Name: contract.ContainerName,
			State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Message: "api_server.py: error: argument --dtype: invalid choice: 'bfloat15'"}}}},
			ReasonCrashLoopBackOff, []string{"keeps exiting (exit code 2)", "invalid choice: 'bfloat15'", "kubectl logs -n ns p -c vllm --previous"}},
		{"running", hf, nil, []corev1.ContainerStatus{{Name: contract.ContainerName, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}, "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
				Status: corev1.PodStatus{InitContainerStatuses: tc.init, ContainerStatuses: tc.main}}
			got := podProblems(tc.svc, []corev1.Pod{pod})
			if tc.reason == "" {
				if len(got) != 0 {
					t.Fatalf("problems %+v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0].reason != tc.reason {
				t.Fatalf("problems %+v, want one %s", got, tc.reason)
			}
			for _, s := range tc.says {
				if !strings.Contains(got[0].message, s) {
					t.Errorf("message %q does not say %q", got[0].message, s)
				}
			}
		})
	}
}
