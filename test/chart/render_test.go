package chart

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/llm-d/llm-d/images"
)

func TestLint(t *testing.T) {
	for _, v := range valueSets {
		t.Run(v.name, func(t *testing.T) {
			args := append([]string{"lint", chartDir, "--strict", "--namespace", v.namespace}, setFlags(v)...)
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("helm lint: %v\n%s", err, out)
			}
		})
	}
}

// releaseImage is the reference a release publishes the image under: the registry, the name and the
// chart's appVersion (images.Build's defaults, what the chart's values must default to).
func releaseImage(t *testing.T, im images.Image) string {
	t.Helper()
	root, err := images.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	v, err := images.AppVersion(root)
	if err != nil {
		t.Fatal(err)
	}
	return images.DefaultRegistry + "/" + im.Name + ":" + v
}

func setFlags(v valueSet) []string {
	var out []string
	for _, s := range v.set {
		out = append(out, "--set", s)
	}
	return out
}

func TestDefaults(t *testing.T) {
	objs := render(t, defaults)
	want := []string{
		"ServiceAccount/llm-d-operator", "ServiceAccount/llm-d-scaler",
		"ClusterRole/llm-d-operator", "ClusterRole/llm-d-scaler",
		"ClusterRoleBinding/llm-d-operator", "ClusterRoleBinding/llm-d-scaler",
		"Role/llm-d-operator-leader-election", "RoleBinding/llm-d-operator-leader-election",
		"Service/llm-d-operator-metrics", "Service/llm-d-scaler",
		"Deployment/llm-d-operator", "Deployment/llm-d-scaler",
	}
	assertSameSet(t, names(objs), want)

	op := find(t, objs, "Deployment", "llm-d-operator")
	args := containerArgs(t, op)
	for _, a := range []string{"--scaler-address=llm-d-scaler.llm-d-system.svc:9090",
		"--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"} {
		if !hasArg(args, a) {
			t.Errorf("operator args %v lack %s", args, a)
		}
	}
	for _, prefix := range []string{"--leader-elect", "--default-storage-class"} {
		if a, ok := argWithPrefix(args, prefix); ok {
			t.Errorf("operator has %s by default", a)
		}
	}
	if img, _, _ := unstructured.NestedString(container(t, op), "image"); img != releaseImage(t, images.Operator) {
		t.Errorf("operator image = %q, want %s, the release's image", img, releaseImage(t, images.Operator))
	}
	assertProbes(t, op)

	sc := find(t, objs, "Deployment", "llm-d-scaler")
	sargs := containerArgs(t, sc)
	for _, a := range []string{"--grpc-address=:9090", "--scrape-interval=5s", "--scrape-timeout=2s",
		"--scrape-workers=64", "--max-payload-bytes=4194304"} {
		if !hasArg(sargs, a) {
			t.Errorf("scaler args %v lack %s", sargs, a)
		}
	}
	if img, _, _ := unstructured.NestedString(container(t, sc), "image"); img != releaseImage(t, images.Scaler) {
		t.Errorf("scaler image = %q, want %s, the release's image", img, releaseImage(t, images.Scaler))
	}
	svc := find(t, objs, "Service", "llm-d-scaler")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	got := map[string]int64{}
	for _, p := range ports {
		pm := p.(map[string]any)
		got[pm["name"].(string)] = toInt64(pm["port"])
	}
	if !reflect.DeepEqual(got, map[string]int64{"grpc": 9090, "metrics": 8080}) {
		t.Errorf("scaler Service ports = %v, want grpc 9090 and metrics 8080", got)
	}
	for _, d := range []*unstructured.Unstructured{op, sc} {
		assertRestricted(t, d)
	}
}

func TestScalerDisabled(t *testing.T) {
	objs := render(t, scalerDisabled)
	for _, n := range names(objs) {
		if strings.Contains(n, "-scaler") {
			t.Errorf("scaler.enabled=false still renders %s", n)
		}
	}
	args := containerArgs(t, find(t, objs, "Deployment", "llm-d-noscaler-operator"))
	if a, ok := argWithPrefix(args, "--scaler-address"); ok {
		t.Errorf("operator points at a scaler that is not installed: %s", a)
	}
}

func TestLeaderElection(t *testing.T) {
	objs := render(t, leaderElection)
	op := find(t, objs, "Deployment", "llm-d-ha-operator")
	if r, _, _ := unstructured.NestedInt64(op.Object, "spec", "replicas"); r != 2 {
		t.Errorf("replicas = %d, want 2", r)
	}
	if args := containerArgs(t, op); !hasArg(args, "--leader-elect") {
		t.Errorf("two operator replicas without --leader-elect: %v", args)
	}

	one := valueSet{"leader election, one replica", "llm-d", "llm-d-system", []string{"operator.leaderElection.enabled=true"}}
	if args := containerArgs(t, find(t, render(t, one), "Deployment", "llm-d-operator")); !hasArg(args, "--leader-elect") {
		t.Errorf("operator.leaderElection.enabled=true without --leader-elect: %v", args)
	}

	role := find(t, objs, "Role", "llm-d-ha-operator-leader-election")
	rules, _, _ := unstructured.NestedSlice(role.Object, "rules")
	var leases bool
	for _, r := range rules {
		rm := r.(map[string]any)
		if reflect.DeepEqual(rm["resources"], []any{"leases"}) &&
			reflect.DeepEqual(rm["verbs"], []any{"get", "create", "update"}) {
			leases = true
		}
	}
	if !leases {
		t.Errorf("leader-election Role lacks leases get/create/update: %v", rules)
	}
}

func TestMonitoring(t *testing.T) {
	objs := render(t, monitoring)
	vllm := find(t, objs, "ServiceMonitor", "llm-d-mon-vllm")
	sel, _, _ := unstructured.NestedStringMap(vllm.Object, "spec", "selector", "matchLabels")
	if !reflect.DeepEqual(sel, map[string]string{"app.kubernetes.io/managed-by": "llm-d"}) {
		t.Errorf("vLLM ServiceMonitor selects %v", sel)
	}
	eps, _, _ := unstructured.NestedSlice(vllm.Object, "spec", "endpoints")
	if len(eps) != 1 || !reflect.DeepEqual(eps[0], map[string]any{"port": "metrics", "interval": "15s", "path": "/metrics"}) {
		t.Errorf("vLLM ServiceMonitor endpoints = %v, want port metrics, 15s, /metrics", eps)
	}
	find(t, objs, "ServiceMonitor", "llm-d-mon-components")

	rule := find(t, objs, "PrometheusRule", "llm-d-mon")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	exprs := map[string]string{}
	for _, g := range groups {
		rs, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
		for _, r := range rs {
			rm := r.(map[string]any)
			name, _ := rm["alert"].(string)
			if name == "" {
				name, _ = rm["record"].(string)
			}
			exprs[name], _ = rm["expr"].(string)
		}
	}
	for name, parts := range map[string][]string{
		"VLLMKVCacheHigh":                             {"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "> 0.8"},
		"VLLMQueueHigh":                               {"vllm:num_requests_waiting"},
		"LLMDScalerScrapeErrors":                      {"rate(llmd_scaler_scrape_errors_total[5m]) > 0"},
		"namespace_pod:vllm_generation_tokens:rate1m": {"sum by (namespace, pod) (rate(vllm:generation_tokens_total[1m]))"},
	} {
		for _, p := range parts {
			if !strings.Contains(exprs[name], p) {
				t.Errorf("rule %s: expr %q lacks %q", name, exprs[name], p)
			}
		}
	}

	cm := find(t, objs, "ConfigMap", "llm-d-mon-dashboard")
	if cm.GetLabels()["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels = %v, want grafana_dashboard: \"1\"", cm.GetLabels())
	}
	if js, _, _ := unstructured.NestedString(cm.Object, "data", "llm-d.json"); !strings.Contains(js, `"title": "llm-d"`) {
		t.Errorf("dashboard ConfigMap holds no dashboard: %.200s", js)
	}

	args := containerArgs(t, find(t, objs, "Deployment", "llm-d-mon-operator"))
	if !hasArg(args, "--default-storage-class=standard") {
		t.Errorf("global.storageClass=standard not passed on: %v", args)
	}
}

// TestSchemaRejects checks that values.schema.json turns mistakes into errors that name the key.
func TestSchemaRejects(t *testing.T) {
	for _, tc := range []struct {
		set  string
		want []string
	}{
		{"scaler.enabled=notabool", []string{"scaler", "enabled", "boolean"}},
		{"operator.replicas=two", []string{"operator", "replicas", "integer"}},
		{"scaler.scrapeInterval=5", []string{"scaler", "scrapeInterval"}},
		{"hfToken=hf_secret", []string{"hfToken"}},
		{"operator.imagee.tag=x", []string{"imagee"}},
		{"router.gateway=a/b/c", []string{"router", "gateway"}},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := helm(t, "template", "llm-d", chartDir, "--set", tc.set)
			if err == nil {
				t.Fatalf("--set %s was accepted", tc.set)
			}
			if !strings.Contains(out, "values don't meet the specifications of the schema") {
				t.Errorf("--set %s failed, but not on the schema:\n%s", tc.set, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("--set %s: message lacks %q:\n%s", tc.set, w, out)
				}
			}
		})
	}
}

// TestNoSecretData checks that the chart never carries a user's credential: the Hugging Face token is a
// Secret the user creates in the service's namespace, and nothing in any value set renders one. The only
// Secrets are the mutual-TLS certificates the chart generates itself.
func TestNoSecretData(t *testing.T) {
	for _, v := range valueSets {
		for _, o := range render(t, v) {
			if o.GetKind() == "Secret" && (v.name != tlsOn.name || o.Object["type"] != "kubernetes.io/tls") {
				t.Errorf("%s renders Secret %s", v.name, o.GetName())
			}
			for _, c := range podContainers(o) {
				if env, ok := c["env"]; ok {
					t.Errorf("%s: %s container %v sets env %v; the chart passes configuration as flags", v.name, o.GetName(), c["name"], env)
				}
			}
		}
	}
}

func podContainers(o *unstructured.Unstructured) []map[string]any {
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	var out []map[string]any
	for _, c := range cs {
		out = append(out, c.(map[string]any))
	}
	return out
}

func assertProbes(t *testing.T, d *unstructured.Unstructured) {
	t.Helper()
	c := container(t, d)
	for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
		got, _, _ := unstructured.NestedString(c, probe, "httpGet", "path")
		port, _, _ := unstructured.NestedFieldNoCopy(c, probe, "httpGet", "port")
		if got != path || port != "health" {
			t.Errorf("%s %s = %s on port %v, want %s on health (8081)", d.GetName(), probe, got, port, path)
		}
	}
}

// assertRestricted checks the Restricted Pod Security Standard's fields and the service account token.
func assertRestricted(t *testing.T, d *unstructured.Unstructured) {
	t.Helper()
	pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	if pod["automountServiceAccountToken"] != true {
		t.Errorf("%s: automountServiceAccountToken = %v; the programs need the API", d.GetName(), pod["automountServiceAccountToken"])
	}
	sc, _ := container(t, d)["securityContext"].(map[string]any)
	want := map[string]any{
		"runAsNonRoot": true, "runAsUser": int64(65532), "readOnlyRootFilesystem": true,
		"allowPrivilegeEscalation": false,
		"capabilities":             map[string]any{"drop": []any{"ALL"}},
		"seccompProfile":           map[string]any{"type": "RuntimeDefault"},
	}
	for k, v := range want {
		got := sc[k]
		if n, ok := got.(float64); ok {
			got = int64(n)
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("%s: securityContext.%s = %#v, want %#v", d.GetName(), k, sc[k], v)
		}
	}
}

func assertSameSet(t *testing.T, got, want []string) {
	t.Helper()
	g, w := map[string]bool{}, map[string]bool{}
	for _, s := range got {
		g[s] = true
	}
	for _, s := range want {
		w[s] = true
	}
	if !reflect.DeepEqual(g, w) || len(got) != len(want) {
		t.Errorf("rendered objects = %v\nwant %v", got, want)
	}
}

func toInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	return -1
}
