// Package netns creates network namespaces the way containerd's CRI does for
// a pod: a new namespace pinned by a bind mount at a path, optionally with a
// sleeping process inside in place of the pause task.
package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// Namespace is a pinned network namespace.
type Namespace struct {
	// Path is the bind mount that pins the namespace.
	Path  string
	pause *exec.Cmd
}

// Create starts a sleeping process in a new network namespace and pins the
// namespace at path. With keepProcess the process stays, so that PID gives
// a pause task's /proc/<pid>/ns/net; otherwise it is stopped at once.
func Create(path string, keepProcess bool) (*Namespace, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("failed to create folder of netns %s: %w", path, err)
	}
	pause := exec.Command("/bin/sleep", "infinity")
	pause.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Setpgid: true}
	if err := pause.Start(); err != nil {
		return nil, fmt.Errorf("failed to start a process in a new netns for %s: %w", path, err)
	}
	ns := &Namespace{Path: path, pause: pause}

	if err := os.WriteFile(path, nil, 0o644); err != nil {
		ns.StopProcess()
		return nil, fmt.Errorf("failed to create netns file %s: %w", path, err)
	}
	source := fmt.Sprintf("/proc/%d/ns/net", pause.Process.Pid)
	if err := unix.Mount(source, path, "", unix.MS_BIND, ""); err != nil {
		ns.StopProcess()
		os.Remove(path)
		return nil, fmt.Errorf("failed to pin netns %s at %s: %w", source, path, err)
	}
	if !keepProcess {
		ns.StopProcess()
	}
	return ns, nil
}

// PID returns the process inside the namespace, or 0 when it was stopped.
func (ns *Namespace) PID() int {
	if ns.pause == nil {
		return 0
	}
	return ns.pause.Process.Pid
}

// StopProcess kills the process inside the namespace, as containerd kills
// the pause task before StopPodSandbox. The pinned namespace stays.
func (ns *Namespace) StopProcess() {
	if ns.pause == nil {
		return
	}
	_ = ns.pause.Process.Kill()
	_ = ns.pause.Wait()
	ns.pause = nil
}

// Delete stops the process, unmounts the pin and removes its file. The
// kernel frees the namespace, with the interfaces still in it, once nothing
// holds it.
func (ns *Namespace) Delete() error {
	ns.StopProcess()
	var errs []error
	if err := unix.Unmount(ns.Path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		errs = append(errs, fmt.Errorf("failed to unmount netns %s: %w", ns.Path, err))
	}
	if err := os.Remove(ns.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, fmt.Errorf("failed to remove netns file %s: %w", ns.Path, err))
	}
	return errors.Join(errs...)
}
