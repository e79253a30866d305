package plugin

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/containerd/nri/pkg/api"
	"golang.org/x/sys/unix"
)

// networkNamespace is the namespace type of a pod's network in NRI and OCI.
const networkNamespace = "network"

// ErrHostNetNS is returned when a pod's namespace is the plugin's own.
var ErrHostNetNS = errors.New("target is the host network namespace")

// nsID identifies a namespace by the device and inode of its nsfs file.
type nsID struct {
	dev, ino uint64
}

func statNS(path string) (nsID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsID{}, err
	}
	return nsID{dev: st.Dev, ino: st.Ino}, nil
}

// isNetNS reports whether path is a network namespace file: a /proc ns link
// or a bind mount of one. A plain file left after the unmount is not.
func isNetNS(path string) bool {
	if path == "" {
		return false
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return false
	}
	return fs.Type == unix.NSFS_MAGIC
}

// podNetNSPath returns the path of the pod's network namespace entry, and
// false when the pod has none, which makes it a host network pod.
func podNetNSPath(pod *api.PodSandbox) (string, bool) {
	for _, ns := range pod.GetLinux().GetNamespaces() {
		if ns.GetType() == networkNamespace {
			return ns.GetPath(), true
		}
	}
	return "", false
}

// resolveNetNS returns the network namespace that CNI must run in: the path
// of the pod's network entry, checked against the pause task's
// /proc/<pid>/ns/net when the PID is known, or that /proc path when the entry
// has no path. It never returns the plugin's own namespace.
func resolveNetNS(pod *api.PodSandbox, entryPath string, host nsID) (string, error) {
	procPath := ""
	if pod.GetPid() != 0 {
		procPath = "/proc/" + strconv.FormatUint(uint64(pod.GetPid()), 10) + "/ns/net"
	}

	path := entryPath
	if path == "" {
		if procPath == "" {
			return "", fmt.Errorf("pod has a network namespace entry with no path and no PID")
		}
		path = procPath
	}

	target, err := statNS(path)
	if err != nil {
		return "", fmt.Errorf("failed to open network namespace %s: %w", path, err)
	}
	if procPath != "" && procPath != path {
		task, err := statNS(procPath)
		if err != nil {
			return "", fmt.Errorf("failed to open network namespace of pause task %d: %w", pod.GetPid(), err)
		}
		if task != target {
			return "", fmt.Errorf("network namespace %s is not the one of pause task %d (%s)",
				path, pod.GetPid(), procPath)
		}
	}
	if target == host {
		return "", fmt.Errorf("%w: refusing to run CNI on %s, which is the plugin's own namespace",
			ErrHostNetNS, path)
	}
	return path, nil
}

// hostNetNS returns the id of the plugin's own network namespace.
func hostNetNS() (nsID, error) {
	id, err := statNS("/proc/self/ns/net")
	if err != nil {
		return nsID{}, fmt.Errorf("failed to open the plugin's network namespace: %w", err)
	}
	return id, nil
}

// sameNetNS reports whether two paths name the same namespace. A path that
// cannot be opened matches nothing.
func sameNetNS(a, b string) bool {
	ia, err := statNS(a)
	if err != nil {
		return false
	}
	ib, err := statNS(b)
	return err == nil && ia == ib
}

// existingNetNS returns path when it still is a network namespace, and "" when
// it is gone. CNI plugins treat an empty netns on DEL as "already gone" and
// still free their IPAM lease.
func existingNetNS(path string) string {
	if isNetNS(path) {
		return path
	}
	return ""
}

// heldNetNS is a pod's network namespace kept open from StopPodSandbox until
// its DEL is done. containerd unmounts the pinned file right after that hook;
// the open file keeps the namespace, with the pod's interfaces, alive.
type heldNetNS struct {
	file *os.File
	// path names the open file for CNI plugins, which are child processes
	// and cannot use the plugin's file descriptor itself.
	path string
}

// holdNetNS opens the network namespace at path. It returns nil when path
// is no longer a network namespace, such as a pin that is already unmounted.
func holdNetNS(path string, host nsID) (*heldNetNS, error) {
	if path == "" {
		return nil, nil
	}
	file, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to open network namespace %s: %w", path, err)
	}
	fd := int(file.Fd())
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil || fs.Type != unix.NSFS_MAGIC {
		file.Close()
		return nil, nil
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		file.Close()
		return nil, fmt.Errorf("failed to stat network namespace %s: %w", path, err)
	}
	if (nsID{dev: st.Dev, ino: st.Ino}) == host {
		file.Close()
		return nil, fmt.Errorf("%w: refusing to run CNI on %s, which is the plugin's own namespace",
			ErrHostNetNS, path)
	}
	return &heldNetNS{file: file, path: "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(fd)}, nil
}

func (h *heldNetNS) close() {
	h.file.Close()
}
