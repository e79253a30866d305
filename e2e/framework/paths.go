package framework

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nri-cni/nri-cni/e2e/images"
)

const modulePath = "github.com/nri-cni/nri-cni"

// Paths are the build outputs that an environment runs, all inside the
// repository.
type Paths struct {
	// Root is the repository root.
	Root string
	// ToolsBin holds containerd, ctr, containerd-shim-runc-v2, runc and
	// crictl, built by `make tools`.
	ToolsBin string
	// CNIBin holds the CNI reference plugins, built by `make tools`.
	CNIBin string
	// Images holds the image archives written by `make images`.
	Images string
	// NRICNI is the plugin binary written by `make build`.
	NRICNI string
	// TestCNIBin holds the record test plugin, built by BuildRecordPlugin.
	TestCNIBin string
}

// FindPaths locates the repository from the working directory, which is the
// package folder under `go test` and the repository root under make.
func FindPaths() (Paths, error) {
	dir, err := os.Getwd()
	if err != nil {
		return Paths{}, fmt.Errorf("failed to get working directory: %w", err)
	}
	for {
		content, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(content, []byte("module "+modulePath+"\n")) {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return Paths{}, fmt.Errorf("failed to find the go.mod of %s above the working directory: run from inside the repository", modulePath)
		}
		dir = parent
	}

	output := filepath.Join(dir, "_output")
	return Paths{
		Root:       dir,
		ToolsBin:   filepath.Join(output, "tools", "bin"),
		CNIBin:     filepath.Join(output, "tools", "cni"),
		Images:     filepath.Join(output, "images"),
		NRICNI:     filepath.Join(dir, "bin", "nri-cni"),
		TestCNIBin: filepath.Join(output, "e2e", "cni"),
	}, nil
}

// toolsBinaries are the files that `make tools` writes and an environment
// needs.
var toolsBinaries = []string{
	"bin/containerd", "bin/containerd-shim-runc-v2", "bin/ctr", "bin/runc", "bin/crictl",
	"cni/bridge", "cni/host-local", "cni/loopback",
}

// missingPrerequisite returns why an environment cannot run here, or "" when
// it can.
func (p Paths) missingPrerequisite() string {
	if os.Geteuid() != 0 {
		return "e2e tests need root: they run containerd, mount network namespaces and create bridges"
	}
	for _, name := range toolsBinaries {
		path := filepath.Join(filepath.Dir(p.ToolsBin), name)
		if _, err := os.Stat(path); err != nil {
			return fmt.Sprintf("%s is missing: run make tools", path)
		}
	}
	for _, name := range []string{images.PauseArchive, images.ToolsArchive} {
		path := filepath.Join(p.Images, name)
		if _, err := os.Stat(path); err != nil {
			return fmt.Sprintf("%s is missing: run make images", path)
		}
	}
	return ""
}
