package framework

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Kill sends SIGKILL, as a crash or the OOM killer ends a process, and waits
// up to 5s for it to exit. A process that has exited already is no error.
func (p *Process) Kill() error {
	if p.Exited() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("failed to send SIGKILL to %s (PID %d): %w", p.Name, p.PID(), err)
	}
	if _, err := p.Wait(5 * time.Second); err != nil {
		return fmt.Errorf("failed to kill %s: %w", p.Name, err)
	}
	return nil
}

// ExitCode returns the exit code of a process that has exited, or -1 when a
// signal ended it. It returns an error while the process still runs.
func (p *Process) ExitCode() (int, error) {
	if !p.Exited() {
		return 0, fmt.Errorf("%s (PID %d) still runs", p.Name, p.PID())
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// KillNRICNI kills nri-cni with SIGKILL, so it writes nothing more and runs
// no teardown. Start it again with StartNRICNI and the same config.
func (env *Env) KillNRICNI(process *Process) {
	env.t.Helper()
	if err := process.Kill(); err != nil {
		env.t.Fatalf("%v", err)
	}
	env.t.Logf("killed nri-cni (PID %d) with SIGKILL", process.PID())
}

// StopContainerd stops containerd with SIGTERM, as a service manager does
// for a restart: the shims, the pods and their network namespaces keep
// running, and NRI plugins lose their connection.
func (env *Env) StopContainerd() {
	env.t.Helper()
	root := env.shared.root
	if root.containerd == nil || root.containerd.Exited() {
		env.t.Fatalf("failed to stop containerd: it does not run")
	}
	start := time.Now()
	if err := root.containerd.Stop(10 * time.Second); err != nil {
		env.t.Fatalf("failed to stop containerd: %v", err)
	}
	env.t.Logf("containerd (PID %d) stopped in %s", root.containerd.PID(), time.Since(start).Round(time.Millisecond))
}

// StartContainerd starts containerd again after StopContainerd or
// SimulateReboot, with the same config, root and state folders, and waits
// until its CRI reports ready. It works on a view from For too: cleanup
// stops the new containerd.
func (env *Env) StartContainerd() {
	env.t.Helper()
	root := env.shared.root
	if root.containerd != nil && !root.containerd.Exited() {
		env.t.Fatalf("failed to start containerd: PID %d still runs", root.containerd.PID())
	}
	err := env.startContainerd()
	// Cleanup must stop the new process even when it never became ready.
	root.containerd = env.containerd
	if err != nil {
		env.t.Fatalf("failed to start containerd again: %v", err)
	}
	root.ContainerdStartTime = env.ContainerdStartTime
}

// RestartContainerd stops containerd with SIGTERM and starts it again, as
// `systemctl restart containerd` does. Pods keep running meanwhile.
func (env *Env) RestartContainerd() {
	env.t.Helper()
	env.StopContainerd()
	env.StartContainerd()
}

// SimulateReboot leaves the environment as a reboot of the node would: every
// process the environment started (nri-cni too) and containerd are killed
// with SIGKILL, and so are the shims and every container. The mounts below
// the environment's folder are gone, so are the pod network namespaces, and
// the runtime folders that live on tmpfs (/run) on a real node are empty:
// containerd's state dir, the shim sockets and runc's state. The links of the
// environment's bridges are deleted. containerd's root, the CRI's
// /var/lib/cni, nri-cni's state dir and libcni cache and the host-local
// leases are kept. Start containerd again with StartContainerd.
func (env *Env) SimulateReboot() {
	env.t.Helper()
	root := env.shared.root
	var errs []error

	env.shared.Lock()
	processes := append([]*Process{}, env.shared.processes...)
	env.shared.Unlock()
	for _, process := range processes {
		if err := process.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	if root.containerd != nil {
		if err := root.containerd.Kill(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := env.killLeftovers(); err != nil {
		errs = append(errs, err)
	}
	if err := unmountBelow(env.Dir); err != nil {
		errs = append(errs, err)
	}
	for _, dir := range []string{"state", "s", "runc"} {
		if err := emptyDir(filepath.Join(env.Dir, dir)); err != nil {
			errs = append(errs, err)
		}
	}
	for _, socket := range []string{env.NRISocket, env.ContainerdSocket, env.ContainerdSocket + ".ttrpc"} {
		if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("failed to remove socket: %w", err))
		}
	}
	if err := deleteLinksWithPrefix(env.block.linkPrefix()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		env.t.Fatalf("failed to simulate a reboot: %v", err)
	}
	env.t.Logf("simulated a reboot: processes killed, mounts below %s and runtime folders removed", env.Dir)
}

// unmountBelow detaches every mount below dir, deepest first, and keeps the
// mount of dir itself.
func unmountBelow(dir string) error {
	for round := 0; round < 10; round++ {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		var below []string
		for _, mount := range mounts {
			if mount.mountPoint != dir {
				below = append(below, mount.mountPoint)
			}
		}
		if len(below) == 0 {
			return nil
		}
		sort.Slice(below, func(i, j int) bool { return len(below[i]) > len(below[j]) })
		for _, mountPoint := range below {
			if err := syscall.Unmount(mountPoint, syscall.MNT_DETACH); err != nil &&
				!errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				return fmt.Errorf("failed to unmount %s: %w", mountPoint, err)
			}
		}
	}
	return fmt.Errorf("failed to unmount everything below %s after 10 rounds", dir)
}

// emptyDir removes everything inside dir and keeps dir.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to list %s: %w", dir, err)
	}
	for _, entry := range entries {
		if err := os.RemoveAll(filepath.Join(dir, entry.Name())); err != nil {
			return fmt.Errorf("failed to empty %s: %w", dir, err)
		}
	}
	return nil
}

// CopyCNIBin copies the CNI reference plugins into a folder of the
// environment and returns that folder, so a test can remove a plugin binary
// with RemoveCNIPlugin without touching other environments. Give it to
// nri-cni in NRICNIConfig.CNIBinDirs in place of Paths.CNIBin.
func (env *Env) CopyCNIBin() string {
	env.t.Helper()
	dir := filepath.Join(env.Dir, "cni-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		env.t.Fatalf("failed to create private CNI bin dir: %v", err)
	}
	entries, err := os.ReadDir(env.Paths.CNIBin)
	if err != nil {
		env.t.Fatalf("failed to list CNI plugins in %s: %v", env.Paths.CNIBin, err)
	}
	for _, entry := range entries {
		if entry.IsDir() {
			continue
		}
		if err := copyExecutable(filepath.Join(env.Paths.CNIBin, entry.Name()), filepath.Join(dir, entry.Name())); err != nil {
			env.t.Fatalf("%v", err)
		}
	}
	return dir
}

func copyExecutable(source, target string) error {
	in, err := os.Open(source)
	if err != nil {
		return fmt.Errorf("failed to open %s: %w", source, err)
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return fmt.Errorf("failed to create %s: %w", target, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("failed to copy %s to %s: %w", source, target, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("failed to write %s: %w", target, err)
	}
	return nil
}

// removedPluginPath is where RemoveCNIPlugin keeps a binary of dir: outside
// dir, so that no CNI lookup finds it.
func removedPluginPath(dir, name string) string {
	return filepath.Join(filepath.Dir(dir), "cni-bin-removed", name)
}

// RemoveCNIPlugin moves plugin binary name out of dir, a folder from
// CopyCNIBin, so every later call of that plugin fails with "failed to find
// plugin". RestoreCNIPlugin puts it back.
func (env *Env) RemoveCNIPlugin(dir, name string) {
	env.t.Helper()
	aside := removedPluginPath(dir, name)
	if err := os.MkdirAll(filepath.Dir(aside), 0o755); err != nil {
		env.t.Fatalf("failed to create folder for removed CNI plugins: %v", err)
	}
	if err := os.Rename(filepath.Join(dir, name), aside); err != nil {
		env.t.Fatalf("failed to remove CNI plugin %s: %v", name, err)
	}
	env.t.Logf("removed CNI plugin %s from %s", name, dir)
}

// RestoreCNIPlugin puts back a binary that RemoveCNIPlugin removed.
func (env *Env) RestoreCNIPlugin(dir, name string) {
	env.t.Helper()
	if err := os.Rename(removedPluginPath(dir, name), filepath.Join(dir, name)); err != nil {
		env.t.Fatalf("failed to restore CNI plugin %s: %v", name, err)
	}
	env.t.Logf("restored CNI plugin %s in %s", name, dir)
}
