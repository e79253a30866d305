// Command image writes the nri-cni container image as an OCI image layout
// archive, without a container engine: a base layer from the root
// filesystem tree that debian-base.sh unpacks from Debian packages, and a
// layer with the static nri-cni binary. `make image` runs it; the archive
// loads with `ctr -n k8s.io images import`.
//
// The image matches what the Dockerfile at the repository root builds: the
// same tree, binary path, PATH, entrypoint and labels.
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nri-cni/nri-cni/internal/ociimage"
)

// Paths and settings that the Dockerfile repeats. A test compares the two.
const (
	// BinaryPath is where the image holds the nri-cni binary.
	BinaryPath = "/usr/bin/nri-cni"
	// DefaultName is the image name without its tag.
	DefaultName = "ghcr.io/nri-cni/nri-cni"
	// DefaultSource is the repository the image is built from.
	DefaultSource = "https://github.com/nri-cni/nri-cni"
	// PathEnv is the PATH of the image, which CNI plugins inherit from
	// nri-cni and search for iptables and nft.
	PathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// requiredFiles are the programs that CNI plugins exec, checked in the tree
// before it becomes a layer.
var requiredFiles = []string{"usr/sbin/iptables", "usr/sbin/ip6tables", "usr/sbin/nft"}

// Options are the inputs of one image.
type Options struct {
	// Binary is the host path of the static nri-cni binary.
	Binary string
	// Rootfs is the host path of the base tree from debian-base.sh.
	Rootfs string
	// Name is the full image name with its tag.
	Name string
	// Version is the value of the org.opencontainers.image.version label.
	Version string
	// Source is the value of the org.opencontainers.image.source label.
	Source string
}

func main() {
	opts := Options{}
	output := flag.String("output", "_output/nri-cni-image.tar", "path of the OCI image layout archive to write")
	flag.StringVar(&opts.Binary, "binary", "bin/nri-cni", "path of the static nri-cni binary (make build)")
	flag.StringVar(&opts.Rootfs, "rootfs", "_output/image/rootfs", "path of the base tree that hack/image/debian-base.sh writes")
	flag.StringVar(&opts.Version, "version", "dev", "version of nri-cni, for the image label and the default tag")
	flag.StringVar(&opts.Name, "name", "", "full image name with tag (default "+DefaultName+":VERSION)")
	flag.StringVar(&opts.Source, "source", DefaultSource, "source repository, for the image label")
	flag.Parse()
	if opts.Name == "" {
		opts.Name = DefaultName + ":" + opts.Version
	}

	img, err := NewImage(opts)
	if err == nil {
		err = ociimage.WriteArchiveFile(*output, img)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "image: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("image: wrote %s to %s\n", opts.Name, *output)
}

// NewImage checks the inputs and describes the image.
func NewImage(opts Options) (ociimage.Image, error) {
	if err := checkStatic(opts.Binary); err != nil {
		return ociimage.Image{}, err
	}
	for _, file := range requiredFiles {
		if _, err := os.Lstat(filepath.Join(opts.Rootfs, file)); err != nil {
			return ociimage.Image{}, fmt.Errorf("failed to find /%s in base tree %s: %w; "+
				"build the tree with hack/image/debian-base.sh", file, opts.Rootfs, err)
		}
	}

	return ociimage.Image{
		Name: opts.Name,
		Layers: []ociimage.Layer{
			{Trees: []ociimage.Tree{{Source: opts.Rootfs, Target: "/"}}},
			{Files: []ociimage.File{{Path: BinaryPath, Source: opts.Binary, Mode: 0o755}}},
		},
		Config: ociimage.Config{
			Entrypoint: []string{BinaryPath},
			Env:        []string{PathEnv},
			// Root, for the reasons the Dockerfile gives.
			User:   "0:0",
			Labels: Labels(opts.Version, opts.Source),
		},
	}, nil
}

// Labels returns the image labels, under OCI annotation keys, that both image
// builds set.
func Labels(version, source string) map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "nri-cni",
		"org.opencontainers.image.description": "containerd NRI plugin that attaches extra CNI networks to pods",
		"org.opencontainers.image.source":      source,
		"org.opencontainers.image.version":     version,
	}
}

// checkStatic rejects a binary that needs a dynamic loader: the image has
// Debian's libc, but nri-cni is built with CGO_ENABLED=0 so that it depends
// on none.
func checkStatic(path string) error {
	file, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("failed to read nri-cni binary %s: %w; build it with make build", path, err)
	}
	defer file.Close()
	for _, prog := range file.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("invalid nri-cni binary %s: it is dynamically linked; "+
				"build it with CGO_ENABLED=0 (make build)", path)
		}
	}
	return nil
}
