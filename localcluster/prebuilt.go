package localcluster

import (
	"context"
	"path/filepath"

	"github.com/llm-d/llm-d/images"
)

// prebuilt is a program built outside this module and the image the cluster runs it from.
type prebuilt struct {
	image  images.Image
	ref    string
	binary string
}

// loadPrebuilt makes the images of programs with images.Prebuilt, writes them into archive and imports it.
func (c *Cluster) loadPrebuilt(ctx context.Context, archive string, progs []prebuilt) error {
	built := make([]images.Built, 0, len(progs))
	for _, p := range progs {
		b, err := images.Prebuilt(filepath.Dir(archive), p.image, p.ref, p.binary)
		if err != nil {
			return err
		}
		built = append(built, b)
	}
	if err := images.WriteArchive(archive, built); err != nil {
		return err
	}
	return c.LoadImages(ctx, archive)
}
