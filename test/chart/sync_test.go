package chart

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/internal/repo"
)

// TestCRDsMatchGenerated fails when charts/llm-d/crds is not a byte-for-byte copy of config/crd/bases:
// Helm can only package files inside the chart, so the chart carries copies of what `make manifests`
// generates, and they must not drift.
func TestCRDsMatchGenerated(t *testing.T) {
	const fix = "run: cp config/crd/bases/*.yaml charts/llm-d/crds/"
	gen := filepath.Join(repo.Root(), "config", "crd", "bases")
	chart := filepath.Join(chartDir, "crds")
	want, err := filepath.Glob(filepath.Join(gen, "*.yaml"))
	if err != nil || len(want) == 0 {
		t.Fatalf("no generated CRDs in %s: %v", gen, err)
	}
	for _, src := range want {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(chart, filepath.Base(src)))
		if err != nil || !bytes.Equal(a, b) {
			t.Errorf("charts/llm-d/crds/%s differs from config/crd/bases (%v); %s", filepath.Base(src), err, fix)
		}
	}
	have, _ := filepath.Glob(filepath.Join(chart, "*"))
	for _, f := range have {
		if _, err := os.Stat(filepath.Join(gen, filepath.Base(f))); err != nil {
			t.Errorf("charts/llm-d/crds/%s is no longer generated: remove it, then %s", filepath.Base(f), fix)
		}
	}
}

// TestClusterRoleRulesMatchGenerated renders the chart and compares its ClusterRoles' rules with the ones
// controller-gen writes from the RBAC markers, so that the installed permissions follow the code.
func TestClusterRoleRulesMatchGenerated(t *testing.T) {
	objs := render(t, defaults)
	for _, tc := range []struct{ component, generated, copy string }{
		{"operator", "config/rbac/operator/role.yaml", "charts/llm-d/files/rbac/operator-role.yaml"},
		{"scaler", "config/rbac/scaler/role.yaml", "charts/llm-d/files/rbac/scaler-role.yaml"},
	} {
		raw, err := os.ReadFile(filepath.Join(repo.Root(), tc.generated))
		if err != nil {
			t.Fatal(err)
		}
		var want rbacv1.ClusterRole
		if err := yaml.UnmarshalStrict(bytes.TrimPrefix(raw, []byte("---\n")), &want); err != nil {
			t.Fatalf("%s: %v", tc.generated, err)
		}
		var got rbacv1.ClusterRole
		u := find(t, objs, "ClusterRole", "llm-d-"+tc.component)
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &got); err != nil {
			t.Fatal(err)
		}
		if len(want.Rules) == 0 || !reflect.DeepEqual(got.Rules, want.Rules) {
			t.Errorf("the chart's %s ClusterRole rules differ from %s;\nrun: cp %s %s\ngot:  %+v\nwant: %+v",
				tc.component, tc.generated, tc.generated, tc.copy, got.Rules, want.Rules)
		}
	}
}
