// Command mkimages writes the e2e pause and tools images as OCI image layout
// archives, ready for `ctr -n k8s.io images import`.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/nri-cni/nri-cni/e2e/images"
)

func main() {
	output := flag.String("output", "_output/images", "folder to write "+images.PauseArchive+" and "+images.ToolsArchive+" into")
	busybox := flag.String("busybox", images.DefaultBusybox, "path of the static busybox binary for the tools image")
	flag.Parse()

	if err := images.Write(*output, *busybox); err != nil {
		fmt.Fprintf(os.Stderr, "mkimages: %v\n", err)
		os.Exit(1)
	}
}
