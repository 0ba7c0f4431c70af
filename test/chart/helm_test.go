// Package chart tests the Helm chart in charts/llm-d with the real helm CLI (built by hack/tools.sh from
// test/tools/helm): lint, rendering with several value sets, the values schema, the chart's copies of the
// generated CRDs and RBAC, and creating every rendered object on a real kube-apiserver, which validates
// them against the real schemas.
package chart

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/internal/repo"
)

var (
	chartDir = filepath.Join(repo.Root(), "charts", "llm-d")

	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// helm runs the helm CLI on the chart with a private home, so that nothing of the user's helm
// configuration (repositories, plugins, registry logins) changes what the tests see.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helmOnce.Do(func() {
		var dir string
		if dir, helmErr = repo.Tools("helm"); helmErr == nil {
			helmPath = filepath.Join(dir, "helm")
		}
	})
	if helmErr != nil {
		t.Fatalf("helm: %v", helmErr)
	}
	home := t.TempDir()
	cmd := exec.Command(helmPath, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"KUBECONFIG="+filepath.Join(home, "no-kubeconfig"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String() + stderr.String(), err
	}
	return stdout.String(), nil
}

// valueSet is one way of installing the chart: a release name, its namespace and --set flags.
type valueSet struct {
	name      string
	release   string
	namespace string
	set       []string
}

// The value sets every test renders. Release names differ so that all of them can be created on one API
// server side by side (cluster-scoped objects carry the release name).
var (
	defaults       = valueSet{"defaults", "llm-d", "llm-d-system", nil}
	scalerDisabled = valueSet{"scaler disabled", "llm-d-noscaler", "llm-d-noscaler", []string{"scaler.enabled=false"}}
	monitoring     = valueSet{"monitoring", "llm-d-mon", "llm-d-mon", []string{
		"monitoring.serviceMonitor.enabled=true", "monitoring.prometheusRule.enabled=true",
		"monitoring.dashboard.enabled=true", "global.storageClass=standard"}}
	leaderElection = valueSet{"leader election", "llm-d-ha", "llm-d-ha", []string{"operator.replicas=2"}}
	tlsOn          = valueSet{"mutual TLS", "llm-d-tls", "llm-d-tls", []string{"scaler.tls.enabled=true", "scaler.tls.kedaNamespace=keda-tls"}}
	valueSets      = []valueSet{defaults, scalerDisabled, monitoring, leaderElection, tlsOn}
)

func (v valueSet) args(cmd ...string) []string {
	args := append(cmd, v.release, chartDir, "--namespace", v.namespace)
	for _, s := range v.set {
		args = append(args, "--set", s)
	}
	return args
}

// render runs `helm template` and returns the objects it prints, in order.
func render(t *testing.T, v valueSet) []*unstructured.Unstructured {
	t.Helper()
	out, err := helm(t, v.args("template")...)
	if err != nil {
		t.Fatalf("helm template (%s): %v\n%s", v.name, err, out)
	}
	objs, err := parseManifests(out)
	if err != nil {
		t.Fatalf("parsing helm template output (%s): %v\n%s", v.name, err, out)
	}
	return objs
}

// parseManifests splits a multi-document YAML stream into objects, skipping empty documents.
func parseManifests(s string) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	var objs []*unstructured.Unstructured
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		js, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(js)); s == "null" || s == "{}" {
			continue // a template that rendered nothing but comments
		}
		// Unstructured's own JSON decoding keeps integers as int64, as the API machinery expects.
		o := &unstructured.Unstructured{}
		if err := o.UnmarshalJSON(js); err != nil {
			return nil, err
		}
		objs = append(objs, o)
	}
}

// find returns the object of that kind and name, failing the test when there is none.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q among the rendered objects: %v", kind, name, names(objs))
	return nil
}

// names lists objects as Kind/name, sorted as rendered, for failure messages and exact-set assertions.
func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// containerArgs returns the args of a Deployment's only container.
func containerArgs(t *testing.T, d *unstructured.Unstructured) []string {
	t.Helper()
	c := container(t, d)
	args, _, _ := unstructured.NestedStringSlice(c, "args")
	return args
}

func container(t *testing.T, d *unstructured.Unstructured) map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%s: want one container, got %d", d.GetName(), len(cs))
	}
	return cs[0].(map[string]any)
}

func hasArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

func argWithPrefix(args []string, prefix string) (string, bool) {
	for _, a := range args {
		if strings.HasPrefix(a, prefix) {
			return a, true
		}
	}
	return "", false
}
