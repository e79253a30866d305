// Command pause is the sandbox process of the e2e test pods. It holds the
// pod's namespaces open, reaps children that are re-parented to it (it runs as
// PID 1 of the pod's PID namespace when the pod shares one), and exits with
// status 0 on SIGTERM or SIGINT. It must be built with CGO_ENABLED=0, because
// the image it goes into has no C library.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "pause: takes no arguments")
		os.Exit(2)
	}

	signals := make(chan os.Signal, 4)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)

	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reapChildren()
	}
}

// reapChildren waits for every child that has exited, so none stays a zombie.
// Signals coalesce, so one SIGCHLD can stand for several exits.
func reapChildren() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
	}
}
