package controllers

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/llm-d/llm-d/api/v1alpha1"
)

// Reasons of the Ready condition that the kubelet's view of a model server pod gives.
const (
	ReasonSecretNotFound    = "SecretNotFound"
	ReasonSecretKeyNotFound = "SecretKeyNotFound"
	ReasonImagePullFailed   = "ImagePullFailed"
	ReasonCrashLoopBackOff  = "CrashLoopBackOff"
)

// maxPodMessage bounds what a condition quotes from a pod's status (a crashed container's last output).
const maxPodMessage = 1024

// podProblem is what stops a model server pod, as its status says it, and what to do about it.
type podProblem struct {
	reason, message string
}

// secretRef is a Secret the service's pods reference, with the spec field that names it and the command
// that creates it.
type secretRef struct {
	name, field, create string
}

// secretRefs lists the Secrets the pods of svc reference.
func secretRefs(svc *v1alpha1.LLMInferenceService) []secretRef {
	src := svc.Spec.Model.Source
	create := func(name, from string) string {
		return fmt.Sprintf("kubectl create secret generic %s -n %s %s", name, svc.Namespace, from)
	}
	var refs []secretRef
	if n := src.HuggingFaceTokenSecret; n != "" {
		refs = append(refs, secretRef{n, "model.source.huggingFaceTokenSecret", create(n, "--from-literal="+hfTokenKey(svc)+"=<token>")})
	}
	if n := src.CredentialsSecret; n != "" {
		from := "--from-literal=AWS_ACCESS_KEY_ID=<id> --from-literal=AWS_SECRET_ACCESS_KEY=<key>"
		if src.Type == v1alpha1.ModelSourceGCS {
			from = "--from-file=" + gcsKeyFile + "=<service-account key file>"
		}
		refs = append(refs, secretRef{n, "model.source.credentialsSecret", create(n, from)})
	}
	return refs
}

// podProblems reads, from the statuses the kubelet writes, why the service's pods do not start: a Secret
// or one of its keys missing (the kubelet's CreateContainerConfigError, or the GCS download's own check of
// its key file), an image that cannot be pulled, or a container that keeps crashing. The operator learns
// that a Secret is missing without reading Secrets: its pods' status says so. One problem per reason, in
// the order a person should fix them.
func podProblems(svc *v1alpha1.LLMInferenceService, pods []corev1.Pod) []podProblem {
	found := map[string]string{}
	note := func(reason, msg string) {
		if _, ok := found[reason]; !ok {
			found[reason] = msg
		}
	}
	refs := secretRefs(svc)
	for _, p := range pods {
		if !p.DeletionTimestamp.IsZero() {
			continue
		}
		statuses := append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...)
		for _, cs := range statuses {
			w := cs.State.Waiting
			var exited *corev1.ContainerStateTerminated
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				exited = t
			} else if t := cs.LastTerminationState.Terminated; t != nil && t.ExitCode != 0 && w != nil && w.Reason == "CrashLoopBackOff" {
				exited = t
			}
			if exited != nil {
				if ref, ok := missingSecret(exited.Message, refs); ok {
					note(ReasonSecretNotFound, ref)
					continue
				}
			}
			if w == nil {
				continue
			}
			switch w.Reason {
			case "CreateContainerConfigError":
				if ref, ok := missingSecret(w.Message, refs); ok {
					note(ReasonSecretNotFound, ref)
				} else if ref, ok := missingSecretKey(w.Message, svc.Namespace, refs); ok {
					note(ReasonSecretKeyNotFound, ref)
				}
			case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
				note(ReasonImagePullFailed, fmt.Sprintf("pod %s: container %s cannot pull image %s (%s: %s): check engine.image, or the operator's default image, and the registry's credentials",
					p.Name, cs.Name, cs.Image, w.Reason, w.Message))
			case "CrashLoopBackOff":
				out := ""
				if t := cs.LastTerminationState.Terminated; t != nil {
					out = fmt.Sprintf(" (exit code %d)", t.ExitCode)
					if m := strings.TrimSpace(t.Message); m != "" {
						out += ", its last output: " + tail(m, maxPodMessage)
					}
				}
				note(ReasonCrashLoopBackOff, fmt.Sprintf("pod %s: container %s keeps exiting%s; check engine.args and the container's log (kubectl logs -n %s %s -c %s --previous)",
					p.Name, cs.Name, out, p.Namespace, p.Name, cs.Name))
			}
		}
	}
	var out []podProblem
	for _, reason := range []string{ReasonSecretNotFound, ReasonSecretKeyNotFound, ReasonImagePullFailed, ReasonCrashLoopBackOff} {
		if msg, ok := found[reason]; ok {
			out = append(out, podProblem{reason, msg})
		}
	}
	return out
}

// missingSecret matches the kubelet's `secret "<name>" not found` (and the GCS download's check, which
// says the same) against the Secrets the spec references; other names are from an older spec.
func missingSecret(msg string, refs []secretRef) (string, bool) {
	for _, r := range refs {
		if strings.Contains(msg, fmt.Sprintf("secret %q not found", r.name)) {
			return fmt.Sprintf("Secret %s (%s) not found: create it with `%s`", r.name, r.field, r.create), true
		}
	}
	return "", false
}

// missingSecretKey matches the kubelet's `couldn't find key <key> in Secret <namespace>/<name>`.
func missingSecretKey(msg, namespace string, refs []secretRef) (string, bool) {
	for _, r := range refs {
		suffix := fmt.Sprintf(" in Secret %s/%s", namespace, r.name)
		key, ok := strings.CutPrefix(msg, "couldn't find key ")
		if !ok || !strings.HasSuffix(key, suffix) {
			continue
		}
		key = strings.TrimSuffix(key, suffix)
		return fmt.Sprintf("Secret %s (%s) has no key %s: add it (`%s --dry-run=client -o yaml | kubectl apply -f -`)%s",
			r.name, r.field, key, r.create, keyHint(r)), true
	}
	return "", false
}

func keyHint(r secretRef) string {
	if r.field == "model.source.huggingFaceTokenSecret" {
		return " or set model.source.huggingFaceTokenSecretKey to the key that holds the token"
	}
	return ""
}

// tail keeps the last n bytes of s, at a line start when it can.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	return "..." + s
}

// podProblemsChanged tells whether an update of a pod changes what podProblems would read from it.
func podProblemsChanged(old, cur *corev1.Pod) bool {
	return podStateKey(old) != podStateKey(cur)
}

func podStateKey(p *corev1.Pod) string {
	var b strings.Builder
	for _, cs := range append(slices.Clone(p.Status.InitContainerStatuses), p.Status.ContainerStatuses...) {
		b.WriteString(cs.Name)
		if w := cs.State.Waiting; w != nil {
			b.WriteString("|w:" + w.Reason + ":" + w.Message)
		}
		if t := cs.State.Terminated; t != nil {
			fmt.Fprintf(&b, "|t:%d:%s", t.ExitCode, t.Message)
		}
		if t := cs.LastTerminationState.Terminated; t != nil {
			fmt.Fprintf(&b, "|l:%d:%s", t.ExitCode, t.Message)
		}
		b.WriteByte(';')
	}
	return b.String()
}
