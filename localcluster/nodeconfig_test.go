package localcluster

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/internal/repo"
)

func TestCNIConfigHasNoDefaultRouteAndNoMasquerade(t *testing.T) {
	b, err := cniConfig("/tmp/x/ipam")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Plugins []struct {
			Type             string `json:"type"`
			IPMasq           bool   `json:"ipMasq"`
			IsDefaultGateway bool   `json:"isDefaultGateway"`
			IPAM             struct {
				Routes []map[string]string `json:"routes"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	p := conf.Plugins[0]
	if p.Type != "bridge" || p.IPMasq || p.IsDefaultGateway {
		t.Fatalf("bridge plugin %+v: want no masquerade and no default gateway", p)
	}
	if len(p.IPAM.Routes) != 1 || p.IPAM.Routes[0]["dst"] != ServiceCIDR {
		t.Fatalf("routes %v, want only %s", p.IPAM.Routes, ServiceCIDR)
	}
}

func TestKubeletAndProxyConfigsAreYAML(t *testing.T) {
	files := nodeFiles{ContainerdSock: "/d/c.sock", PodLogs: "/d/logs", ResolvConf: "/d/resolv.conf"}
	for name, render := range map[string]func() ([]byte, error){
		"kubelet": func() ([]byte, error) {
			return render(kubeletConfig, map[string]any{"Files": files, "Port": 1, "HealthzPort": 2, "ServingCert": "c", "ServingKey": "k", "ClientCA": "ca"})
		},
		"kube-proxy": func() ([]byte, error) {
			return render(proxyConfig, map[string]any{"Kubeconfig": "k", "Node": "n", "HealthzPort": 1, "MetricsPort": 2})
		},
	} {
		b, err := render()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var m map[string]any
		if err := yaml.UnmarshalStrict(b, &m); err != nil {
			t.Fatalf("%s config is not YAML: %v\n%s", name, err, b)
		}
	}
}

func TestPinKEDA(t *testing.T) {
	dep := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: keda-operator}
spec:
  template:
    spec:
      containers:
      - {name: keda-operator, image: "ghcr.io/kedacore/keda:latest", imagePullPolicy: Always}
`), &dep.Object); err != nil {
		t.Fatal(err)
	}
	if err := pinKEDA(dep, "2.21.0", "node-0"); err != nil {
		t.Fatal(err)
	}
	c, _, _ := unstructured.NestedSlice(dep.Object, "spec", "template", "spec", "containers")
	ctr := c[0].(map[string]any)
	if ctr["image"] != "ghcr.io/kedacore/keda:2.21.0" || ctr["imagePullPolicy"] != "IfNotPresent" {
		t.Fatalf("container %v", ctr)
	}
	if node, _, _ := unstructured.NestedString(dep.Object, "spec", "template", "spec", "nodeSelector", "kubernetes.io/hostname"); node != "node-0" {
		t.Fatalf("KEDA's pods are not placed on the real node: nodeSelector hostname %q", node)
	}
	unstructured.SetNestedSlice(dep.Object, []any{map[string]any{"name": "x", "image": "docker.io/library/busybox:1"}}, "spec", "template", "spec", "containers")
	if err := pinKEDA(dep, "2.21.0", "node-0"); err == nil || !strings.Contains(err.Error(), "busybox") {
		t.Fatalf("an image the cluster does not build: got %v, want an error naming it", err)
	}
}

func TestKEDAVersion(t *testing.T) {
	if got := kedaVersion("/root/go/pkg/mod/github.com/kedacore/keda/v2@v2.21.0"); got != "2.21.0" {
		t.Fatalf("got %q", got)
	}
}

// TestKEDAManifestsPin reads KEDA's own kustomization as installKEDAPods does: every Deployment's image must
// be one the cluster builds, and none may be pulled.
func TestKEDAManifestsPin(t *testing.T) {
	dir, err := repo.ModuleDir("github.com/kedacore/keda/v2")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := kustomizationResources(filepath.Join(dir, "config", "minimal"))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if err := pinKEDA(o, kedaVersion(dir), "node-0"); err != nil {
			t.Fatal(err)
		}
	}
	if kinds["Deployment"] != 2 || kinds["APIService"] != 1 || kinds["CustomResourceDefinition"] == 0 {
		t.Fatalf("KEDA's config/minimal holds %v: want its operator and metrics server, the APIService and its CRDs", kinds)
	}
}
