// Package images builds the project's container images without a container engine, a base image or a
// registry: each image is one layer holding a static Go binary (CGO_ENABLED=0, -trimpath) on top of nothing,
// run as the non-root user 65532, with OCI labels naming its source, version and revision. An image is an OCI
// image index with one manifest per platform, so that one reference serves amd64 and arm64 nodes.
//
// The same inputs give the same digests: file times and the creation time are fixed (Options.Created), the
// binaries are built with -trimpath and without VCS stamping, and the layer is compressed by the standard
// library's gzip.
//
// `make images` (hack/images) writes them under bin/images; tests call Build for the host's platform only
// and load the result into a cluster with WriteArchive (`ctr images import`) or Push (a registry on
// 127.0.0.1). The Dockerfile builds the same programs on gcr.io/distroless/static:nonroot for users with
// Docker; a test keeps the two in step.
package images

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// DefaultRegistry is where releases publish the images (and where the chart's default images point).
	DefaultRegistry = "ghcr.io/llm-d"
	// Source is the repository the images are built from: their org.opencontainers.image.source label.
	Source = "https://github.com/llm-d/llm-d"
	// User is the user and group the programs run as: distroless's "nonroot", which the chart's pod security
	// context requires as well.
	User = "65532:65532"
	// WorkingDir is the containers' working directory.
	WorkingDir = "/"
	// Path is the containers' PATH, distroless's.
	Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// OCI annotation and label keys.
const (
	LabelSource      = "org.opencontainers.image.source"
	LabelVersion     = "org.opencontainers.image.version"
	LabelRevision    = "org.opencontainers.image.revision"
	LabelTitle       = "org.opencontainers.image.title"
	LabelDescription = "org.opencontainers.image.description"
)

// Image is one image the project ships: a program under cmd/ and how the container starts it.
type Image struct {
	// Name is the image's repository name under the registry, e.g. "llm-d-operator".
	Name string
	// Command is the program's directory under cmd/; the binary is /<Command> in the image.
	Command string
	// Args follow the binary in the entrypoint; the container's args come after them.
	Args []string
	// Links are absolute paths in the image that are symbolic links to the binary, for a program that also
	// answers to other names (it looks at argv[0]).
	Links []string
	// Description is the image's org.opencontainers.image.description.
	Description string
}

var (
	// Operator runs the operator (cmd/operator).
	Operator = Image{
		Name: "llm-d-operator", Command: "operator",
		Description: "The llm-d operator: runs LLMInferenceServices as vLLM Deployments and scales them with KEDA.",
	}
	// Scaler runs the KEDA external scaler (cmd/scaler).
	Scaler = Image{
		Name: "llm-d-scaler", Command: "scaler",
		Description: "The llm-d KEDA external scaler: replica counts from vLLM's queue depth and decode throughput.",
	}
	// VLLMSim runs the simulated vLLM server (cmd/vllm-sim) in place of a vLLM image: it listens on all
	// interfaces, as vLLM does, and python3 is a link to it, so that the operator's model-download init
	// container (`python3 -c ...` in the vLLM image) runs too.
	VLLMSim = Image{
		Name: "vllm-sim", Command: "vllm-sim",
		Args:        []string{"--host=0.0.0.0"},
		Links:       []string{"/usr/bin/python3"},
		Description: "A simulated vLLM server for clusters without GPUs: vLLM's command line, OpenAI API, /health and /metrics.",
	}
)

// All returns every image the project ships.
func All() []Image { return []Image{Operator, Scaler, VLLMSim} }

// Entrypoint is the image's entrypoint: its binary, then Args.
func (im Image) Entrypoint() []string { return append([]string{"/" + im.Command}, im.Args...) }

// Options say what to build and how to stamp it.
type Options struct {
	// Root is the module's root directory. Empty: the nearest directory at or above the working directory
	// holding this module's go.mod.
	Root string
	// Dir receives the binaries and layers, per platform; it must outlive the built images, whose layers are
	// read from it when they are written or pushed. Required.
	Dir string
	// Images to build. Empty: All().
	Images []Image
	// Platforms as os/arch, e.g. "linux/arm64". Empty: the host's architecture only (linux/GOARCH), the fast
	// path for tests; a cross-build of the operator's dependencies costs minutes the first time.
	Platforms []string
	// Registry is the reference prefix, e.g. "127.0.0.1:5000/llm-d". Empty: DefaultRegistry.
	Registry string
	// Version stamps the binaries, tags the images and fills the version label. Empty: the chart's appVersion.
	Version string
	// Revision stamps the binaries and fills the revision label. Empty: the git commit of Root, else "unknown".
	Revision string
	// Created is the images' creation time and their files' modification time. Zero: the Unix epoch, so
	// that rebuilding the same sources gives the same digests.
	Created time.Time
	// Log receives the go build commands and their output. Nil: discarded.
	Log io.Writer
}

// Built is one built image.
type Built struct {
	Image Image
	// Ref is the image's reference, registry/name:version.
	Ref string
	// Index holds one image per platform, in the order of Options.Platforms.
	Index v1.ImageIndex
}

// Build builds the binaries for every platform and assembles the images. It needs the go command and the
// module's sources; nothing is pulled or pushed.
func Build(ctx context.Context, o Options) ([]Built, error) {
	o, platforms, err := o.complete()
	if err != nil {
		return nil, err
	}
	perImage := make([][]mutate.IndexAddendum, len(o.Images))
	for _, p := range platforms {
		dir := filepath.Join(o.Dir, p.OS+"-"+p.Architecture)
		if err := buildBinaries(ctx, o, p, dir); err != nil {
			return nil, err
		}
		for i, im := range o.Images {
			img, err := platformImage(o, im, p, dir)
			if err != nil {
				return nil, fmt.Errorf("image %s for %s: %w", im.Name, p, err)
			}
			perImage[i] = append(perImage[i], mutate.IndexAddendum{
				Add:        img,
				Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture}},
			})
		}
	}
	built := make([]Built, len(o.Images))
	for i, im := range o.Images {
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		idx = mutate.AppendManifests(idx, perImage[i]...)
		idx = mutate.Annotations(idx, Labels(im, o.Version, o.Revision)).(v1.ImageIndex)
		built[i] = Built{Image: im, Ref: o.Registry + "/" + im.Name + ":" + o.Version, Index: idx}
	}
	return built, nil
}

// complete fills the defaults and checks the options.
func (o Options) complete() (Options, []v1.Platform, error) {
	if o.Dir == "" {
		return o, nil, errors.New("images: Options.Dir is empty: name a directory for the binaries and layers")
	}
	if o.Root == "" {
		root, err := ModuleRoot()
		if err != nil {
			return o, nil, err
		}
		o.Root = root
	}
	if len(o.Images) == 0 {
		o.Images = All()
	}
	if len(o.Platforms) == 0 {
		o.Platforms = []string{HostPlatform()}
	}
	if o.Registry == "" {
		o.Registry = DefaultRegistry
	}
	o.Registry = strings.TrimSuffix(o.Registry, "/")
	if o.Version == "" {
		v, err := AppVersion(o.Root)
		if err != nil {
			return o, nil, err
		}
		o.Version = v
	}
	if o.Revision == "" {
		o.Revision = GitRevision(o.Root)
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	o.Created = o.Created.UTC()
	if o.Log == nil {
		o.Log = io.Discard
	}
	var platforms []v1.Platform
	for _, s := range o.Platforms {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			return o, nil, fmt.Errorf("images: platform %q: %w", s, err)
		}
		if p.OS != "linux" || p.Architecture == "" || p.Variant != "" {
			return o, nil, fmt.Errorf("images: platform %q: want linux/<GOARCH>, e.g. linux/amd64 or linux/arm64", s)
		}
		if slices.ContainsFunc(platforms, func(q v1.Platform) bool { return q.Equals(*p) }) {
			return o, nil, fmt.Errorf("images: platform %q is listed twice", s)
		}
		platforms = append(platforms, *p)
	}
	return o, platforms, nil
}

// HostPlatform is linux/<the architecture this program runs on>: what a node on this machine runs.
func HostPlatform() string { return "linux/" + runtime.GOARCH }

// Labels are the OCI labels of an image's config, also set as annotations on its index.
func Labels(im Image, version, revision string) map[string]string {
	return map[string]string{
		LabelSource:      Source,
		LabelVersion:     version,
		LabelRevision:    revision,
		LabelTitle:       im.Name,
		LabelDescription: im.Description,
	}
}

// platformImage assembles one platform's image from the binary built into dir.
func platformImage(o Options, im Image, p v1.Platform, dir string) (v1.Image, error) {
	return assemble(im, p, filepath.Join(dir, im.Command), filepath.Join(dir, im.Name+".layer.tar.gz"),
		o.Created, Labels(im, o.Version, o.Revision), "images.Build: /"+im.Command+" (cmd/"+im.Command+")", gzip.DefaultCompression)
}

// assemble writes the layer of binary to layerPath and makes the image of it: one layer, User, im's
// entrypoint, labels, and createdBy in its history. level is the layer's gzip level.
func assemble(im Image, p v1.Platform, binary, layerPath string, createdAt time.Time, labels map[string]string, createdBy string, level int) (v1.Image, error) {
	if err := writeLayer(layerPath, binary, im, createdAt, level); err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromFile(layerPath, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	created := v1.Time{Time: createdAt}
	cfg := &v1.ConfigFile{
		Architecture: p.Architecture,
		OS:           p.OS,
		Created:      created,
		Config: v1.Config{
			User:       User,
			Entrypoint: im.Entrypoint(),
			Env:        []string{"PATH=" + Path},
			WorkingDir: WorkingDir,
			Labels:     labels,
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: created, CreatedBy: createdBy},
		MediaType: types.OCILayer,
	})
}

// Prebuilt is the image of a program this package does not build (another project's, built by hack/tools.sh
// or by a test), for the host's platform: how a local cluster runs CoreDNS, KEDA or its pause program as pods
// without pulling their images. The binary is /<im.Command> in the image, ref names the image, and the labels
// hold the title, the description and ref's tag as the version, not this repository's source and revision.
// The layer is written into dir, which must outlive the image. It is stored, not compressed: these images
// stay on this machine, and compressing KEDA's 300 MB of programs takes minutes in a race-enabled test.
func Prebuilt(dir string, im Image, ref, binary string) (Built, error) {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return Built{}, fmt.Errorf("images: reference %q: %w", ref, err)
	}
	p, err := v1.ParsePlatform(HostPlatform())
	if err != nil {
		return Built{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Built{}, err
	}
	labels := map[string]string{LabelTitle: im.Name, LabelVersion: tag.TagStr(), LabelDescription: im.Description}
	img, err := assemble(im, *p, binary, filepath.Join(dir, im.Name+".layer.tar.gz"), time.Unix(0, 0).UTC(), labels,
		"images.Prebuilt: /"+im.Command+" ("+filepath.Base(binary)+")", gzip.NoCompression)
	if err != nil {
		return Built{}, fmt.Errorf("image %s: %w", ref, err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
		Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: p.OS, Architecture: p.Architecture}},
	})
	return Built{Image: im, Ref: tag.Name(), Index: mutate.Annotations(idx, labels).(v1.ImageIndex)}, nil
}

// ModuleRoot finds this module's root at or above the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(b) == modulePathOfThis {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("images: no go.mod of %s at or above the working directory: set Options.Root", modulePathOfThis)
		}
		dir = parent
	}
}

const modulePathOfThis = "github.com/llm-d/llm-d"

// modulePath is the module line of a go.mod.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// VersionPackage is the import path whose Version and Revision the linker sets.
const VersionPackage = modulePathOfThis + "/version"

// CommandPackage is the import path of an image's program.
func CommandPackage(im Image) string { return path.Join(modulePathOfThis, "cmd", im.Command) }
