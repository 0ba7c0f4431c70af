package images

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"sigs.k8s.io/yaml"
)

// BuildEnv is the environment the binaries are built in, besides GOOS and GOARCH: static, no C.
var BuildEnv = []string{"CGO_ENABLED=0"}

// BuildFlags are the go build flags of every binary in an image: no local paths and no VCS stamp (so the
// output depends on the sources only), stripped symbols, and the version and revision set through the
// linker. The Dockerfile passes the same.
func BuildFlags(version, revision string) []string {
	return []string{"-trimpath", "-buildvcs=false", "-ldflags=" + LDFlags(version, revision)}
}

// LDFlags are the linker flags: stripped, with version.Version and version.Revision set.
func LDFlags(version, revision string) string {
	return fmt.Sprintf("-s -w -X %s.Version=%s -X %s.Revision=%s", VersionPackage, version, VersionPackage, revision)
}

// buildBinaries builds every image's program for platform p into dir, named for its command, in one go
// build (which builds the shared dependencies once and in parallel).
func buildBinaries(ctx context.Context, o Options, p v1.Platform, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	args := append([]string{"build"}, BuildFlags(o.Version, o.Revision)...)
	args = append(args, "-o", dir+string(os.PathSeparator))
	for _, im := range o.Images {
		args = append(args, "./cmd/"+im.Command)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = o.Root
	cmd.Env = append(append(os.Environ(), BuildEnv...), "GOOS="+p.OS, "GOARCH="+p.Architecture)
	cmd.Stdout, cmd.Stderr = o.Log, o.Log
	fmt.Fprintf(o.Log, "images: GOOS=%s GOARCH=%s %s go %s\n", p.OS, p.Architecture, strings.Join(BuildEnv, " "), strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("images: go build for %s failed (%w); its output went to Options.Log", p, err)
	}
	return nil
}

// ChartFile is the chart whose appVersion is the release version, relative to the module root.
const ChartFile = "charts/llm-d/Chart.yaml"

// AppVersion reads the chart's appVersion: the one version of a release, for the images' tags, the
// binaries' stamp and the chart's default image tag.
func AppVersion(root string) (string, error) {
	c, err := readChart(root)
	return c.AppVersion, err
}

// CheckReleaseTag says whether a git tag may release the tree at root: the tag must be "v" and the chart's
// appVersion, and the chart's version must equal its appVersion, so that the tag, the chart and the images
// move together.
func CheckReleaseTag(root, tag string) error {
	c, err := readChart(root)
	if err != nil {
		return err
	}
	if c.Version != c.AppVersion {
		return fmt.Errorf("%s has version %q and appVersion %q: a release sets both to the same version", ChartFile, c.Version, c.AppVersion)
	}
	if tag != "v"+c.AppVersion {
		return fmt.Errorf("tag %q does not release %s's appVersion %q: tag v%s, or set version and appVersion to the tag's version first",
			tag, ChartFile, c.AppVersion, c.AppVersion)
	}
	return nil
}

type chartMeta struct {
	Version    string `json:"version"`
	AppVersion string `json:"appVersion"`
}

func readChart(root string) (chartMeta, error) {
	var c chartMeta
	b, err := os.ReadFile(filepath.Join(root, ChartFile))
	if err != nil {
		return c, fmt.Errorf("images: reading the release version: %w", err)
	}
	if err := yaml.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("images: %s: %w", ChartFile, err)
	}
	if c.AppVersion == "" {
		return c, fmt.Errorf("images: %s has no appVersion", ChartFile)
	}
	return c, nil
}

// GitRevision is the commit checked out in root, or "unknown" without git or a repository.
func GitRevision(root string) string {
	cmd := exec.Command("git", "rev-parse", "HEAD")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}
