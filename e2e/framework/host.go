package framework

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// mountInfo is one line of /proc/self/mountinfo.
type mountInfo struct {
	mountPoint string
	fsType     string
}

// mountsUnder returns the mounts at or below dir, deepest last.
func mountsUnder(dir string) ([]mountInfo, error) {
	file, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("failed to read mounts: %w", err)
	}
	defer file.Close()

	var mounts []mountInfo
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		// Fields: id parent major:minor root mount-point options [optional...] - fstype source super-options
		fields := strings.Fields(scanner.Text())
		if len(fields) < 10 {
			continue
		}
		mountPoint := unescapeMountPath(fields[4])
		if mountPoint != dir && !strings.HasPrefix(mountPoint, dir+"/") {
			continue
		}
		fsType := ""
		for i, field := range fields {
			if field == "-" && i+1 < len(fields) {
				fsType = fields[i+1]
				break
			}
		}
		mounts = append(mounts, mountInfo{mountPoint: mountPoint, fsType: fsType})
	}
	if err := scanner.Err(); err != nil {
		return nil, fmt.Errorf("failed to read mounts: %w", err)
	}
	return mounts, nil
}

// unescapeMountPath decodes the octal escapes (\040 for a space) that the
// kernel writes into mountinfo paths.
func unescapeMountPath(path string) string {
	if !strings.Contains(path, `\`) {
		return path
	}
	var out strings.Builder
	for i := 0; i < len(path); i++ {
		if path[i] == '\\' && i+3 < len(path) {
			if value, err := strconv.ParseUint(path[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(value))
				i += 3
				continue
			}
		}
		out.WriteByte(path[i])
	}
	return out.String()
}

// unmountAll detaches every mount at or below dir, deepest first.
func unmountAll(dir string) error {
	var errs []error
	// A mount can be stacked more than once on one path, so repeat until
	// nothing is left or a round makes no progress.
	for round := 0; round < 10; round++ {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].mountPoint) > len(mounts[j].mountPoint) })
		errs = errs[:0]
		for _, mount := range mounts {
			if err := syscall.Unmount(mount.mountPoint, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("failed to unmount %s: %w", mount.mountPoint, err))
			}
		}
	}
	if len(errs) == 0 {
		errs = append(errs, fmt.Errorf("failed to unmount everything below %s after 10 rounds", dir))
	}
	return errors.Join(errs...)
}

// Link is the part of `ip -j link` output that the tests compare.
type Link struct {
	Name   string   `json:"ifname"`
	Kind   string   `json:"kind,omitempty"`
	Master string   `json:"master,omitempty"`
	Flags  []string `json:"flags"`
	MTU    int      `json:"mtu"`
}

func (l Link) String() string {
	return fmt.Sprintf("%s master=%s mtu=%d flags=%s", l.Name, l.Master, l.MTU, strings.Join(l.Flags, ","))
}

// HostLinks returns the network interfaces of the host network namespace,
// sorted by name.
func HostLinks() ([]Link, error) {
	output, err := exec.Command("ip", "-j", "-d", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("failed to list links with ip -j link show: %w", commandError(err))
	}
	var raw []struct {
		Link
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(output, &raw); err != nil {
		return nil, fmt.Errorf("failed to parse ip -j link show output: %w", err)
	}
	links := make([]Link, 0, len(raw))
	for _, entry := range raw {
		link := entry.Link
		link.Kind = entry.LinkInfo.Kind
		links = append(links, link)
	}
	sort.Slice(links, func(i, j int) bool { return links[i].Name < links[j].Name })
	return links, nil
}

// HostLinks returns the links of the host network namespace without those of
// other environments: their bridges and the ports on them, which come and go
// while tests run in parallel. A veth of another environment that is not on
// its bridge yet still shows.
func (env *Env) HostLinks() ([]Link, error) {
	links, err := HostLinks()
	if err != nil {
		return nil, err
	}
	own := env.block.linkPrefix()
	otherEnvironment := func(name string) bool {
		return environmentLink.MatchString(name) && !strings.HasPrefix(name, own)
	}
	result := make([]Link, 0, len(links))
	for _, link := range links {
		if otherEnvironment(link.Name) || otherEnvironment(link.Master) {
			continue
		}
		result = append(result, link)
	}
	return result, nil
}

// environmentLink matches the names that Env.Bridge makes in any block.
var environmentLink = regexp.MustCompile(`^nce[0-9]{2}`)

// BridgePorts returns the names of the interfaces attached to bridge, or an
// empty list when the bridge does not exist.
func BridgePorts(bridge string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join("/sys/class/net", bridge, "brif"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list ports of bridge %s: %w", bridge, err)
	}
	ports := make([]string, 0, len(entries))
	for _, entry := range entries {
		ports = append(ports, entry.Name())
	}
	return ports, nil
}

// deleteLinksWithPrefix deletes the ports of every bridge whose name starts
// with prefix, then the bridges.
func deleteLinksWithPrefix(prefix string) error {
	links, err := HostLinks()
	if err != nil {
		return err
	}
	var errs []error
	for _, link := range links {
		if !strings.HasPrefix(link.Name, prefix) || link.Kind != "bridge" {
			continue
		}
		ports, err := BridgePorts(link.Name)
		if err != nil {
			errs = append(errs, err)
		}
		for _, port := range ports {
			// The kernel deletes a veth by itself when the netns of its peer
			// goes away, which may happen between the listing and here.
			if err := runIP("link", "del", port); err != nil && linkExists(port) {
				errs = append(errs, err)
			}
		}
		if err := runIP("link", "del", link.Name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// linkExists reports whether the host has a link of that name.
func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

func runIP(args ...string) error {
	if output, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("failed to run ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(output))
	}
	return nil
}

// processesMentioning returns the PIDs of processes whose command line
// contains text, which is how cleanup finds the shims of its own containerd:
// they carry its socket path in their arguments.
func processesMentioning(text string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("failed to list processes: %w", err)
	}
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if bytes.Contains(cmdline, []byte(text)) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// NetnsInode returns the inode of the network namespace of process pid, which
// is equal for two processes exactly when they share the namespace.
func NetnsInode(pid int) (uint64, error) {
	var stat syscall.Stat_t
	path := fmt.Sprintf("/proc/%d/ns/net", pid)
	if err := syscall.Stat(path, &stat); err != nil {
		return 0, fmt.Errorf("failed to stat %s: %w", path, err)
	}
	return stat.Ino, nil
}

func commandError(err error) error {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) && len(exitErr.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, bytes.TrimSpace(exitErr.Stderr))
	}
	return err
}

// removeCgroup removes the cgroup at relative path name, with the cgroups
// below it, from every mounted cgroup hierarchy. rmdir removes only cgroups
// without processes, so a cgroup that is still in use stays and is reported.
func removeCgroup(name string) error {
	hierarchies, err := cgroupMounts()
	if err != nil {
		return err
	}
	var errs []error
	for _, hierarchy := range hierarchies {
		root := filepath.Join(hierarchy, name)
		var dirs []string
		walk := func(path string, d os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		}
		if err := filepath.WalkDir(root, walk); err != nil {
			errs = append(errs, fmt.Errorf("failed to list cgroup %s: %w", root, err))
			continue
		}
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("failed to remove cgroup %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

func cgroupMounts() ([]string, error) {
	mounts, err := mountsUnder("/sys/fs/cgroup")
	if err != nil {
		return nil, err
	}
	var hierarchies []string
	for _, mount := range mounts {
		if mount.fsType == "cgroup" || mount.fsType == "cgroup2" {
			hierarchies = append(hierarchies, mount.mountPoint)
		}
	}
	return hierarchies, nil
}
