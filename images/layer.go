package images

import (
	"archive/tar"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// writeLayer writes the image's only layer, gzipped at level, to dst: the binary at /<Command> (root-owned, 0755,
// as distroless installs programs), then the parent directories of Links and the links themselves. Every
// entry carries mtime and no owner names, so that the same binary gives the same layer.
func writeLayer(dst, binary string, im Image, mtime time.Time, level int) (err error) {
	bin, err := os.Open(binary)
	if err != nil {
		return err
	}
	defer bin.Close()
	st, err := bin.Stat()
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := out.Close(); err == nil {
			err = cerr
		}
	}()
	zw, err := gzip.NewWriterLevel(out, level)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(zw)
	hdr := func(name string, typ byte, mode int64) *tar.Header {
		return &tar.Header{Name: name, Typeflag: typ, Mode: mode, ModTime: mtime}
	}
	h := hdr(im.Command, tar.TypeReg, 0o755)
	h.Size = st.Size()
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := io.Copy(tw, bin); err != nil {
		return err
	}
	for _, d := range linkDirs(im.Links) {
		if err := tw.WriteHeader(hdr(d+"/", tar.TypeDir, 0o755)); err != nil {
			return err
		}
	}
	for _, l := range im.Links {
		if !path.IsAbs(l) || path.Clean(l) != l {
			return fmt.Errorf("link %q of image %s is not a clean absolute path", l, im.Name)
		}
		h := hdr(strings.TrimPrefix(l, "/"), tar.TypeSymlink, 0o777)
		h.Linkname = "/" + im.Command
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return zw.Close()
}

// linkDirs lists the directories the links live in, parents first, without the leading slash.
func linkDirs(links []string) []string {
	var dirs []string
	for _, l := range links {
		for d := path.Dir(l); d != "/"; d = path.Dir(d) {
			dirs = append(dirs, strings.TrimPrefix(d, "/"))
		}
	}
	slices.Sort(dirs) // a parent sorts before its children
	return slices.Compact(dirs)
}
