package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// TestFailedChainRollsBack checks that a chain whose last plugin fails ADD
// fails the pod and leaves nothing of the plugins before it. It runs eight
// times against a range of two addresses, so a leaked lease would soon fill
// the range and change the error.
func TestFailedChainRollsBack(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	first := framework.Gateway(network.Subnet).Next()
	network.RangeStart, network.RangeEnd = first, first.Next()
	recordFile := env.RecordFile("calls")
	network.Record = &framework.RecordPlugin{File: recordFile, FailAdd: true}
	env.WriteNetwork(network)
	env.StartNRICNI(env.NRICNIConfig())

	const runs = 8
	for run := 1; run <= runs; run++ {
		_, err := env.RunPod(framework.PodConfig{})
		if err == nil {
			t.Fatalf("run %d: crictl runp with a failing chain succeeded, want a failure", run)
		}
		var crictlErr *framework.CrictlError
		if !errors.As(err, &crictlErr) {
			t.Fatalf("run %d: runp failed before crictl ran: %v", run, err)
		}
		if !strings.Contains(crictlErr.Stderr, "failAdd") {
			t.Errorf("run %d: runp error does not carry the plugin's message (failAdd): %s", run, crictlErr.Stderr)
		}

		calls, err := framework.RecordedCalls(recordFile)
		if err != nil {
			t.Fatal(err)
		}
		checkRolledBack(t, run, calls)
		if got := networkLeases(t, env, network.Name); len(got) != 0 {
			t.Errorf("run %d: leases after the failed pod = %v, want none", run, got)
		}
		residue, err := env.NetworkResidue(network.Name, network.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		if !residue.Empty() {
			t.Errorf("run %d: left after the failed chain: %s", run, residue)
		}
		removeFailedSandboxes(t, env)
		if got := netnsMounts(t, env); len(got) != 0 {
			t.Errorf("run %d: netns mounts after the failed pod = %v, want none", run, got)
		}
	}
}

// checkRolledBack checks that the last ADD of calls, the one of run, was
// undone by a DEL and that the run made exactly one ADD.
func checkRolledBack(t *testing.T, run int, calls []framework.RecordedCall) {
	t.Helper()
	var adds []framework.RecordedCall
	for _, call := range calls {
		if call.Command == "ADD" {
			adds = append(adds, call)
		}
	}
	if len(adds) != run {
		t.Fatalf("run %d: CNI calls = %+v, want one ADD per run", run, calls)
	}
	last := adds[len(adds)-1]
	for _, call := range calls {
		if call.Command == "DEL" && call.ContainerID == last.ContainerID && call.IfName == last.IfName {
			return
		}
	}
	t.Errorf("run %d: CNI calls = %+v, want a DEL that undoes the failed ADD of sandbox %s", run, calls, last.ContainerID)
}

// TestSlowAddTimesOut checks that an ADD slower than cniTimeout fails the pod
// before containerd's NRI request timeout, and leaves nothing behind.
func TestSlowAddTimesOut(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	recordFile := env.RecordFile("calls")
	network.Record = &framework.RecordPlugin{File: recordFile, SleepAdd: 20 * time.Second}
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	config.CNITimeout = "2s"
	env.StartNRICNI(config)

	start := time.Now()
	_, err := env.RunPod(framework.PodConfig{})
	took := time.Since(start)
	if err == nil {
		t.Fatal("crictl runp with an ADD slower than cniTimeout succeeded, want a failure")
	}
	if took >= framework.NRIRequestTimeout {
		t.Errorf("runp failed after %s, want before the NRI request timeout %s", took, framework.NRIRequestTimeout)
	}
	if took < 2*time.Second {
		t.Errorf("runp failed after %s, before cniTimeout 2s: %v", took, err)
	}
	var crictlErr *framework.CrictlError
	if !errors.As(err, &crictlErr) {
		t.Fatalf("runp failed before crictl ran: %v", err)
	}
	if !containsAll(crictlErr.Stderr, network.Name, "timed out") {
		t.Errorf("runp error does not say that network %s timed out: %s", network.Name, crictlErr.Stderr)
	}

	// The ADD was cancelled: its plugin process is gone, and a DEL undid
	// what the bridge had done.
	calls, err := framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	checkRolledBack(t, 1, calls)
	sandboxID := calls[0].ContainerID
	if pids := cniPluginPIDs(t, sandboxID); len(pids) != 0 {
		t.Errorf("CNI plugin processes of the timed-out ADD still run: PIDs %v", pids)
		killCNIPlugins(t, env, sandboxID)
	}

	// The rollback runs before RunPodSandbox returns, so the poll only
	// allows for a slow machine.
	deadline := time.Now().Add(10 * time.Second)
	for {
		residue, err := env.NetworkResidue(network.Name, network.Bridge)
		if err != nil {
			t.Fatal(err)
		}
		if residue.Empty() {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("left 10s after the timed-out pod: %s", residue)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	removeFailedSandboxes(t, env)
	if got := netnsMounts(t, env); len(got) != 0 {
		t.Errorf("netns mounts after the timed-out pod = %v, want none", got)
	}
}
