package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

// errStop unwinds the benchmark after a failure has been printed.
var errStop = errors.New("benchmark stopped")

// runner implements framework.T for the benchmark program. Errorf prints and
// marks the run failed, Fatalf and Skipf also stop it, and the cleanups run
// when it ends. The framework calls Logf from the goroutines of a burst, so
// every method is safe for concurrent use. Fatalf must only be called from
// the main goroutine, which recovers errStop.
type runner struct {
	verbose     bool
	interrupted atomic.Bool

	mu       sync.Mutex
	failed   bool
	cleanups []func()
}

func (r *runner) Helper() {}

// Logf prints framework messages, such as every crictl call, with -v.
func (r *runner) Logf(format string, args ...any) {
	if r.verbose {
		r.print(os.Stdout, "    "+format, args...)
	}
}

// Progressf prints a step of the benchmark.
func (r *runner) Progressf(format string, args ...any) {
	r.print(os.Stdout, format, args...)
}

func (r *runner) Errorf(format string, args ...any) {
	r.print(os.Stderr, "bench: "+format, args...)
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

func (r *runner) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	panic(errStop)
}

func (r *runner) Skipf(format string, args ...any) {
	r.Errorf("cannot run: "+format, args...)
	panic(errStop)
}

// Failed reports whether an error was reported, so that the framework
// prints the process logs before it removes them.
func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

// runCleanups runs the cleanups, newest first.
func (r *runner) runCleanups() {
	r.mu.Lock()
	cleanups := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	if len(cleanups) > 0 {
		r.Progressf("cleaning up: pods, nri-cni, containerd, mounts, cgroups, bridges and folders")
	}
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
}

// checkInterrupt stops the benchmark between steps after SIGINT or SIGTERM.
func (r *runner) checkInterrupt() {
	if r.interrupted.Load() {
		r.Fatalf("interrupted")
	}
}

func (r *runner) print(file *os.File, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(file, format+"\n", args...)
}
