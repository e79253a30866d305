// Package e2e proves nri-cni on a real containerd: each test starts a private
// containerd with its CRI (see package framework), runs bin/nri-cni against
// it and drives pods with crictl. The tests need root, `make tools`,
// `make images` and `make build`, and skip with a message naming what is
// missing.
package e2e

import (
	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// networksAnnotation is the pod annotation that selects nri-cni networks.
const networksAnnotation = "nri-cni.io/networks"

// containerAddresses runs `ip -o -4 addr show` in a container and returns
// its IPv4 addresses by interface name.
func containerAddresses(t *testing.T, env *framework.Env, containerID string) map[string]netip.Prefix {
	t.Helper()
	output, err := env.Exec(containerID, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		t.Fatalf("failed to list addresses in container %s: %v", containerID, err)
	}
	return parseAddresses(t, output)
}

// parseAddresses parses lines such as
// "3: net1    inet 198.18.1.2/24 brd 198.18.1.255 scope global net1".
func parseAddresses(t *testing.T, output string) map[string]netip.Prefix {
	t.Helper()
	addresses := map[string]netip.Prefix{}
	for _, line := range strings.Split(strings.TrimSpace(output), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[2] != "inet" {
			continue
		}
		prefix, err := netip.ParsePrefix(fields[3])
		if err != nil {
			t.Fatalf("failed to parse address %q in line %q: %v", fields[3], line, err)
		}
		addresses[fields[1]] = prefix
	}
	return addresses
}

// hostPing sends one ping from the host network namespace. The host has no
// ping of its own on Debian 12 without iputils-ping, so it uses the static
// busybox that the tools image is made from.
func hostPing(address netip.Addr) error {
	output, err := exec.Command("/bin/busybox", "ping", "-c", "1", "-W", "2", address.String()).CombinedOutput()
	if err != nil {
		return &pingError{address: address, output: string(output), err: err}
	}
	return nil
}

type pingError struct {
	address netip.Addr
	output  string
	err     error
}

func (e *pingError) Error() string {
	return "ping " + e.address.String() + " failed: " + e.err.Error() + ": " + strings.TrimSpace(e.output)
}

// bridgeAddresses returns the IPv4 addresses of a host bridge.
func bridgeAddresses(t *testing.T, bridge string) map[string]netip.Prefix {
	t.Helper()
	output, err := exec.Command("ip", "-o", "-4", "addr", "show", "dev", bridge).CombinedOutput()
	if err != nil {
		t.Fatalf("failed to list addresses of bridge %s: %v: %s", bridge, err, output)
	}
	return parseAddresses(t, string(output))
}

// networkLeases returns host-local's leases of a network and fails the test when
// they cannot be read.
func networkLeases(t *testing.T, env *framework.Env, network string) []string {
	t.Helper()
	result, err := env.Leases(network)
	if err != nil {
		t.Fatal(err)
	}
	return result
}

// hostLinks returns the host's links outside other environments, one string
// each with name, master, MTU and flags, sorted by name.
func hostLinks(t *testing.T, env *framework.Env) []string {
	t.Helper()
	links, err := env.HostLinks()
	if err != nil {
		t.Fatal(err)
	}
	result := make([]string, 0, len(links))
	for _, link := range links {
		result = append(result, link.String())
	}
	return result
}

// checkHostLinks fails the test when the host's links differ from want for
// 2s. It samples more than once, because a veth of a parallel environment
// can show for a moment before it joins that environment's bridge.
func checkHostLinks(t *testing.T, env *framework.Env, want []string, when string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		got := hostLinks(t, env)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("host links changed %s:\nbefore %q\nnow    %q", when, want, got)
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func bridgePorts(t *testing.T, bridge string) []string {
	t.Helper()
	ports, err := framework.BridgePorts(bridge)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

func stateFiles(t *testing.T, env *framework.Env) []string {
	t.Helper()
	files, err := env.StateFiles()
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func cacheEntries(t *testing.T, env *framework.Env) []string {
	t.Helper()
	entries, err := env.CacheEntries()
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func netnsMounts(t *testing.T, env *framework.Env) []string {
	t.Helper()
	mounts, err := env.NetnsMounts()
	if err != nil {
		t.Fatal(err)
	}
	return mounts
}

// blueNetwork returns the network that most tests attach: "blue" on its own
// bridge in subnet 1 of the environment.
func blueNetwork(env *framework.Env) framework.Network {
	return framework.Network{Name: "blue", Bridge: env.Bridge("blue"), Subnet: env.Subnet(1)}
}

// waitForLog waits up to timeout for nri-cni to log message with the given
// sandbox ID and returns the entry.
func waitForLog(t *testing.T, process *framework.Process, message, sandboxID string, timeout time.Duration) framework.LogEntry {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, entry := range framework.LogEntries(process.Log(), message) {
			if entry.String("sandboxID") == sandboxID {
				return entry
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("nri-cni did not log %q for sandbox %s within %s; log:\n%s", message, sandboxID, timeout, process.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// removeFailedSandboxes stops and removes every pod but keep, as the kubelet
// does after a failed RunPodSandbox. containerd v2.4.2 sometimes keeps a
// failed sandbox, with its netns, in state SANDBOX_UNKNOWN when its shim
// disconnects during the cleanup ("failed to delete task: ttrpc: closed"),
// most often on a loaded machine.
func removeFailedSandboxes(t *testing.T, env *framework.Env, keep ...string) {
	t.Helper()
	output, err := env.Crictl("pods", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	for _, podID := range strings.Fields(output) {
		if slices.Contains(keep, podID) {
			continue
		}
		t.Logf("containerd kept failed sandbox %s; removing it", podID)
		if err := env.StopPod(podID); err != nil {
			t.Errorf("failed to stop the failed sandbox: %v", err)
		}
		if err := env.RemovePod(podID); err != nil {
			t.Errorf("failed to remove the failed sandbox: %v", err)
		}
	}
}

// sleepCommand keeps a member container running until the pod stops.
var sleepCommand = []string{"sleep", "3600"}
