package e2e

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

func TestAnnotationPicksNetworkAndName(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	first := framework.Network{Name: "first", Bridge: env.Bridge("first"), Subnet: env.Subnet(1)}
	second := framework.Network{Name: "second", Bridge: env.Bridge("second"), Subnet: env.Subnet(2)}
	env.WriteNetwork(first)
	env.WriteNetwork(second)
	env.StartNRICNI(env.NRICNIConfig())

	pod := env.MustRunPod(framework.PodConfig{
		Annotations: map[string]string{networksAnnotation: "second@blue0"},
	})
	container := env.MustRunContainer(pod, framework.ContainerConfig{Command: sleepCommand})
	addresses := containerAddresses(t, env, container)

	secondLeases := networkLeases(t, env, second.Name)
	if len(secondLeases) != 1 {
		t.Fatalf("leases of network %s = %v, want one", second.Name, secondLeases)
	}
	want := netip.PrefixFrom(netip.MustParseAddr(secondLeases[0]), second.Subnet.Bits())
	if got := addresses["blue0"]; got != want {
		t.Errorf("container blue0 address = %v, want %s from network %s; addresses %v", got, want, second.Name, addresses)
	}
	if got, ok := addresses["net1"]; ok {
		t.Errorf("container has net1 %v, want only the annotated blue0", got)
	}
	if _, ok := addresses["eth0"]; !ok {
		t.Errorf("container has no eth0 from the CRI; addresses %v", addresses)
	}
	if got := networkLeases(t, env, first.Name); len(got) != 0 {
		t.Errorf("leases of the unselected network %s = %v, want none", first.Name, got)
	}
	if got := bridgePorts(t, first.Bridge); len(got) != 0 {
		t.Errorf("ports of the unselected bridge %s = %v, want none", first.Bridge, got)
	}
}

func TestUnknownNetworkFailsPod(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	env.StartNRICNI(env.NRICNIConfig())

	const unknown = "no-such-network"
	_, err := env.RunPod(framework.PodConfig{
		Annotations: map[string]string{networksAnnotation: network.Name + "," + unknown},
	})
	if err == nil {
		t.Fatalf("crictl runp with network %q succeeded, want a failure", unknown)
	}
	var crictlErr *framework.CrictlError
	if !errors.As(err, &crictlErr) {
		t.Fatalf("runp failed before crictl ran: %v", err)
	}
	if !strings.Contains(crictlErr.Stderr, unknown) {
		t.Errorf("runp error does not name network %q: %s", unknown, crictlErr.Stderr)
	}

	// The known network in the same annotation must not stay attached.
	residue, err := env.NetworkResidue(network.Name, network.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if !residue.Empty() {
		t.Errorf("left after the failed pod: %s", residue)
	}
	removeFailedSandboxes(t, env)
	if got := netnsMounts(t, env); len(got) != 0 {
		t.Errorf("netns mounts after the failed pod = %v, want none", got)
	}
}

func TestExhaustedRangeFailsSecondPod(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	only := framework.Gateway(network.Subnet).Next()
	network.RangeStart = only
	network.RangeEnd = only
	env.WriteNetwork(network)
	env.StartNRICNI(env.NRICNIConfig())

	first := env.MustRunPod(framework.PodConfig{})
	if got := networkLeases(t, env, network.Name); !slices.Equal(got, []string{only.String()}) {
		t.Fatalf("leases of the first pod = %v, want [%s]", got, only)
	}
	firstPorts := bridgePorts(t, network.Bridge)
	if len(firstPorts) != 1 {
		t.Fatalf("bridge ports of the first pod = %v, want one veth", firstPorts)
	}
	firstState := stateFiles(t, env)
	firstCache := cacheEntries(t, env)

	_, err := env.RunPod(framework.PodConfig{})
	if err == nil {
		t.Fatalf("second pod in a range of one address succeeded, want a failure")
	}
	var crictlErr *framework.CrictlError
	if !errors.As(err, &crictlErr) {
		t.Fatalf("runp failed before crictl ran: %v", err)
	}
	if !strings.Contains(crictlErr.Stderr, network.Name) {
		t.Errorf("runp error does not name network %s: %s", network.Name, crictlErr.Stderr)
	}

	if got := bridgePorts(t, network.Bridge); !slices.Equal(got, firstPorts) {
		t.Errorf("bridge ports after the failed pod = %v, want only the first pod's %v", got, firstPorts)
	}
	if got := networkLeases(t, env, network.Name); !slices.Equal(got, []string{only.String()}) {
		t.Errorf("leases after the failed pod = %v, want only the first pod's [%s]", got, only)
	}
	if got := stateFiles(t, env); !slices.Equal(got, firstState) {
		t.Errorf("state files after the failed pod = %v, want only the first pod's %v", got, firstState)
	}
	if got := cacheEntries(t, env); !slices.Equal(got, firstCache) {
		t.Errorf("libcni cache entries after the failed pod = %v, want only the first pod's %v", got, firstCache)
	}
	removeFailedSandboxes(t, env, first.ID)
	if got := netnsMounts(t, env); len(got) != 1 {
		t.Errorf("netns mounts after the failed pod = %v, want the first pod's one", got)
	}

	// The first pod keeps its net1, and its address still replies to a ping.
	if err := hostPing(only); err != nil {
		t.Errorf("first pod lost its net1 after the failed pod: %v", err)
	}
	if status, err := env.InspectPod(first.ID); err != nil || status.State != "SANDBOX_READY" {
		t.Errorf("first pod state = %q (%v), want SANDBOX_READY", status.State, err)
	}
}
