package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
)

// What a spec edit removes must leave the objects too, and what it adds back must return. Each case
// starts from a converged service, edits its spec, and waits for the Deployment the suite's operator
// writes to match; then a reconcile with a write counter must write nothing.
func TestRemovalsReachTheCluster(t *testing.T) {
	cases := []struct {
		name   string
		spec   func(*v1alpha1.LLMInferenceService)
		remove func(*v1alpha1.LLMInferenceService)
		// present says whether the Deployment carries what the edit removes.
		present func(*appsv1.Deployment) bool
	}{
		{"last engine arg",
			func(s *v1alpha1.LLMInferenceService) {},
			func(s *v1alpha1.LLMInferenceService) {
				s.Spec.Engine.Args = s.Spec.Engine.Args[:len(s.Spec.Engine.Args)-1]
			},
			func(d *appsv1.Deployment) bool {
				return slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--max-model-len=32768")
			}},
		{"huggingFaceTokenSecret",
			func(s *v1alpha1.LLMInferenceService) {},
			func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.Source.HuggingFaceTokenSecret = "" },
			func(d *appsv1.Deployment) bool {
				return hasEnv(d.Spec.Template.Spec.Containers[0], "HF_TOKEN") || hasEnv(d.Spec.Template.Spec.InitContainers[0], "HF_TOKEN")
			}},
		{"S3 credentials",
			func(s *v1alpha1.LLMInferenceService) {
				s.Spec.Model.Source = v1alpha1.ModelSource{Type: v1alpha1.ModelSourceS3, URI: "s3://bucket/llama", CredentialsSecret: "hf-token-secret"}
			},
			func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.Source.CredentialsSecret = "" },
			func(d *appsv1.Deployment) bool { return len(d.Spec.Template.Spec.InitContainers[0].EnvFrom) > 0 }},
		{"GCS credentials",
			func(s *v1alpha1.LLMInferenceService) {
				s.Spec.Model.Source = v1alpha1.ModelSource{Type: v1alpha1.ModelSourceGCS, URI: "gs://bucket/llama", CredentialsSecret: "hf-token-secret"}
			},
			func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.Source.CredentialsSecret = "" },
			func(d *appsv1.Deployment) bool {
				init := d.Spec.Template.Spec.InitContainers[0]
				return slices.ContainsFunc(d.Spec.Template.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "gcs-credentials" }) ||
					len(init.VolumeMounts) > 1 || hasEnv(init, "GOOGLE_APPLICATION_CREDENTIALS")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns, s := sampleIn(t, "llama-3-8b.yaml")
			tc.spec(s)
			must(t, k8s.Create(context.Background(), s))
			waitDeployment(t, ns, s.Name, "with it", tc.present)

			edit(t, ns, s.Name, tc.remove)
			waitDeployment(t, ns, s.Name, "without it", func(d *appsv1.Deployment) bool { return !tc.present(d) })
			noWrites(t, cfg, ns, s.Name)

			edit(t, ns, s.Name, func(l *v1alpha1.LLMInferenceService) { l.Spec = s.Spec })
			waitDeployment(t, ns, s.Name, "with it again", tc.present)
			noWrites(t, cfg, ns, s.Name)
		})
	}
}

// Turning the scaler's mutual TLS off (the operator restarted without --scaler-tls-secret) removes the
// trigger's authenticationRef and enableTLS from every ScaledObject. The operator's configuration is
// per process, so two reconcilers, one with TLS and one without, drive a service the suite's own operator
// leaves alone.
func TestScalerTLSTurnedOff(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b-autoscaling.yaml")
	createUnmanaged(t, s)
	withTLS := cfg
	withTLS.ScalerTLSSecret = "keda-scaler-client"
	t.Cleanup(func() { // cluster-scoped: other tests create it
		_ = k8s.Delete(context.Background(), &kedav1alpha1.ClusterTriggerAuthentication{ObjectMeta: metav1.ObjectMeta{Name: controllers.TriggerAuthenticationName}})
	})
	rec := events.NewFakeRecorder(100)
	tlsOn := &controllers.LLMInferenceServiceReconciler{Client: k8s, Config: withTLS, Recorder: rec}
	reconcileUntil(t, tlsOn, ns, s.Name, "the first Deployment", func() error { return get(&appsv1.Deployment{}, ns, s.Name) })
	markOnePodReady(t, ns, s.Name)
	so := &kedav1alpha1.ScaledObject{}
	reconcileUntil(t, tlsOn, ns, s.Name, "a ScaledObject with TLS", func() error {
		if err := get(so, ns, s.Name); err != nil {
			return err
		}
		if so.Spec.Triggers[0].AuthenticationRef == nil || so.Spec.Triggers[0].Metadata[controllers.MetadataEnableTLS] != "true" {
			return fmt.Errorf("trigger %+v", so.Spec.Triggers[0])
		}
		return nil
	})
	noWrites(t, withTLS, ns, s.Name)

	tlsOff := &controllers.LLMInferenceServiceReconciler{Client: k8s, Config: cfg, Recorder: rec}
	_, err := reconcileOnce(t, tlsOff, ns, s.Name)
	must(t, err)
	must(t, get(so, ns, s.Name))
	tr := so.Spec.Triggers[0]
	if tr.AuthenticationRef != nil || tr.Metadata[controllers.MetadataEnableTLS] != "" {
		t.Fatalf("with TLS off the trigger keeps authenticationRef %+v and metadata %v", tr.AuthenticationRef, tr.Metadata)
	}
	noWrites(t, cfg, ns, s.Name)
}

// What other managers own survives the operator's applies: a user's annotation and label on the
// Deployment, and with autoscaling the HPA's replicas. The operator's ownership of spec.replicas moves
// cleanly: with autoscaling on it owns none and the count stays where the HPA put it; turned off, it
// owns the count again and spec.replicas rules.
func TestFieldsOfOtherManagersSurvive(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b-autoscaling.yaml")
	s.Spec.Replicas = ptr.To[int32](3)
	must(t, k8s.Create(context.Background(), s))
	name := s.Name
	deployment(t, ns, name)

	// A user labels and annotates the Deployment with kubectl, and the operator is made to apply again.
	eventually(t, "label and annotate the Deployment", func() error {
		d := &appsv1.Deployment{}
		if err := get(d, ns, name); err != nil {
			return err
		}
		d.Labels["team"] = "search"
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations["example.com/oncall"] = "team-a"
		return k8s.Update(context.Background(), d, client.FieldOwner("kubectl-edit"))
	})
	edit(t, ns, name, func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Engine.Args = append(s.Spec.Engine.Args, "--enable-prefix-caching")
	})
	waitDeployment(t, ns, name, "the new arg, the user's label and annotation", func(d *appsv1.Deployment) bool {
		return slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--enable-prefix-caching") &&
			d.Labels["team"] == "search" && d.Annotations["example.com/oncall"] == "team-a"
	})

	// Autoscaling on from the start: the operator handed the starting size (3) to the HPA.
	waitDeployment(t, ns, name, "3 replicas, not owned by the operator", func(d *appsv1.Deployment) bool {
		return *d.Spec.Replicas == 3 && !ownsReplicas(d)
	})
	markOnePodReady(t, ns, name)
	condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)
	scaleTo(t, ns, name, 6) // as the HPA does
	edit(t, ns, name, func(s *v1alpha1.LLMInferenceService) {
		s.Spec.Engine.Args = s.Spec.Engine.Args[:len(s.Spec.Engine.Args)-1]
	})
	waitDeployment(t, ns, name, "the arg removed, the HPA's 6 replicas kept", func(d *appsv1.Deployment) bool {
		return !slices.Contains(d.Spec.Template.Spec.Containers[0].Args, "--enable-prefix-caching") && *d.Spec.Replicas == 6
	})
	noWrites(t, cfg, ns, name)

	setAutoscaling(t, ns, name, false)
	waitDeployment(t, ns, name, "spec.replicas (3), owned by the operator", func(d *appsv1.Deployment) bool {
		return *d.Spec.Replicas == 3 && ownsReplicas(d)
	})
	setAutoscaling(t, ns, name, true)
	waitDeployment(t, ns, name, "3 replicas, handed to the HPA again", func(d *appsv1.Deployment) bool {
		return *d.Spec.Replicas == 3 && !ownsReplicas(d)
	})
	condition(t, ns, name, v1alpha1.ConditionAutoscaling, controllers.ReasonScaledObjectReady)
	noWrites(t, cfg, ns, name)
	d := deployment(t, ns, name)
	if d.Labels["team"] != "search" || d.Annotations["example.com/oncall"] != "team-a" {
		t.Fatalf("the user's label or annotation is gone: %v %v", d.Labels, d.Annotations)
	}
}

// Objects an earlier operator wrote with create and update (no server-side apply) are migrated: the fields
// it set move to the apply manager, so that a field removed from the spec leaves the object, while what a
// user changed by hand stays theirs.
func TestObjectsWrittenByUpdateAreMigrated(t *testing.T) {
	ns, s := sampleIn(t, "llama-3-8b.yaml")
	createUnmanaged(t, s)
	must(t, get(s, ns, s.Name))

	// The earlier operator: its builders' objects, created by a client whose manager is its binary's name.
	for _, obj := range []client.Object{controllers.BuildModelCache(s, cfg), controllers.BuildDeployment(s, cfg), controllers.BuildService(s)} {
		must(t, controllerutil.SetControllerReference(s, obj, k8s.Scheme()))
		must(t, k8s.Create(context.Background(), obj, client.FieldOwner("operator")))
	}
	eventually(t, "a user annotates the Deployment", func() error {
		d := &appsv1.Deployment{}
		if err := get(d, ns, s.Name); err != nil {
			return err
		}
		d.Annotations = map[string]string{"example.com/oncall": "team-a"}
		return k8s.Update(context.Background(), d, client.FieldOwner("kubectl-edit"))
	})

	// The token is removed from the spec; the new operator reconciles.
	edit(t, ns, s.Name, func(s *v1alpha1.LLMInferenceService) { s.Spec.Model.Source.HuggingFaceTokenSecret = "" })
	// The migration is conditional on the resourceVersion read: a write by the deployment controller in
	// between makes it a conflict, which the reconciler retries.
	rec := events.NewFakeRecorder(100)
	r := &controllers.LLMInferenceServiceReconciler{Client: k8s, Config: cfg, Recorder: rec}
	d := &appsv1.Deployment{}
	reconcileUntil(t, r, ns, s.Name, "HF_TOKEN removed from the Deployment an earlier operator created", func() error {
		if err := get(d, ns, s.Name); err != nil {
			return err
		}
		if hasEnv(d.Spec.Template.Spec.Containers[0], "HF_TOKEN") || hasEnv(d.Spec.Template.Spec.InitContainers[0], "HF_TOKEN") {
			return errors.New("HF_TOKEN is still there")
		}
		return nil
	})
	if d.Annotations["example.com/oncall"] != "team-a" {
		t.Fatalf("the user's annotation is gone: %v", d.Annotations)
	}
	for _, e := range d.ManagedFields {
		if e.Manager == "operator" {
			t.Fatalf("the earlier operator's manager still owns fields: %+v", e)
		}
	}
	var migrations []string
	for _, e := range drain(rec) {
		if strings.Contains(e, "Migrated") {
			migrations = append(migrations, e)
		}
	}
	if len(migrations) != 3 {
		t.Fatalf("want one Migrated event per object (PVC, Deployment, Service), got %q", migrations)
	}
	noWrites(t, cfg, ns, s.Name)
}

// unmanagedLabel keeps a service away from the suite's operator, for tests that drive a reconciler of
// their own (another configuration, or an earlier operator's writes).
const unmanagedLabel = "test.llm-d.ai/unmanaged"

// createUnmanaged creates a service that the suite's operator leaves alone.
func createUnmanaged(t *testing.T, s *v1alpha1.LLMInferenceService) {
	t.Helper()
	s.Labels = map[string]string{unmanagedLabel: "true"}
	must(t, k8s.Create(context.Background(), s))
}

// noWrites runs one reconcile of the service with a reconciler of configuration c whose client counts
// writes, and fails the test if it writes anything.
func noWrites(t *testing.T, c controllers.Config, ns, name string) {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	must(t, err)
	w := &writes{}
	r := &controllers.LLMInferenceServiceReconciler{Client: counted(t, wc, w), Config: c, Recorder: events.NewFakeRecorder(100)}
	// The suite's operator may still be finishing its own reconcile of the last change.
	eventually(t, "a reconcile that writes nothing", func() error {
		w.reset()
		if _, err := reconcileOnce(t, r, ns, name); err != nil {
			return err
		}
		if n := w.total(); n != 0 {
			return fmt.Errorf("a reconcile at steady state wrote %d times: %s", n, w)
		}
		return nil
	})
}

// reconcileUntil reconciles with r until done returns nil.
func reconcileUntil(t *testing.T, r *controllers.LLMInferenceServiceReconciler, ns, name, what string, done func() error) {
	t.Helper()
	eventually(t, what, func() error {
		if _, err := reconcileOnce(t, r, ns, name); err != nil {
			return err
		}
		return done()
	})
}

// waitDeployment waits until the service's Deployment satisfies ok.
func waitDeployment(t *testing.T, ns, name, what string, ok func(*appsv1.Deployment) bool) {
	t.Helper()
	eventually(t, "the Deployment "+what, func() error {
		d := &appsv1.Deployment{}
		if err := get(d, ns, name); err != nil {
			return err
		}
		if !ok(d) {
			return errors.New("not yet")
		}
		return nil
	})
}

func hasEnv(c corev1.Container, name string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
}

// ownsReplicas reports whether the operator's apply manager owns the Deployment's spec.replicas.
func ownsReplicas(d *appsv1.Deployment) bool {
	for _, e := range d.ManagedFields {
		if e.Manager == controllers.FieldManager && e.Operation == metav1.ManagedFieldsOperationApply &&
			strings.Contains(string(e.FieldsV1.Raw), `"f:replicas"`) {
			return true
		}
	}
	return false
}
