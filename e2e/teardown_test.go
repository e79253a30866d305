package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

func TestStopPodFreesLeaseAndVeth(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	recordFile := env.RecordFile("calls")
	network.Record = &framework.RecordPlugin{File: recordFile}
	env.WriteNetwork(network)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())

	pod := env.MustRunPod(framework.PodConfig{})
	env.MustRunContainer(pod, framework.ContainerConfig{Command: sleepCommand})
	status, err := env.InspectPod(pod.ID)
	if err != nil {
		t.Fatal(err)
	}

	if got := networkLeases(t, env, network.Name); len(got) != 1 {
		t.Fatalf("leases of a running pod = %v, want one", got)
	}
	if got := bridgePorts(t, network.Bridge); len(got) != 1 {
		t.Fatalf("bridge ports of a running pod = %v, want one veth", got)
	}
	if got := stateFiles(t, env); len(got) != 1 {
		t.Errorf("state files of a running pod = %v, want one", got)
	}
	if got := cacheEntries(t, env); len(got) != 1 {
		t.Errorf("libcni cache entries of a running pod = %v, want one", got)
	}

	if err := env.StopPod(pod.ID); err != nil {
		t.Fatalf("first stopp: %v", err)
	}
	detached := waitForLog(t, nriCNI, "detached network", pod.ID, 5*time.Second)
	if got := detached.String("network"); got != network.Name {
		t.Errorf("detached network log has network %q, want %q", got, network.Name)
	}
	if got := networkLeases(t, env, network.Name); len(got) != 0 {
		t.Errorf("leases after stopp = %v, want none", got)
	}
	if got := bridgePorts(t, network.Bridge); len(got) != 0 {
		t.Errorf("bridge ports after stopp = %v, want none", got)
	}

	calls, err := framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 2 {
		t.Fatalf("CNI calls = %+v, want ADD then DEL", calls)
	}
	if calls[0].Command != "ADD" || calls[1].Command != "DEL" {
		t.Errorf("CNI commands = %s, %s, want ADD, DEL", calls[0].Command, calls[1].Command)
	}
	if calls[1].ContainerID != calls[0].ContainerID || calls[1].IfName != calls[0].IfName {
		t.Errorf("DEL for %s/%s, want the ADD's %s/%s", calls[1].ContainerID, calls[1].IfName, calls[0].ContainerID, calls[0].IfName)
	}
	// containerd unmounts the pinned path after StopPodSandbox, and the DEL
	// runs in the namespace that nri-cni holds open from that hook.
	if calls[0].NetnsInode == 0 || calls[1].NetnsInode != calls[0].NetnsInode {
		t.Errorf("DEL ran in netns %q (inode %d), want the namespace of the ADD %q (inode %d)",
			calls[1].Netns, calls[1].NetnsInode, calls[0].Netns, calls[0].NetnsInode)
	}
	if want := fmt.Sprintf("/proc/%d/fd/", nriCNI.PID()); !strings.HasPrefix(calls[1].Netns, want) {
		t.Errorf("DEL got netns %q, want a file of nri-cni under %s", calls[1].Netns, want)
	}
	if calls[0].Netns != status.NetnsPath {
		t.Errorf("ADD got netns %q, want the pinned %q", calls[0].Netns, status.NetnsPath)
	}

	if err := env.StopPod(pod.ID); err != nil {
		t.Errorf("second stopp: %v", err)
	}
	if err := env.RemovePod(pod.ID); err != nil {
		t.Errorf("rmp: %v", err)
	}
	residue, err := env.NetworkResidue(network.Name, network.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if !residue.Empty() {
		t.Errorf("left after rmp: %s", residue)
	}
	if got := netnsMounts(t, env); len(got) != 0 {
		t.Errorf("netns mounts after rmp = %v, want none", got)
	}
	calls, err = framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	// CNI allows repeated DELs, so only a new ADD would be wrong here.
	for _, call := range calls[1:] {
		if call.Command != "DEL" {
			t.Errorf("CNI call after the pod stopped = %+v, want only DELs", call)
		}
	}
}
