package images

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPrebuilt wraps a file built elsewhere: the image runs it as /<Command> as User, for the host's
// platform, with the ref's tag as its version and no claim to this repository's source.
func TestPrebuilt(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "some-program")
	if err := os.WriteFile(bin, []byte("not really a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	im := Image{Name: "thing", Command: "thing", Description: "a thing"}
	b, err := Prebuilt(filepath.Join(dir, "out"), im, "example.invalid/thing:1.2.3", bin)
	if err != nil {
		t.Fatal(err)
	}
	if b.Ref != "example.invalid/thing:1.2.3" {
		t.Errorf("ref %q", b.Ref)
	}
	img, cf := hostImage(t, b)
	c := cf.Config
	if c.User != User || !slices.Equal(c.Entrypoint, []string{"/thing"}) || c.Labels[LabelVersion] != "1.2.3" ||
		c.Labels[LabelSource] != "" || c.Labels[LabelRevision] != "" {
		t.Errorf("config %+v", c)
	}
	if h := layerFiles(t, img)["thing"]; h == nil || h.Size != int64(len("not really a program")) || h.Mode != 0o755 {
		t.Errorf("the layer's thing: %+v", h)
	}
	if _, err := Prebuilt(dir, im, "Not A Ref", bin); err == nil {
		t.Error("a bad reference gave no error")
	}
	if err := WriteArchive(filepath.Join(dir, "a.tar"), []Built{b}); err != nil {
		t.Fatal(err)
	}
}
