package images

import (
	"archive/tar"
	"context"
	"debug/buildinfo"
	"errors"
	"io"
	"log"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// buildSim builds the vllm-sim image for the host's platform into dir: the smallest image, with a link,
// and the fast path tests take.
func buildSim(t *testing.T, dir string) Built {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var log strings.Builder
	built, err := Build(ctx, Options{Dir: dir, Images: []Image{VLLMSim}, Revision: "0123abc", Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	return built[0]
}

// The image the tests share, built once (its layer stays in simDir until TestMain removes it).
var (
	simOnce  sync.Once
	simDir   string
	simBuilt Built
	simErr   error
)

func sim(t *testing.T) Built {
	t.Helper()
	simOnce.Do(func() {
		if simDir, simErr = os.MkdirTemp("", "images-test-"); simErr == nil {
			simBuilt = buildSim(t, simDir)
		}
	})
	if simErr != nil || simBuilt.Index == nil {
		t.Fatalf("the shared vllm-sim build failed: %v", simErr)
	}
	return simBuilt
}

func TestMain(m *testing.M) {
	code := m.Run()
	if simDir != "" {
		os.RemoveAll(simDir)
	}
	os.Exit(code)
}

func TestBuildVLLMSimForTheHost(t *testing.T) {
	b := sim(t)
	version, err := AppVersion(root(t))
	if err != nil {
		t.Fatal(err)
	}
	if b.Ref != DefaultRegistry+"/vllm-sim:"+version {
		t.Errorf("ref %q, want the registry, the name and the chart's appVersion", b.Ref)
	}
	if mt, _ := b.Index.MediaType(); mt != types.OCIImageIndex {
		t.Errorf("index media type %s", mt)
	}
	wantLabels := Labels(VLLMSim, version, "0123abc")
	img, cf := hostImage(t, b)
	if im, _ := b.Index.IndexManifest(); !maps.Equal(im.Annotations, wantLabels) {
		t.Errorf("index annotations %v, want the labels", im.Annotations)
	}
	c := cf.Config
	if cf.OS != "linux" || cf.Architecture != runtime.GOARCH || !cf.Created.Equal(time.Unix(0, 0)) ||
		c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/vllm-sim", "--host=0.0.0.0"}) ||
		c.WorkingDir != "/" || !slices.Equal(c.Env, []string{"PATH=" + Path}) || !maps.Equal(c.Labels, wantLabels) {
		t.Errorf("config %+v", cf)
	}

	files := layerFiles(t, img)
	if h := files["vllm-sim"]; h == nil || h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != 0 {
		t.Fatalf("the layer's vllm-sim: %+v, want a root-owned 0755 file", h)
	}
	if h := files["usr/bin/python3"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/vllm-sim" {
		t.Fatalf("the layer's usr/bin/python3: %+v, want a link to /vllm-sim", h)
	}
	for n, h := range files {
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s has mtime %v, want the epoch", n, h.ModTime)
		}
	}
	if len(files) != 4 {
		t.Errorf("the layer holds %d entries, want vllm-sim, usr/, usr/bin/ and the link", len(files))
	}
}

// TestBinaryIsStaticAndStamped reads the build settings the Go toolchain records in the binary that went
// into the layer (with -trimpath it leaves out -ldflags), then runs it, under both its names.
func TestBinaryIsStaticAndStamped(t *testing.T) {
	b := sim(t)
	bin := extract(t, b, "vllm-sim")
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	version, _ := AppVersion(root(t))
	if settings["CGO_ENABLED"] != "0" || settings["-trimpath"] != "true" || settings["vcs.revision"] != "" ||
		info.Path != CommandPackage(VLLMSim) {
		t.Fatalf("build settings %v of %s", settings, info.Path)
	}
	if runtime.GOOS != "linux" {
		t.Skipf("the image's binary is for linux; this is %s", runtime.GOOS)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if want := "vllm-sim " + version + " (revision 0123abc)\n"; err != nil || string(out) != want {
		t.Fatalf("vllm-sim --version: %v %q, want %q (the linker's stamp)", err, out, want)
	}
	python := filepath.Join(t.TempDir(), "python3")
	if err := os.Symlink(bin, python); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-c", "from huggingface_hub import snapshot_download")
	cmd.Env = []string{"MODEL_ID=org/model"}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "org/model") {
		t.Fatalf("python3 -c ... through the link: %v\n%s", err, out)
	}
}

// TestSameInputsSameDigest builds twice into different directories.
func TestSameInputsSameDigest(t *testing.T) {
	d1, err := sim(t).Digest()
	if err != nil {
		t.Fatal(err)
	}
	d2, err := buildSim(t, t.TempDir()).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if d1 != d2 {
		t.Fatalf("two builds of the same sources: %s and %s", d1, d2)
	}
}

// TestArchiveIsAnOCILayout writes the archive ctr images import takes, unpacks it and reads it back with
// go-containerregistry's layout reader.
func TestArchiveIsAnOCILayout(t *testing.T) {
	b := sim(t)
	archive := filepath.Join(t.TempDir(), "images.tar")
	if err := WriteArchive(archive, []Built{b}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	untar(t, archive, dir)
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := b.Digest()
	version, _ := AppVersion(root(t))
	d := top.Manifests[0]
	if len(top.Manifests) != 1 || d.Digest.String() != want || d.MediaType != types.OCIImageIndex ||
		d.Annotations[AnnotationContainerdRef] != b.Ref || d.Annotations[AnnotationRefName] != version {
		t.Fatalf("index.json %+v: want the image index %s named %s", top, want, b.Ref)
	}
	inner, err := idx.ImageIndex(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(inner); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "again.tar")
	if err := WriteArchive(second, []Built{b}); err != nil {
		t.Fatal(err)
	}
	if a, c := readFile(t, archive), readFile(t, second); a != c {
		t.Fatal("two archives of the same image differ")
	}
}

// TestPushToALoopbackRegistry pushes to go-containerregistry's registry on 127.0.0.1 under the image's own
// repository path (as a mirror of ghcr.io) and pulls the host's platform back.
func TestPushToALoopbackRegistry(t *testing.T) {
	b := sim(t)
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	pushed, err := Push(context.Background(), []Built{b}, host)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := b.Digest()
	tag, _ := name.NewTag(b.Ref)
	if len(pushed) != 1 || pushed[0].Ref != host+"/"+tag.RepositoryStr()+":"+tag.TagStr() || pushed[0].Digest != want {
		t.Fatalf("pushed %+v, want %s/%s at %s", pushed, host, tag.RepositoryStr(), want)
	}
	ref, err := name.ParseReference(pushed[0].Ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != want {
		t.Fatalf("the registry serves %s, want %s", desc.Digest, want)
	}
	p, _ := v1.ParsePlatform(HostPlatform())
	img, err := remote.Image(ref, remote.WithPlatform(*p))
	if err != nil {
		t.Fatal(err)
	}
	if cf, err := img.ConfigFile(); err != nil || cf.Config.User != User {
		t.Fatalf("pulled config %+v, %v", cf, err)
	}
}

func TestOptionsRefuseWhatCannotBeBuilt(t *testing.T) {
	for _, o := range []Options{
		{},
		{Dir: "d", Platforms: []string{"windows/amd64"}},
		{Dir: "d", Platforms: []string{"linux/arm/v7"}},
		{Dir: "d", Platforms: []string{"linux/amd64", "linux/amd64"}},
	} {
		if _, err := Build(context.Background(), o); err == nil {
			t.Errorf("%+v: built", o)
		}
	}
}

// TestVersionsMoveTogether: the chart's version and appVersion are one release version, the images' tag
// and stamp (AppVersion) and the chart's default image tag ({{ .Chart.AppVersion }}); a release tag must
// name it.
func TestVersionsMoveTogether(t *testing.T) {
	v, err := AppVersion(root(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckReleaseTag(root(t), "v"+v); err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{v, "v" + v + ".1", "v0.0.0-other"} {
		if err := CheckReleaseTag(root(t), tag); err == nil || !strings.Contains(err.Error(), "appVersion") {
			t.Errorf("tag %q: %v, want a refusal naming the appVersion", tag, err)
		}
	}
	values, err := os.ReadFile(filepath.Join(root(t), "charts/llm-d/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range []Image{Operator, Scaler} {
		if !strings.Contains(string(values), "repository: "+DefaultRegistry+"/"+im.Name+"\n") {
			t.Errorf("values.yaml does not default to %s/%s", DefaultRegistry, im.Name)
		}
	}
}

// hostImage is b's only image, which must be for the host's platform, and its config.
func hostImage(t *testing.T, b Built) (v1.Image, *v1.ConfigFile) {
	t.Helper()
	im, err := b.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 || im.Manifests[0].Platform.String() != HostPlatform() {
		t.Fatalf("index %+v: want one manifest for %s", im, HostPlatform())
	}
	img, err := b.Index.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return img, cf
}

func root(t *testing.T) string {
	t.Helper()
	r, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// layerTar opens the uncompressed contents of the image's only layer.
func layerTar(t *testing.T, img v1.Image) io.ReadCloser {
	t.Helper()
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("%d layers (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// layerFiles reads the headers of the image's only layer.
func layerFiles(t *testing.T, img v1.Image) map[string]*tar.Header {
	t.Helper()
	rc := layerTar(t, img)
	defer rc.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = h
	}
}

// extract copies a file out of the host platform's layer into a temporary executable.
func extract(t *testing.T, b Built, file string) string {
	t.Helper()
	im, err := b.Index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := b.Index.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	rc := layerTar(t, img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the layer: %v", file, err)
		}
		if h.Name == file {
			dst := filepath.Join(t.TempDir(), file)
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			return dst
		}
	}
}

func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
