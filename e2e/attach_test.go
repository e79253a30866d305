package e2e

import (
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

func TestPodGetsEth0AndNet1(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())

	pod := env.MustRunPod(framework.PodConfig{})
	status, err := env.InspectPod(pod.ID)
	if err != nil {
		t.Fatal(err)
	}
	eth0IP, err := netip.ParseAddr(status.IP)
	if err != nil || !env.CRISubnet.Contains(eth0IP) {
		t.Errorf("CRI reports eth0 IP %q, want an address in the CRI subnet %s", status.IP, env.CRISubnet)
	}

	podLeases := networkLeases(t, env, network.Name)
	if len(podLeases) != 1 {
		t.Fatalf("network %s has leases %v, want exactly one", network.Name, podLeases)
	}
	net1IP := netip.MustParseAddr(podLeases[0])
	if !network.Subnet.Contains(net1IP) {
		t.Errorf("lease %s is outside the network's subnet %s", net1IP, network.Subnet)
	}

	attached := waitForLog(t, nriCNI, "attached network", pod.ID, 5*time.Second)
	if got := attached.String("network"); got != network.Name {
		t.Errorf("attached network log has network %q, want %q", got, network.Name)
	}
	if got := attached.String("ifName"); got != "net1" {
		t.Errorf("attached network log has ifName %q, want net1", got)
	}
	if got := attached.String("netns"); got != status.NetnsPath {
		t.Errorf("attached network log has netns %q, want the pod's %q", got, status.NetnsPath)
	}

	// The member container joins the pod's network namespace, so it has the
	// CRI's eth0 and nri-cni's net1.
	container := env.MustRunContainer(pod, framework.ContainerConfig{Command: sleepCommand})
	addresses := containerAddresses(t, env, container)
	if got := addresses["eth0"]; got.Addr() != eth0IP {
		t.Errorf("container eth0 address = %v, want %s from the CRI; addresses %v", got, eth0IP, addresses)
	}
	wantNet1 := netip.PrefixFrom(net1IP, network.Subnet.Bits())
	if got := addresses["net1"]; got != wantNet1 {
		t.Errorf("container net1 address = %v, want %s; addresses %v", got, wantNet1, addresses)
	}

	// The bridge carries the gateway address, so the host reaches net1 over it.
	gateway := netip.PrefixFrom(framework.Gateway(network.Subnet), network.Subnet.Bits())
	if got := bridgeAddresses(t, network.Bridge)[network.Bridge]; got != gateway {
		t.Errorf("bridge %s address = %v, want the gateway %s", network.Bridge, got, gateway)
	}
	if ports := bridgePorts(t, network.Bridge); len(ports) != 1 {
		t.Errorf("bridge %s has ports %v, want the pod's one veth", network.Bridge, ports)
	}
	if err := hostPing(net1IP); err != nil {
		t.Errorf("host cannot reach the pod's net1: %v", err)
	}
}

func TestMemberContainerSharesPauseNetns(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	env.WriteNetwork(blueNetwork(env))
	env.StartNRICNI(env.NRICNIConfig())

	hostNetns, err := framework.NetnsInode(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name        string
		hostNetwork bool
	}{
		{name: "pod-network", hostNetwork: false},
		{name: "host-network", hostNetwork: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := env.For(t)
			pod := env.MustRunPod(framework.PodConfig{HostNetwork: tc.hostNetwork})
			container := env.MustRunContainer(pod, framework.ContainerConfig{Command: sleepCommand})

			podStatus, err := env.InspectPod(pod.ID)
			if err != nil {
				t.Fatal(err)
			}
			containerStatus, err := env.InspectContainer(container)
			if err != nil {
				t.Fatal(err)
			}
			if podStatus.PID <= 0 || containerStatus.PID <= 0 {
				t.Fatalf("inspect gave pause PID %d and container PID %d, want both positive", podStatus.PID, containerStatus.PID)
			}
			if podStatus.PID == containerStatus.PID {
				t.Fatalf("pause and container report the same PID %d", podStatus.PID)
			}

			pauseNetns, err := framework.NetnsInode(podStatus.PID)
			if err != nil {
				t.Fatal(err)
			}
			containerNetns, err := framework.NetnsInode(containerStatus.PID)
			if err != nil {
				t.Fatal(err)
			}
			if containerNetns != pauseNetns {
				t.Errorf("container netns inode = %d, want the pause task's %d", containerNetns, pauseNetns)
			}
			if tc.hostNetwork && containerNetns != hostNetns {
				t.Errorf("hostNetwork container netns inode = %d, want the host's %d", containerNetns, hostNetns)
			}
			if !tc.hostNetwork && containerNetns == hostNetns {
				t.Errorf("container of a pod-network pod is in the host netns (inode %d)", hostNetns)
			}
		})
	}
}

func TestHostNetworkPodMakesNoCNICall(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	recordFile := env.RecordFile("calls")
	network.Record = &framework.RecordPlugin{File: recordFile}
	env.WriteNetwork(network)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())

	linksBefore := hostLinks(t, env)

	pod := env.MustRunPod(framework.PodConfig{HostNetwork: true})
	env.MustRunContainer(pod, framework.ContainerConfig{Command: sleepCommand})
	waitForLog(t, nriCNI, "skipped host network pod", pod.ID, 5*time.Second)

	calls, err := framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Errorf("CNI calls for a hostNetwork pod = %v, want none", calls)
	}
	if got := networkLeases(t, env, network.Name); len(got) != 0 {
		t.Errorf("leases after a hostNetwork pod = %v, want none", got)
	}
	checkHostLinks(t, env, linksBefore, "while a hostNetwork pod runs")

	if err := env.StopPod(pod.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.RemovePod(pod.ID); err != nil {
		t.Fatal(err)
	}
	calls, err = framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Errorf("CNI calls after the hostNetwork pod was removed = %v, want none", calls)
	}
	checkHostLinks(t, env, linksBefore, "after a hostNetwork pod")

	// A pod-network pod goes through the same chain, which shows that the
	// record plugin would have seen a call.
	control := env.MustRunPod(framework.PodConfig{})
	calls, err = framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0].Command != "ADD" || calls[0].ContainerID != control.ID || calls[0].IfName != "net1" {
		t.Errorf("calls for a pod-network pod = %+v, want one ADD for sandbox %s on net1", calls, control.ID)
	}
}
