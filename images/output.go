package images

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations of an OCI layout's index.json that name an image: the OCI one holds the tag, containerd's the
// whole reference (what `ctr images import` names the image; without it, ctr needs --base-name).
const (
	AnnotationRefName       = "org.opencontainers.image.ref.name"
	AnnotationContainerdRef = "io.containerd.image.name"
)

// Digest is the digest of the image's index: what a pod names with image: ref@digest, what cosign signs.
func (b Built) Digest() (string, error) {
	h, err := b.Index.Digest()
	return h.String(), err
}

// refAnnotations name b in an OCI layout.
func (b Built) refAnnotations() (map[string]string, error) {
	tag, err := name.NewTag(b.Ref, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("images: reference %q: %w", b.Ref, err)
	}
	return map[string]string{AnnotationRefName: tag.TagStr(), AnnotationContainerdRef: tag.Name()}, nil
}

// WriteLayout writes the images into an OCI image layout at dir (for crane, skopeo, oras), replacing the
// layout's index.json and blobs if dir already holds one.
func WriteLayout(dir string, built []Built) error {
	for _, f := range []string{"index.json", "oci-layout", "blobs"} {
		if err := os.RemoveAll(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	for _, b := range built {
		ann, err := b.refAnnotations()
		if err != nil {
			return err
		}
		if err := p.AppendIndex(b.Index, layout.WithAnnotations(ann)); err != nil {
			return fmt.Errorf("images: writing %s into %s: %w", b.Ref, dir, err)
		}
	}
	return nil
}

// WriteArchive writes the images as one OCI layout in a tar file at path: what `ctr -n k8s.io images
// import` (add --all-platforms to import every platform, not only the host's), `podman load` and
// `docker load` take. Entries are in a fixed order with fixed times: the same images give the same file.
func WriteArchive(path string, built []Built) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return writeArchive(f, built)
}

func writeArchive(w io.Writer, built []Built) error {
	a := &archive{tw: tar.NewWriter(w), seen: map[v1.Hash]bool{}}
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	if err := a.file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	for _, b := range built {
		ann, err := b.refAnnotations()
		if err != nil {
			return err
		}
		desc, err := a.index(b.Index)
		if err != nil {
			return fmt.Errorf("images: archiving %s: %w", b.Ref, err)
		}
		desc.Annotations = ann
		index.Manifests = append(index.Manifests, desc)
	}
	raw, err := json.Marshal(index)
	if err != nil {
		return err
	}
	if err := a.file("index.json", raw); err != nil {
		return err
	}
	return a.tw.Close()
}

// archive writes an OCI layout's files into a tar, each blob once.
type archive struct {
	tw   *tar.Writer
	seen map[v1.Hash]bool
}

func (a *archive) file(name string, data []byte) error {
	return a.stream(name, int64(len(data)), bytes.NewReader(data))
}

func (a *archive) stream(name string, size int64, r io.Reader) error {
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, ModTime: time.Unix(0, 0)}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.Copy(a.tw, r)
	if err == nil && n != size {
		err = fmt.Errorf("%s: wrote %d bytes, want %d", name, n, size)
	}
	return err
}

// blob writes raw under its digest unless written already.
func (a *archive) blob(h v1.Hash, raw []byte) error {
	if a.seen[h] {
		return nil
	}
	a.seen[h] = true
	return a.file("blobs/"+h.Algorithm+"/"+h.Hex, raw)
}

// index writes an image index, its images and their blobs, and returns the index's descriptor.
func (a *archive) index(idx v1.ImageIndex) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return v1.Descriptor{}, err
		}
		if err := a.image(img); err != nil {
			return v1.Descriptor{}, err
		}
	}
	return a.manifest(idx, types.OCIImageIndex)
}

// image writes an image's layers, config and manifest.
func (a *archive) image(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		h, err := l.Digest()
		if err != nil {
			return err
		}
		if a.seen[h] {
			continue
		}
		size, err := l.Size()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		err = a.stream("blobs/"+h.Algorithm+"/"+h.Hex, size, rc)
		rc.Close()
		if err != nil {
			return err
		}
		a.seen[h] = true
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	if err := a.blob(cfgName, cfg); err != nil {
		return err
	}
	_, err = a.manifest(img, types.OCIManifestSchema1)
	return err
}

// manifest writes the raw manifest of an image or index and returns its descriptor.
func (a *archive) manifest(m interface {
	RawManifest() ([]byte, error)
	Digest() (v1.Hash, error)
}, mt types.MediaType) (v1.Descriptor, error) {
	raw, err := m.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	h, err := m.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Digest: h, Size: int64(len(raw))}, a.blob(h, raw)
}

// Pushed is an image in a registry, by tag and by digest.
type Pushed struct {
	Ref    string // registry/name:tag
	Digest string // sha256:...
}

// Push uploads each image index to its reference or, when registry is not empty, to the same repository
// path and tag in that registry (host[:port], e.g. "127.0.0.1:5000": a mirror that a containerd hosts.toml
// points the reference's registry at). Plain HTTP is used for loopback and private addresses, HTTPS
// otherwise; credentials come from the Docker config (`docker login`), anonymous without one.
func Push(ctx context.Context, built []Built, registry string) ([]Pushed, error) {
	var out []Pushed
	for _, b := range built {
		tag, err := name.NewTag(b.Ref, name.StrictValidation)
		if err != nil {
			return out, fmt.Errorf("images: reference %q: %w", b.Ref, err)
		}
		if registry != "" {
			if tag, err = name.NewTag(registry+"/"+tag.RepositoryStr()+":"+tag.TagStr(), name.StrictValidation); err != nil {
				return out, fmt.Errorf("images: registry %q: %w", registry, err)
			}
		}
		if err := remote.WriteIndex(tag, b.Index, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return out, fmt.Errorf("images: pushing %s: %w", tag, err)
		}
		d, err := b.Digest()
		if err != nil {
			return out, err
		}
		out = append(out, Pushed{Ref: tag.Name(), Digest: d})
	}
	if len(out) == 0 {
		return nil, errors.New("images: nothing to push")
	}
	return out, nil
}
