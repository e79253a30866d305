// Package images builds the two images that the e2e tests and the demo run:
// a pause image for pod sandboxes and a tools image with busybox for member
// containers. Both are written as OCI image layout archives for
// `ctr images import`, so no registry is needed.
package images

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/nri-cni/nri-cni/internal/ociimage"
)

const (
	// PauseImage is the sandbox image, which the e2e containerd pins.
	PauseImage = "localhost/nri-cni-e2e/pause:v1"
	// ToolsImage is the image of member containers.
	ToolsImage = "localhost/nri-cni-e2e/tools:v1"

	// PauseArchive and ToolsArchive are the archive file names in the
	// output folder.
	PauseArchive = "pause.tar"
	ToolsArchive = "tools.tar"

	// DefaultBusybox is where Debian's busybox-static package installs its
	// static binary.
	DefaultBusybox = "/bin/busybox"

	pausePackage = "github.com/nri-cni/nri-cni/e2e/images/pause"
)

// ToolsApplets are the busybox applets that the tools image links in /bin.
var ToolsApplets = []string{
	"cat", "hostname", "ip", "ls", "nc", "ping", "readlink", "sh", "sleep",
}

// Write builds the pause binary with the go command and writes PauseArchive
// and ToolsArchive into outputDir. busybox is the path of a static busybox
// binary.
func Write(outputDir, busybox string) error {
	buildDir, err := os.MkdirTemp("", "nri-cni-images-")
	if err != nil {
		return fmt.Errorf("failed to create build folder: %w", err)
	}
	defer os.RemoveAll(buildDir)

	pauseBinary := filepath.Join(buildDir, "pause")
	if err := buildPause(pauseBinary); err != nil {
		return err
	}
	if err := ociimage.WriteArchiveFile(filepath.Join(outputDir, PauseArchive), pauseImage(pauseBinary)); err != nil {
		return err
	}

	if _, err := os.Stat(busybox); err != nil {
		return fmt.Errorf("failed to find static busybox at %q: %w; install Debian's busybox-static (make deps)", busybox, err)
	}
	if err := ociimage.WriteArchiveFile(filepath.Join(outputDir, ToolsArchive), toolsImage(busybox)); err != nil {
		return err
	}
	return nil
}

func buildPause(output string) error {
	command := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", output, pausePackage)
	command.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := command.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to build %s: %w: %s", pausePackage, err, out)
	}
	return nil
}

func pauseImage(binary string) ociimage.Image {
	return ociimage.Image{
		Name: PauseImage,
		Layers: []ociimage.Layer{{Files: []ociimage.File{
			{Path: "/pause", Source: binary, Mode: 0o755},
		}}},
		Config: ociimage.Config{
			Entrypoint: []string{"/pause"},
			// The sandbox process needs no privileges. 65535 is also the user
			// of the upstream Kubernetes pause image.
			User: "65535:65535",
		},
	}
}

func toolsImage(busybox string) ociimage.Image {
	files := []ociimage.File{
		{Path: "/bin/busybox", Source: busybox, Mode: 0o755},
		{Path: "/tmp", Dir: true, Mode: 0o1777},
	}
	for _, applet := range ToolsApplets {
		files = append(files, ociimage.File{Path: "/bin/" + applet, Linkname: "busybox"})
	}
	return ociimage.Image{
		Name:   ToolsImage,
		Layers: []ociimage.Layer{{Files: files}},
		Config: ociimage.Config{
			Cmd: []string{"/bin/sh"},
			Env: []string{"PATH=/bin"},
		},
	}
}
