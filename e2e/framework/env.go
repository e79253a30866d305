// Package framework runs a private containerd for e2e tests of nri-cni and
// drives it with crictl, the CRI's own test client.
//
// Each Env owns one temp folder for everything it runs. The folder contains
// containerd's root, state and sockets, the shims' sockets, runc's state and
// the CRI's CNI config for eth0. It also contains nri-cni's config, conf dir,
// libcni cache and state dir, and the host-local leases of all networks.
// Each Env also owns one address block and one bridge name prefix (see
// Env.Subnet and Env.Bridge). Cleanup removes all of it, also when a test
// fails.
package framework

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// T is the part of testing.TB that an environment uses, so the demo can run
// one without the testing package.
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	Failed() bool
}

// Env is one private containerd with its CRI, ready for pods.
type Env struct {
	t     T
	Paths Paths
	// Dir is the environment's folder, short enough for Unix socket paths.
	Dir              string
	ContainerdSocket string
	NRISocket        string
	// NetworkDir is nri-cni's CNI conf dir.
	NetworkDir string
	// CNICacheDir is nri-cni's libcni cache dir.
	CNICacheDir string
	// StateDir is nri-cni's state dir.
	StateDir string
	// IPAMDir is the host-local data dir of every network, the CRI's too.
	IPAMDir string
	// CgroupParent is the cgroup of every pod, one per environment, so
	// cleanup can remove the cgroups that runc leaves for the parent.
	CgroupParent string
	// CRIBridge and CRISubnet are the bridge and subnet of the CRI's eth0.
	CRIBridge string
	CRISubnet netip.Prefix
	// CRINetworks are the CRI's networks after eth0, which WithCRINetwork
	// adds: the CRI attaches them as eth1, eth2 and so on.
	CRINetworks []Network
	// ContainerdStartTime is how long containerd took from exec until its
	// CRI reported ready.
	ContainerdStartTime time.Duration

	block        *block
	containerd   *Process
	crictlConfig string
	// shared is the state that views from For share with the Env.
	shared *sharedState
}

type sharedState struct {
	sync.Mutex
	processes []*Process
	sequence  int
	// root is the Env that New returned, whose containerd cleanup stops.
	root *Env
}

// For returns a view of env that reports failures to t, for use in subtests.
// It shares the environment, whose cleanup stays with the test that called
// New.
func (env *Env) For(t T) *Env {
	view := *env
	view.t = t
	return &view
}

// nextSequence returns a number unique in the environment, for names of
// pods, containers, configs and logs.
func (env *Env) nextSequence() int {
	env.shared.Lock()
	defer env.shared.Unlock()
	env.shared.sequence++
	return env.shared.sequence
}

func (env *Env) addProcess(process *Process) {
	env.shared.Lock()
	defer env.shared.Unlock()
	env.shared.processes = append(env.shared.processes, process)
}

// New starts an environment and registers its cleanup with t. It skips the
// test when not run as root or when `make tools` or `make images` has not
// run, and fails it when any step fails. Options change the environment.
func New(t T, options ...Option) *Env {
	t.Helper()
	paths, err := FindPaths()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if reason := paths.missingPrerequisite(); reason != "" {
		t.Skipf("%s", reason)
	}
	if err := BuildRecordPlugin(paths); err != nil {
		t.Fatalf("%v", err)
	}

	env := &Env{t: t, Paths: paths, shared: &sharedState{}}
	env.shared.root = env
	t.Cleanup(env.cleanup)

	env.block, err = claimBlock()
	if err != nil {
		t.Fatalf("%v", err)
	}
	if err := env.createDir(); err != nil {
		t.Fatalf("%v", err)
	}

	env.ContainerdSocket = filepath.Join(env.Dir, "containerd.sock")
	env.NRISocket = filepath.Join(env.Dir, "nri.sock")
	env.NetworkDir = filepath.Join(env.Dir, "nri-cni", "net.d")
	env.CNICacheDir = filepath.Join(env.Dir, "nri-cni", "cache")
	env.StateDir = filepath.Join(env.Dir, "nri-cni", "state")
	env.IPAMDir = filepath.Join(env.Dir, "ipam")
	env.CgroupParent = "/" + filepath.Base(env.Dir)
	env.CRIBridge = env.Bridge("cri")
	env.CRISubnet = env.Subnet(0)
	env.applyOptions(collectOptions(options))
	if err := os.MkdirAll(env.NetworkDir, 0o755); err != nil {
		t.Fatalf("failed to create nri-cni conf dir: %v", err)
	}

	if err := env.writeCrictlConfig(); err != nil {
		t.Fatalf("%v", err)
	}
	if err := env.startContainerd(); err != nil {
		t.Fatalf("%v", err)
	}
	if err := env.importImages(); err != nil {
		t.Fatalf("%v", err)
	}
	return env
}

// createDir creates the environment's folder and makes it a shared mount, so
// mounts that containerd makes below it in its own mount namespace show up in
// the host's.
func (env *Env) createDir() error {
	dir, err := os.MkdirTemp("/tmp", fmt.Sprintf("nce%02d-", env.block.index))
	if err != nil {
		return fmt.Errorf("failed to create environment folder: %w", err)
	}
	env.Dir = dir
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("failed to bind-mount environment folder %s onto itself: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED, ""); err != nil {
		return fmt.Errorf("failed to make environment folder %s a shared mount: %w", dir, err)
	}
	return nil
}

// Subnet returns the i-th /24 of the environment's block, for i from 1 to
// SubnetsPerBlock-1. Subnet 0 is the CRI's eth0.
func (env *Env) Subnet(i int) netip.Prefix {
	env.t.Helper()
	if i < 0 || i >= SubnetsPerBlock {
		env.t.Fatalf("subnet index %d out of range: use 1 to %d", i, SubnetsPerBlock-1)
	}
	return env.block.subnet(i)
}

// Bridge returns the name of an environment bridge. suffix has at most 10
// bytes, the space that Linux's 15-byte interface names leave.
func (env *Env) Bridge(suffix string) string {
	env.t.Helper()
	name := env.block.linkPrefix() + suffix
	if len(name) > 15 {
		env.t.Fatalf("bridge name %q is longer than 15 bytes: shorten the suffix %q", name, suffix)
	}
	return name
}

// Gateway returns the first address of subnet, which the bridge plugin gives
// to the bridge.
func Gateway(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}

// cleanup tears down everything the environment made. Pods go first, so the
// CNI DELs run while containerd and nri-cni are up. Then come the processes,
// the containers that the shims left, the mounts, the cgroups, the bridges
// and the folder. A step that fails fails the test, and the later steps still
// run.
func (env *Env) cleanup() {
	if env.t.Failed() {
		env.logTails()
	}
	errs := env.stopProcesses()
	errs = append(errs, env.removeHostState()...)
	if err := errors.Join(errs...); err != nil {
		env.t.Errorf("cleanup of %s: %v", env.Dir, err)
	}
}

func (env *Env) stopProcesses() []error {
	var errs []error
	if env.containerd != nil && !env.containerd.Exited() {
		if err := env.removeAllPods(); err != nil {
			errs = append(errs, err)
		}
	}

	env.shared.Lock()
	processes := env.shared.processes
	env.shared.Unlock()
	for i := len(processes) - 1; i >= 0; i-- {
		if err := processes[i].Stop(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if env.containerd != nil {
		if err := env.containerd.Stop(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}

	if env.Dir != "" {
		if err := env.killLeftovers(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (env *Env) removeHostState() []error {
	var errs []error
	if env.Dir != "" {
		if err := unmountAll(env.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if env.CgroupParent != "" {
		if err := removeCgroup(env.CgroupParent); err != nil {
			errs = append(errs, err)
		}
	}
	if env.block != nil {
		if err := deleteLinksWithPrefix(env.block.linkPrefix()); err != nil {
			errs = append(errs, err)
		}
	}
	if env.Dir != "" {
		if err := os.RemoveAll(env.Dir); err != nil {
			errs = append(errs, fmt.Errorf("failed to remove environment folder: %w", err))
		}
	}
	if env.block != nil {
		if err := env.block.release(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// logTails logs the end of every process log, because cleanup removes the
// folder that holds the logs.
func (env *Env) logTails() {
	env.shared.Lock()
	processes := append([]*Process{}, env.shared.processes...)
	env.shared.Unlock()
	if env.containerd != nil {
		processes = append([]*Process{env.containerd}, processes...)
	}
	for _, process := range processes {
		env.t.Logf("last lines of %s (PID %d) log %s:\n%s", process.Name, process.PID(), process.LogPath, process.logTail(40))
	}
}

// killLeftovers deletes the containers in runc's state dir and kills the
// shims of this environment's containerd, which a test that failed half-way
// can leave.
func (env *Env) killLeftovers() error {
	var errs []error
	roots, _ := filepath.Glob(filepath.Join(env.Dir, "runc", "*"))
	for _, root := range roots {
		states, _ := filepath.Glob(filepath.Join(root, "*", "state.json"))
		for _, state := range states {
			id := filepath.Base(filepath.Dir(state))
			if err := runCommand(filepath.Join(env.Paths.ToolsBin, "runc"), "--root", root, "delete", "--force", id); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// Every shim of this containerd has its socket path in its arguments.
	pids, err := processesMentioning(env.ContainerdSocket)
	if err != nil {
		errs = append(errs, err)
	}
	for _, pid := range pids {
		if err := killPID(pid); err != nil {
			errs = append(errs, err)
		}
	}
	if len(pids) > 0 {
		env.t.Logf("killed %d processes that containerd left: PIDs %v", len(pids), pids)
	}
	return errors.Join(errs...)
}

func runCommand(program string, args ...string) error {
	cmd := exec.Command(program, args...)
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("failed to run %s %s: %w: %s", filepath.Base(program), strings.Join(args, " "), err, strings.TrimSpace(string(output)))
	}
	return nil
}
