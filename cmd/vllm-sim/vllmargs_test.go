package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/llm-d/llm-d/api/v1alpha1"
	"github.com/llm-d/llm-d/controllers"
	"github.com/llm-d/llm-d/images"
)

func TestVLLMCommandLine(t *testing.T) {
	o, _, err := parseFlags([]string{
		"meta-llama/Meta-Llama-3.1-8B-Instruct", "--dtype", "bfloat16", "--max_model_len=8192",
		"--enable-prefix-caching", "--served-model-name", "llama", "llama-alias", "--tensor-parallel-size", "2",
		"--port", "9000", "--max_num_seqs=32", "-tp", "2", "-O3", "--seed", "-1",
		"--compilation-config", `{"level": 3}`, "--lora-modules", "a=/l/a", "b=/l/b", "--block-size", "32",
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.server.Model != "llama" || !slices.Equal(o.aliases, []string{"llama-alias"}) {
		t.Errorf("served as %q with aliases %q, want llama and [llama-alias]", o.server.Model, o.aliases)
	}
	if o.port != 9000 || o.server.Params.MaxNumSeqs != 32 || o.server.Params.BlockSize != 32 {
		t.Errorf("port %d, max-num-seqs %d, block-size %d: want 9000, 32, 32", o.port, o.server.Params.MaxNumSeqs, o.server.Params.BlockSize)
	}
	want := []string{"--dtype bfloat16", "--max_model_len=8192", "--enable-prefix-caching", "--tensor-parallel-size 2",
		"-tp 2", "-O3", "--seed -1", `--compilation-config {"level": 3}`, "--lora-modules a=/l/a b=/l/b"}
	if !slices.Equal(o.ignored, want) {
		t.Errorf("ignored\n %q\nwant\n %q", o.ignored, want)
	}
}

func TestModelPrecedence(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--model=m"}, "m"},
		{[]string{"--model", "m", "positional"}, "positional"}, // vLLM: the positional model wins
		{[]string{"--model=/model-cache/models", "--served-model-name=org/name"}, "org/name"},
		{[]string{"--served-model-name=a", "--served-model-name", "b"}, "b"}, // the last wins
	} {
		o, _, err := parseFlags(c.args)
		if err != nil || o.server.Model != c.want {
			t.Errorf("%q: model %q (%v), want %q", c.args, o.server.Model, err, c.want)
		}
	}
}

// TestOperatorDeploymentRunsOnVLLMSim feeds the Deployments the operator builds for the article's manifests,
// with --vllm-image set to vllm-sim, to vllm-sim as its image runs them: the init container's download and
// the server's command line must be accepted, the server must answer the Deployment's probes on its port
// and serve the model under the name clients use.
func TestOperatorDeploymentRunsOnVLLMSim(t *testing.T) {
	cfg := controllers.DefaultConfig()
	cfg.VLLMImage = images.DefaultRegistry + "/" + images.VLLMSim.Name + ":test"
	for _, svc := range sampleServices(t) {
		t.Run(svc.Name+"/"+string(svc.Spec.Model.Source.Type), func(t *testing.T) {
			dep := controllers.BuildDeployment(svc, cfg)
			pod := dep.Spec.Template.Spec
			if svc.Spec.Model.Source.Type == "" || svc.Spec.Model.Source.Type == v1alpha1.ModelSourceHuggingFace {
				checkDownload(t, pod.InitContainers[0], cfg.VLLMImage)
			}
			c := pod.Containers[0]
			if c.Image != cfg.VLLMImage || len(c.Command) > 0 {
				t.Fatalf("the server container runs %s with command %q: want the image's entrypoint", c.Image, c.Command)
			}
			args := append(slices.Clone(images.VLLMSim.Args), c.Args...)
			o, _, err := parseFlags(args)
			if err != nil {
				t.Fatalf("vllm-sim %q: %v", args, err)
			}
			if o.host != "0.0.0.0" || o.port != int(c.Ports[0].ContainerPort) || o.server.Model != svc.Spec.Model.ID {
				t.Fatalf("vllm-sim %q listens on %s:%d serving %q, want 0.0.0.0:%d serving %q",
					args, o.host, o.port, o.server.Model, c.Ports[0].ContainerPort, svc.Spec.Model.ID)
			}
			checkServes(t, o, c)
		})
	}
}

// sampleServices are the LLMInferenceServices of config/samples, plus an S3-sourced copy of the first.
func sampleServices(t *testing.T) []*v1alpha1.LLMInferenceService {
	files, err := filepath.Glob("../../config/samples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	var svcs []*v1alpha1.LLMInferenceService
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range strings.Split(string(b), "\n---") {
			svc := &v1alpha1.LLMInferenceService{}
			if err := yaml.Unmarshal([]byte(doc), svc); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if svc.Kind == "LLMInferenceService" {
				svcs = append(svcs, svc)
			}
		}
	}
	if len(svcs) == 0 {
		t.Fatal("no LLMInferenceService in config/samples")
	}
	s3 := svcs[0].DeepCopy()
	s3.Spec.Model.Source = v1alpha1.ModelSource{Type: v1alpha1.ModelSourceS3, URI: "s3://bucket/llama"}
	return append(svcs, s3)
}

// checkDownload runs the init container's command as the vllm-sim image would: through the python3 link.
func checkDownload(t *testing.T, c corev1.Container, image string) {
	t.Helper()
	if c.Image != image || len(c.Command) == 0 {
		t.Fatalf("init container runs %s %q, want %s", c.Image, c.Command, image)
	}
	cmd := c.Command[0]
	resolves := slices.ContainsFunc(images.VLLMSim.Links, func(l string) bool {
		if path.IsAbs(cmd) {
			return l == cmd
		}
		return path.Base(l) == cmd && slices.Contains(strings.Split(images.Path, ":"), path.Dir(l))
	})
	if !resolves || path.Base(cmd) != downloaderName {
		t.Fatalf("init container command %q is not the vllm-sim image's %s link (%q)", cmd, downloaderName, images.VLLMSim.Links)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	var stderr bytes.Buffer
	if code := simulateDownload(c.Command[1:], func(k string) string { return env[k] }, &stderr); code != 0 {
		t.Fatalf("the download %q exited %d: %s", c.Command, code, stderr.String())
	}
}

// checkServes starts vllm-sim with o on a loopback port and checks that the container's probes succeed and
// the model is listed.
func checkServes(t *testing.T, o options, c corev1.Container) {
	t.Helper()
	o.server.Params.StartupDelay = 0
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, o, ln, zap.NewNop()) }()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Error(err)
		}
	}()
	base := "http://" + ln.Addr().String()
	for _, p := range []*corev1.Probe{c.StartupProbe, c.ReadinessProbe, c.LivenessProbe} {
		if p.HTTPGet.Port.StrVal != c.Ports[0].Name {
			t.Fatalf("a probe targets port %v, not the server's %q", p.HTTPGet.Port, c.Ports[0].Name)
		}
		waitOK(t, base+p.HTTPGet.Path)
	}
	body := waitOK(t, base+"/v1/models")
	if !strings.Contains(body, fmt.Sprintf("%q", o.server.Model)) {
		t.Fatalf("/v1/models %s does not list %q", body, o.server.Model)
	}
}

// waitOK polls url until it answers 200 and returns the body.
func waitOK(t *testing.T, url string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("status %s: %s", resp.Status, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDownloadRefusesWhatIsNotTheOperatorsDownload(t *testing.T) {
	env := func(k string) string { return map[string]string{"MODEL_ID": "m"}[k] }
	for _, args := range [][]string{{}, {"script.py"}, {"-c"}, {"-m", "pip"}} {
		var stderr bytes.Buffer
		if code := simulateDownload(args, env, &stderr); code != 2 || !strings.Contains(stderr.String(), "no Python") {
			t.Errorf("python3 %q: exit %d, %q", args, code, stderr.String())
		}
	}
	var stderr bytes.Buffer
	if code := simulateDownload([]string{"-c", "pass"}, func(string) string { return "" }, &stderr); code != 2 {
		t.Errorf("without MODEL_ID: exit %d", code)
	}
}
