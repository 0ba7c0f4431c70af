package chart

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/llm-d/llm-d/internal/repo"
	"github.com/llm-d/llm-d/test/testenv"
)

// TestCreateOnAPIServer creates every object each value set renders on a real kube-apiserver, with
// llm-d's, KEDA's and prometheus-operator's CRDs installed, so that the server's validation (Deployment
// and RBAC schemas, the ServiceMonitor and PrometheusRule OpenAPI schemas) judges the chart.
func TestCreateOnAPIServer(t *testing.T) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })

	dir, err := prometheusOperatorDir()
	if err != nil {
		t.Fatal(err)
	}
	crds := filepath.Join(dir, "example", "prometheus-operator-crd")
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{
			filepath.Join(crds, "monitoring.coreos.com_servicemonitors.yaml"),
			filepath.Join(crds, "monitoring.coreos.com_prometheusrules.yaml"),
		},
		ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatalf("installing prometheus-operator's CRDs: %v", err)
	}

	// Strict: an unknown or misplaced field is an error, not a warning the server drops it with.
	c := client.WithFieldValidation(env.Client, metav1.FieldValidationStrict)
	ctx := context.Background()
	for _, v := range valueSets {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v.namespace}}
		if err := c.Create(ctx, ns); err != nil {
			t.Fatalf("creating namespace %s: %v", v.namespace, err)
		}
		for _, o := range render(t, v) {
			if ns := o.GetNamespace(); ns != "" && ns != v.namespace { // KEDA's, for the TLS client Secret
				if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
					t.Fatal(err)
				}
			}
			if err := c.Create(ctx, o); err != nil {
				t.Errorf("%s: creating %s %s/%s: %v", v.name, o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
	}
}

// prometheusOperatorDir downloads (once per machine) the prometheus-operator release that
// test/tools/promcrds pins and returns its directory in the module cache.
func prometheusOperatorDir() (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/prometheus-operator/prometheus-operator")
	cmd.Dir = filepath.Join(repo.Root(), "test", "tools", "promcrds")
	out, err := cmd.Output() // on failure, the JSON still carries the reason in Error
	var m struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &m); jerr != nil || m.Error != "" || err != nil {
		return "", fmt.Errorf("go mod download prometheus-operator in test/tools/promcrds: %v %s", err, m.Error)
	}
	return m.Dir, nil
}
