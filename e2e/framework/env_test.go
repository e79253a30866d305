package framework

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cleanupRecorder runs an environment's cleanup on demand, so a test can
// check what the cleanup left behind.
type cleanupRecorder struct {
	*testing.T
	cleanups []func()
}

func (r *cleanupRecorder) Cleanup(f func()) {
	r.cleanups = append(r.cleanups, f)
}

func (r *cleanupRecorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.cleanups = nil
}

func TestEnvRunsPodWithEth0(t *testing.T) {
	// System paths that the environment must not create.
	systemPaths := []string{"/var/lib/cni", "/run/containerd", "/var/run/nri", "/etc/cni", "/opt/cni", "/opt/containerd", "/var/lib/containerd", "/var/run/netns"}
	existedBefore := map[string]bool{}
	for _, path := range systemPaths {
		_, err := os.Stat(path)
		existedBefore[path] = err == nil
	}

	recorder := &cleanupRecorder{T: t}
	t.Cleanup(recorder.runCleanups)
	env := New(recorder)

	pod := env.MustRunPod(PodConfig{})
	status, err := env.InspectPod(pod.ID)
	if err != nil {
		t.Fatal(err)
	}
	if status.State != "SANDBOX_READY" {
		t.Errorf("pod state = %s, want SANDBOX_READY", status.State)
	}
	ip, err := netip.ParseAddr(status.IP)
	if err != nil || !env.CRISubnet.Contains(ip) {
		t.Errorf("pod eth0 IP = %q, want an address in the CRI subnet %s", status.IP, env.CRISubnet)
	}
	if !strings.HasPrefix(status.NetnsPath, env.Dir+"/") {
		t.Errorf("pod netns = %q, want a path below %s", status.NetnsPath, env.Dir)
	}
	netns, err := env.NetnsMounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(netns) != 1 || netns[0] != status.NetnsPath {
		t.Errorf("netns mounts seen from the host = %v, want [%s]", netns, status.NetnsPath)
	}

	container := env.MustRunContainer(pod, ContainerConfig{Command: []string{"sleep", "3600"}})
	output, err := env.Exec(container, "ip", "-o", "-4", "addr", "show", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(output, status.IP+"/24") {
		t.Errorf("ip addr in the container = %q, want it to contain %s/24", output, status.IP)
	}

	leases, err := env.Leases(CRINetworkName)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases) != 1 || leases[0] != status.IP {
		t.Errorf("CRI leases = %v, want [%s]", leases, status.IP)
	}

	dir, bridge, cgroupParent := env.Dir, env.CRIBridge, env.CgroupParent
	if _, err := os.Stat("/sys/fs/cgroup/pids" + cgroupParent); err != nil {
		t.Errorf("pod cgroup parent %s is missing in the pids hierarchy: %v", cgroupParent, err)
	}
	recorder.runCleanups()

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("environment folder %s still exists after cleanup (stat error %v)", dir, err)
	}
	mounts, err := mountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 0 {
		t.Errorf("mounts left below %s: %v", dir, mounts)
	}
	if _, err := os.Stat("/sys/class/net/" + bridge); !os.IsNotExist(err) {
		t.Errorf("bridge %s still exists after cleanup", bridge)
	}
	shims, err := processesMentioning(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(shims) != 0 {
		t.Errorf("processes left that mention %s: %v", dir, shims)
	}
	hierarchies, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, hierarchy := range hierarchies {
		if _, err := os.Stat(hierarchy + cgroupParent); !os.IsNotExist(err) {
			t.Errorf("cgroup %s%s still exists after cleanup", hierarchy, cgroupParent)
		}
	}
	for _, path := range systemPaths {
		_, err := os.Stat(path)
		if err == nil && !existedBefore[path] {
			t.Errorf("%s was created: the environment must keep everything in its folder", path)
		}
	}
}

// TestCleanupAfterContainerdCrash checks the cleanup path of a failed test:
// containerd dies with a pod and a container running, so no CRI call can
// stop them, and cleanup must still remove shims, containers, mounts,
// bridges, cgroups and the folder.
func TestCleanupAfterContainerdCrash(t *testing.T) {
	recorder := &cleanupRecorder{T: t}
	t.Cleanup(recorder.runCleanups)
	env := New(recorder)

	pod := env.MustRunPod(PodConfig{})
	env.MustRunContainer(pod, ContainerConfig{Command: []string{"sleep", "3600"}})
	status, err := env.InspectPod(pod.ID)
	if err != nil {
		t.Fatal(err)
	}
	shims, err := processesMentioning(env.ContainerdSocket)
	if err != nil {
		t.Fatal(err)
	}
	if len(shims) == 0 {
		t.Fatal("found no shim of the running pod")
	}

	if err := env.containerd.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := env.containerd.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}

	dir, bridge, cgroupParent := env.Dir, env.CRIBridge, env.CgroupParent
	recorder.runCleanups()

	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("environment folder %s still exists after cleanup (stat error %v)", dir, err)
	}
	if mounts, err := mountsUnder(dir); err != nil || len(mounts) != 0 {
		t.Errorf("mounts left below %s: %v (error %v)", dir, mounts, err)
	}
	if _, err := os.Stat("/sys/class/net/" + bridge); !os.IsNotExist(err) {
		t.Errorf("bridge %s still exists after cleanup", bridge)
	}
	if left, err := processesMentioning(dir); err != nil || len(left) != 0 {
		t.Errorf("processes left that mention %s: %v (error %v)", dir, left, err)
	}
	if err := syscall.Kill(status.PID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pause process %d still exists after cleanup (kill 0: %v)", status.PID, err)
	}
	hierarchies, err := cgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	for _, hierarchy := range hierarchies {
		if _, err := os.Stat(hierarchy + cgroupParent); !os.IsNotExist(err) {
			t.Errorf("cgroup %s%s still exists after cleanup", hierarchy, cgroupParent)
		}
	}
}

// mountPropagation returns the optional fields, such as "shared:12", of the
// mount at mountPoint in the mount namespace of process pid, and whether
// the mount is there.
func mountPropagation(t *testing.T, pid int, mountPoint string) (string, bool) {
	t.Helper()
	content, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(content), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 7 || fields[4] != mountPoint {
			continue
		}
		var optional []string
		for _, field := range fields[6:] {
			if field == "-" {
				break
			}
			optional = append(optional, field)
		}
		return strings.Join(optional, " "), true
	}
	return "", false
}

func TestEnvironmentsShareNoPodMounts(t *testing.T) {
	first := New(t)
	second := New(t)
	pid := second.containerd.PID()

	// A containerd started later keeps the copy of an earlier environment's
	// folder out of that folder's peer group, so it receives none of the
	// mounts of the earlier environment's pods.
	if fields, ok := mountPropagation(t, pid, first.Dir); ok && strings.Contains(fields, "shared:") {
		t.Errorf("containerd of the second environment has %s as a shared mount (%s), want it private",
			first.Dir, fields)
	}
	if fields, ok := mountPropagation(t, pid, second.Dir); !ok || !strings.Contains(fields, "shared:") {
		t.Errorf("containerd of the second environment has its own folder %s with %q (found %v), "+
			"want a shared mount that sends netns pins to the host", second.Dir, fields, ok)
	}

	pod := first.MustRunPod(PodConfig{})
	status, err := first.InspectPod(pod.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mountPropagation(t, pid, status.NetnsPath); ok {
		t.Errorf("netns pin %s of the first environment's pod reached the second containerd's namespace",
			status.NetnsPath)
	}
	if _, ok := mountPropagation(t, os.Getpid(), status.NetnsPath); !ok {
		t.Errorf("netns pin %s is not in the host's mount namespace", status.NetnsPath)
	}
}
