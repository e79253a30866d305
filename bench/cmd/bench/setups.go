package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/e2e/framework"
)

// networkName is network X, the extra network that every setup but the
// baseline attaches: a bridge of its own with host-local IPAM in subnet 1 of
// its environment, with the same config in every setup.
const networkName = "x"

// Setup keys, in the order of the report.
const (
	keyBaseline = "baseline"
	// keyControl is a second baseline, started last: the difference to the
	// first is what the order of the environments alone costs.
	keyControl = "baseline-last"
	keyBuiltin = "builtin"
	keySync    = "nri-cni-sync"
	keyAsync   = "nri-cni-async"
	keyHook    = "nri-cni-hook"
	keyNoNet   = "nri-cni-none"
)

// setup is one way of giving pods their networks, on a private containerd.
type setup struct {
	key         string
	label       string
	description string
	env         *framework.Env
	// nriCNI is the plugin process, nil when the setup runs without it.
	nriCNI *framework.Process
	// network is X as the setup attaches it, nil for the baseline.
	network *framework.Network
}

// newSetups starts the seven environments: (a) the baseline with eth0 only,
// (b) the CRI attaching X itself, (c) nri-cni attaching X in sync and in
// async mode, both with the early attach, and in sync mode without it, (d)
// nri-cni with no network, and (a') a second baseline. Setup (d) shows the
// cost of nri-cni's hooks and their NRI round trips without any CNI work.
// An environment started later was slower in earlier runs, more so with
// many pods running, so (a') - (a) shows how much of a difference the order
// alone makes.
func newSetups(r *runner) []*setup {
	baseline := &setup{
		key:         keyBaseline,
		label:       "(a) baseline",
		description: "containerd's CRI gives eth0, nothing else",
		env:         framework.New(r),
	}
	r.CheckInterrupt()

	builtinEnv := framework.New(r, framework.WithCRINetwork(networkName, "x", 1))
	builtin := &setup{
		key:         keyBuiltin,
		label:       "(b) built-in",
		description: "containerd's CRI attaches eth0 and X itself (max_conf_num = 2)",
		env:         builtinEnv,
		network:     &builtinEnv.CRINetworks[0],
	}
	r.CheckInterrupt()

	sync := newNRICNISetup(r, keySync, "(c-sync) nri-cni sync", config.AttachSync, true)
	r.CheckInterrupt()
	async := newNRICNISetup(r, keyAsync, "(c-async) nri-cni async", config.AttachAsync, true)
	r.CheckInterrupt()
	hook := newNRICNISetup(r, keyHook, "(c-hook) nri-cni sync, no early attach", config.AttachSync, true)
	hook.description = "as (c-sync) with containerdSocket empty: the ADD starts in RunPodSandbox"
	r.CheckInterrupt()
	none := newNRICNISetup(r, keyNoNet, "(d) nri-cni, no network", config.AttachSync, false)
	none.description = "containerd's CRI gives eth0, nri-cni runs its hooks with an empty conf dir"
	r.CheckInterrupt()
	control := &setup{
		key:         keyControl,
		label:       "(a') baseline, started last",
		description: "as (a), its environment started after all others",
		env:         framework.New(r),
	}
	return []*setup{baseline, builtin, sync, async, hook, none, control}
}

// newNRICNISetup starts an environment with nri-cni in attach mode mode and,
// withNetwork, X in its conf dir.
func newNRICNISetup(r *runner, key, label, mode string, withNetwork bool) *setup {
	env := framework.New(r)
	var network *framework.Network
	if withNetwork {
		network = &framework.Network{Name: networkName, Bridge: env.Bridge("x"), Subnet: env.Subnet(1)}
		env.WriteNetwork(*network)
	}
	cfg := env.NRICNIConfig()
	// The defaults of a deployment: the reference plugins only, info logs.
	cfg.CNIBinDirs = []string{env.Paths.CNIBin}
	cfg.LogLevel = "info"
	cfg.AttachMode = mode
	if key == keyHook {
		cfg.ContainerdSocket = ""
	}
	return &setup{
		key:         key,
		label:       label,
		description: fmt.Sprintf("containerd's CRI gives eth0, nri-cni attaches X as net1 (attachMode %s)", mode),
		env:         env,
		nriCNI:      env.StartNRICNI(cfg),
		network:     network,
	}
}

// attachesWithNRICNI reports whether nri-cni attaches X in the setup.
func (s *setup) attachesWithNRICNI() bool {
	return s.nriCNI != nil && s.network != nil
}

// podTimes are the latencies of one pod start.
type podTimes struct {
	// runp is the time of `crictl runp`.
	runp time.Duration
	// firstContainer is the time from the start of `crictl runp` until
	// `crictl start` of the pod's first container has returned.
	firstContainer time.Duration
}

// sleepCommand is the first container of a pod: busybox sleep from the
// tools image.
var sleepCommand = []string{"sleep", "3600"}

// startPod runs a pod and, withContainer, its first container.
func (s *setup) startPod(withContainer bool) (*framework.Pod, podTimes, error) {
	var times podTimes
	start := time.Now()
	pod, err := s.env.RunPod(framework.PodConfig{})
	times.runp = time.Since(start)
	if err != nil || !withContainer {
		return pod, times, err
	}
	containerID, err := s.env.CreateContainer(pod, framework.ContainerConfig{Command: sleepCommand})
	if err != nil {
		return pod, times, err
	}
	if err := s.env.StartContainer(containerID); err != nil {
		return pod, times, err
	}
	times.firstContainer = time.Since(start)
	return pod, times, nil
}

// removePod runs `crictl stopp` and `crictl rmp` and returns their time.
func (s *setup) removePod(pod *framework.Pod) (time.Duration, error) {
	start := time.Now()
	if err := s.env.StopPod(pod.ID); err != nil {
		return 0, err
	}
	if err := s.env.RemovePod(pod.ID); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// attachedCount returns how many pods have X attached: the libcni cache
// entries of nri-cni, which libcni writes when an ADD has succeeded, or for
// the CRI the ports of X's bridge. Without X it counts eth0 leases.
func (s *setup) attachedCount() (int, error) {
	switch {
	case s.network == nil:
		leases, err := s.env.Leases(framework.CRINetworkName)
		return len(leases), err
	case s.nriCNI != nil:
		entries, err := s.env.CacheEntries()
		return len(entries), err
	default:
		ports, err := framework.BridgePorts(s.network.Bridge)
		return len(ports), err
	}
}

// waitAttached polls until want pods are attached and returns when that
// happened, or fails after timeout.
func (s *setup) waitAttached(want int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		got, err := s.attachedCount()
		if err != nil {
			return time.Time{}, err
		}
		if got == want {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s: %d pods attached after %s, expected %d", s.label, got, timeout, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkPods checks that want pods hold an eth0 lease, and, unless this is the
// baseline, an X lease, a port on X's bridge and, for nri-cni, a record.
func (s *setup) checkPods(want int) error {
	leases, err := s.env.Leases(framework.CRINetworkName)
	if err != nil {
		return err
	}
	if len(leases) != want {
		return fmt.Errorf("%s: %d eth0 leases, expected %d", s.label, len(leases), want)
	}
	if s.network == nil {
		if s.nriCNI != nil {
			records, err := s.env.StateFiles()
			if err != nil {
				return err
			}
			if len(records) != 0 {
				return fmt.Errorf("%s: nri-cni has %d records without a network, expected none", s.label, len(records))
			}
		}
		return nil
	}
	residue, err := s.env.NetworkResidue(s.network.Name, s.network.Bridge)
	if err != nil {
		return err
	}
	if len(residue.Leases) != want || len(residue.BridgePorts) != want {
		return fmt.Errorf("%s: network %s has %d leases and %d bridge ports, expected %d of each",
			s.label, s.network.Name, len(residue.Leases), len(residue.BridgePorts), want)
	}
	if s.nriCNI != nil && (len(residue.StateFiles) != want || len(residue.CacheEntries) != want) {
		return fmt.Errorf("%s: nri-cni has %d records and %d libcni cache entries, expected %d of each",
			s.label, len(residue.StateFiles), len(residue.CacheEntries), want)
	}
	return nil
}

// checkClean checks that no pod, lease, port, record or netns is left.
func (s *setup) checkClean() error {
	if err := s.checkPods(0); err != nil {
		return err
	}
	mounts, err := s.env.NetnsMounts()
	if err != nil {
		return err
	}
	if len(mounts) != 0 {
		return fmt.Errorf("%s: %d network namespaces still mounted: %v", s.label, len(mounts), mounts)
	}
	return nil
}

// nriCNIErrors returns the message and error of each line that nri-cni has
// logged at level error.
func (s *setup) nriCNIErrors() []string {
	if s.nriCNI == nil {
		return nil
	}
	var lines []string
	for _, line := range strings.Split(s.nriCNI.Log(), "\n") {
		var entry framework.LogEntry
		if json.Unmarshal([]byte(line), &entry) != nil || entry.String("level") != "error" {
			continue
		}
		lines = append(lines, entry.String("msg")+": "+entry.String("error"))
	}
	return lines
}
