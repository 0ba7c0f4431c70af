package chart

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestValuesReachThePods checks that the scheduling, image and scaler values land where they mean to.
func TestValuesReachThePods(t *testing.T) {
	objs := render(t, valueSet{"custom", "llm-d", "llm-d-system", []string{
		"global.imagePullSecrets[0].name=registry",
		"operator.image.tag=v9", "operator.image.pullPolicy=Always",
		"operator.nodeSelector.pool=system", "operator.podAnnotations.team=ml",
		"operator.extraArgs[0]=--zap-log-level=debug",
		"scaler.tolerations[0].key=dedicated", "scaler.tolerations[0].operator=Exists",
		"scaler.scrapeInterval=10s", "scaler.scrapeTimeout=3s", "scaler.scrapeWorkers=8",
		"scaler.maxPayloadBytes=1048576", "scaler.maxSampleAge=45s",
		"operator.scalerAddress=elsewhere.example:9090",
		"router.eppImage=registry.example/epp:v1.5.0", "router.gateway=infra/inference-gateway",
	}})
	op := find(t, objs, "Deployment", "llm-d-operator")
	pod, _, _ := unstructured.NestedMap(op.Object, "spec", "template", "spec")
	if !reflect.DeepEqual(pod["imagePullSecrets"], []any{map[string]any{"name": "registry"}}) {
		t.Errorf("imagePullSecrets = %v", pod["imagePullSecrets"])
	}
	if !reflect.DeepEqual(pod["nodeSelector"], map[string]any{"pool": "system"}) {
		t.Errorf("nodeSelector = %v", pod["nodeSelector"])
	}
	if a := op.Object["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any)["annotations"]; !reflect.DeepEqual(a, map[string]any{"team": "ml"}) {
		t.Errorf("pod annotations = %v", a)
	}
	c := container(t, op)
	if c["image"] != "ghcr.io/llm-d/llm-d-operator:v9" || c["imagePullPolicy"] != "Always" {
		t.Errorf("operator image = %v %v", c["image"], c["imagePullPolicy"])
	}
	args := containerArgs(t, op)
	for _, a := range []string{"--zap-log-level=debug", "--scaler-address=elsewhere.example:9090",
		"--epp-image=registry.example/epp:v1.5.0", "--gateway=infra/inference-gateway"} {
		if !hasArg(args, a) {
			t.Errorf("operator args %v lack %s", args, a)
		}
	}

	sc := find(t, objs, "Deployment", "llm-d-scaler")
	tol, _, _ := unstructured.NestedSlice(sc.Object, "spec", "template", "spec", "tolerations")
	if !reflect.DeepEqual(tol, []any{map[string]any{"key": "dedicated", "operator": "Exists"}}) {
		t.Errorf("scaler tolerations = %v", tol)
	}
	sargs := containerArgs(t, sc)
	for _, a := range []string{"--scrape-interval=10s", "--scrape-timeout=3s", "--scrape-workers=8",
		"--max-payload-bytes=1048576", "--max-sample-age=45s"} {
		if !hasArg(sargs, a) {
			t.Errorf("scaler args %v lack %s", sargs, a)
		}
	}
}
