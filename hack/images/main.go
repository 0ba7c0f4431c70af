// Command images builds the project's container images (package images) for amd64 and arm64 without a
// container engine, writes them as an OCI layout and one OCI archive per image, and optionally pushes them.
//
//	go run ./hack/images                          # make images: bin/images/oci, bin/images/<name>.tar
//	go run ./hack/images --platforms linux/amd64  # the host's only
//	go run ./hack/images --push                   # the release: to ghcr.io/llm-d (docker login first)
//	go run ./hack/images --check-tag v0.1.0       # does this tag release the chart's version?
//
// Stdout gets one line per image, "<ref> <digest>" (the pushed reference with --push); progress goes to
// stderr. SOURCE_DATE_EPOCH, when set, is the images' creation time (default: the Unix epoch).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/llm-d/llm-d/images"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("images", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "bin/images", "output directory (under the module root when relative)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "comma-separated os/arch list")
	names := fs.String("images", "", "comma-separated image names to build (default: all: "+strings.Join(imageNames(images.All()), ",")+")")
	registry := fs.String("registry", images.DefaultRegistry, "reference prefix of the images")
	version := fs.String("version", "", "version to stamp and tag (default: the chart's appVersion)")
	push := fs.Bool("push", false, "push the images to their references after writing them")
	checkTag := fs.String("check-tag", "", "only check that this git tag (e.g. v0.1.0) releases the chart's version, and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	root, err := images.ModuleRoot()
	if err != nil {
		return err
	}
	if *checkTag != "" {
		return images.CheckReleaseTag(root, *checkTag)
	}
	if !filepath.IsAbs(*out) {
		*out = filepath.Join(root, *out)
	}
	selected, err := selectImages(*names)
	if err != nil {
		return err
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return err
	}
	o := images.Options{
		Root: root, Dir: filepath.Join(*out, "build"), Images: selected,
		Platforms: strings.Split(*platforms, ","), Registry: *registry, Version: *version,
		Created: created, Log: stderr,
	}
	start := time.Now()
	built, err := images.Build(ctx, o)
	if err != nil {
		return err
	}
	if err := images.WriteLayout(filepath.Join(*out, "oci"), built); err != nil {
		return err
	}
	for _, b := range built {
		if err := images.WriteArchive(filepath.Join(*out, b.Image.Name+".tar"), []images.Built{b}); err != nil {
			return err
		}
		if err := describe(stderr, b); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "images: built in %s into %s (OCI layout oci/, archives <name>.tar for ctr images import / docker load)\n",
		time.Since(start).Round(time.Second), *out)
	if *push {
		pushed, err := images.Push(ctx, built, "")
		if err != nil {
			return err
		}
		for _, p := range pushed {
			fmt.Fprintln(stdout, p.Ref, p.Digest)
		}
		return nil
	}
	for _, b := range built {
		d, err := b.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, b.Ref, d)
	}
	return nil
}

// describe prints an image's platforms and their compressed sizes.
func describe(w io.Writer, b images.Built) error {
	im, err := b.Index.IndexManifest()
	if err != nil {
		return err
	}
	var parts []string
	for _, d := range im.Manifests {
		img, err := b.Index.Image(d.Digest)
		if err != nil {
			return err
		}
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		var size int64
		for _, l := range m.Layers {
			size += l.Size
		}
		parts = append(parts, fmt.Sprintf("%s %.1f MiB", d.Platform, float64(size)/(1<<20)))
	}
	fmt.Fprintf(w, "images: %s: %s\n", b.Ref, strings.Join(parts, ", "))
	return nil
}

func selectImages(list string) ([]images.Image, error) {
	if list == "" {
		return images.All(), nil
	}
	var out []images.Image
	for _, n := range strings.Split(list, ",") {
		i := slices.IndexFunc(images.All(), func(im images.Image) bool { return im.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("--images: no image %q; the images are %s", n, strings.Join(imageNames(images.All()), ", "))
		}
		out = append(out, images.All()[i])
	}
	return out, nil
}

func imageNames(ims []images.Image) []string {
	var n []string
	for _, im := range ims {
		n = append(n, im.Name)
	}
	return n
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org), zero when unset.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds", s)
	}
	return time.Unix(sec, 0), nil
}
