package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// TestFailedChainRollsBack checks that a chain whose last plugin fails ADD
// fails the pod and leaves nothing of the plugins before it.
func TestFailedChainRollsBack(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	recordFile := env.RecordFile("calls")
	network.Record = &framework.RecordPlugin{File: recordFile, FailAdd: true}
	env.WriteNetwork(network)
	env.StartNRICNI(env.NRICNIConfig())

	_, err := env.RunPod(framework.PodConfig{})
	if err == nil {
		t.Fatal("crictl runp with a failing chain succeeded, want a failure")
	}
	var crictlErr *framework.CrictlError
	if !errors.As(err, &crictlErr) {
		t.Fatalf("runp failed before crictl ran: %v", err)
	}
	if !strings.Contains(crictlErr.Stderr, "failAdd") {
		t.Errorf("runp error does not carry the plugin's message (failAdd): %s", crictlErr.Stderr)
	}

	calls, err := framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) == 0 || calls[0].Command != "ADD" {
		t.Fatalf("CNI calls = %+v, want an ADD first", calls)
	}
	var deleted bool
	for _, call := range calls[1:] {
		if call.Command == "ADD" {
			t.Errorf("CNI calls = %+v, want no second ADD", calls)
		}
		if call.Command == "DEL" && call.ContainerID == calls[0].ContainerID && call.IfName == calls[0].IfName {
			deleted = true
		}
	}
	if !deleted {
		t.Errorf("CNI calls = %+v, want a DEL that undoes the failed ADD", calls)
	}

	residue, err := env.NetworkResidue(network.Name, network.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	if !residue.Empty() {
		t.Errorf("left after the failed chain: %s", residue)
	}
	removeFailedSandboxes(t, env)
	if got := netnsMounts(t, env); len(got) != 0 {
		t.Errorf("netns mounts after the failed pod = %v, want none", got)
	}
}

// TestSlowAddTimesOut checks that an ADD slower than cniTimeout fails the pod
// before containerd's NRI request timeout, and leaves nothing behind.
func TestSlowAddTimesOut(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	network.Record = &framework.RecordPlugin{File: env.RecordFile("calls"), SleepAdd: 20 * time.Second}
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

	// The timed-out plugin keeps sleeping in the background until it is
	// killed or returns, so give the rollback a moment.
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
}
