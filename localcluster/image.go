package localcluster

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// ScratchImage is an image of static programs from this machine on top of nothing: how the cluster's own
// pods (pause, CoreDNS, KEDA) get images without a base image or a registry, and how a test can run a program
// of its own on the real node (WriteImageArchive, then Cluster.LoadImages).
type ScratchImage struct {
	// Ref names the image, e.g. "ghcr.io/kedacore/keda:2.21.0".
	Ref string
	// Files are the programs: path in the image -> file on this machine, installed with mode 0755.
	Files map[string]string
	// Entrypoint is the container's command.
	Entrypoint []string
	// User is the user the container runs as, uid:gid.
	User string
}

// WriteImageArchive writes images as one docker-format archive (what `ctr images import` and `docker load`
// take), each named by its Ref.
func WriteImageArchive(file string, images []ScratchImage) error {
	refs := map[name.Reference]v1.Image{}
	for _, im := range images {
		tag, err := name.NewTag(im.Ref, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("image %q: %w", im.Ref, err)
		}
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return filesTar(im.Files) })
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Ref, err)
		}
		img, err := mutate.AppendLayers(empty.Image, layer)
		if err != nil {
			return err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cfg = cfg.DeepCopy()
		cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
		cfg.Config.Entrypoint = im.Entrypoint
		cfg.Config.User = im.User
		cfg.Config.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return err
		}
		refs[tag] = img
	}
	return tarball.MultiRefWriteToFile(file, refs)
}

// filesTar streams a tar of files (path in the image -> file here), with their parent directories.
func filesTar(files map[string]string) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := writeFiles(tw, files)
		if cerr := tw.Close(); err == nil {
			err = cerr
		}
		pw.CloseWithError(err)
	}()
	return pr, nil
}

func writeFiles(tw *tar.Writer, files map[string]string) error {
	dests := make([]string, 0, len(files))
	for d := range files {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	dirs := map[string]bool{}
	for _, dest := range dests {
		for d := path.Dir(dest); d != "/" && d != "."; d = path.Dir(d) {
			dirs[strings.TrimPrefix(d, "/")] = true
		}
	}
	sortedDirs := make([]string, 0, len(dirs))
	for d := range dirs {
		sortedDirs = append(sortedDirs, d)
	}
	sort.Strings(sortedDirs)
	for _, d := range sortedDirs {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
			return err
		}
	}
	for _, dest := range dests {
		f, err := os.Open(files[dest])
		if err != nil {
			return err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return err
		}
		hdr := &tar.Header{Name: strings.TrimPrefix(dest, "/"), Typeflag: tar.TypeReg, Mode: 0o755, Size: st.Size()}
		if err := tw.WriteHeader(hdr); err != nil {
			f.Close()
			return err
		}
		_, err = io.Copy(tw, f)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
