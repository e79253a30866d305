package framework

import (
	"net/netip"
	"strings"
	"testing"
)

func TestEnvWithCRINetworkGivesEth1(t *testing.T) {
	env := New(t, WithCRINetwork("second", "second", 1))
	if len(env.CRINetworks) != 1 {
		t.Fatalf("env has %d CRI networks after eth0, want 1", len(env.CRINetworks))
	}
	second := env.CRINetworks[0]

	pod := env.MustRunPod(PodConfig{})
	container := env.MustRunContainer(pod, ContainerConfig{Command: []string{"sleep", "3600"}})
	output, err := env.Exec(container, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	addresses := map[string]netip.Prefix{}
	for _, line := range strings.Split(output, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 4 && fields[2] == "inet" {
			addresses[fields[1]] = netip.MustParsePrefix(fields[3])
		}
	}
	if eth0, ok := addresses["eth0"]; !ok || !env.CRISubnet.Contains(eth0.Addr()) {
		t.Errorf("eth0 = %v, want an address in the CRI subnet %s: %s", eth0, env.CRISubnet, output)
	}
	if eth1, ok := addresses["eth1"]; !ok || !second.Subnet.Contains(eth1.Addr()) {
		t.Errorf("eth1 = %v, want an address in subnet %s of %s: %s", eth1, second.Subnet, second.Name, output)
	}
	ports, err := BridgePorts(second.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 1 {
		t.Errorf("bridge %s has ports %v, want one veth", second.Bridge, ports)
	}

	if err := env.StopPod(pod.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.RemovePod(pod.ID); err != nil {
		t.Fatal(err)
	}
	residue, err := env.NetworkResidue(second.Name, second.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if len(residue.Leases) != 0 || len(residue.BridgePorts) != 0 {
		t.Errorf("CRI left on network %s: %s", second.Name, residue)
	}
}
