package e2e

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// TestInterruptedAttachIsResolved checks that nri-cni killed between a
// finished bridge ADD and the state write leaks nothing: its intent record,
// written before the ADD, is resolved when it starts again. containerd fails
// open when the plugin dies during RunPodSandbox, so the pod runs on with a
// half-made attachment. A pod that still runs then gets a fresh attach; one
// that was removed meanwhile is deleted from the stored config.
func TestInterruptedAttachIsResolved(t *testing.T) {
	t.Parallel()
	for _, removeWhileDown := range []bool{false, true} {
		name := "pod-runs"
		if removeWhileDown {
			name = "pod-removed"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testInterruptedAttach(t, removeWhileDown)
		})
	}
}

func testInterruptedAttach(t *testing.T, removeWhileDown bool) {
	env := framework.New(t)
	network := blueNetwork(env)
	recordFile := env.RecordFile("calls")
	// The record plugin sleeps after the bridge has taken the lease and
	// created the veth, so nri-cni dies before it records the result.
	network.Record = &framework.RecordPlugin{File: recordFile, SleepAdd: time.Minute}
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	nriCNI := env.StartNRICNI(config)

	type runResult struct {
		pod *framework.Pod
		err error
	}
	done := make(chan runResult, 1)
	go func() {
		pod, err := env.RunPod(framework.PodConfig{Name: "interrupted"})
		done <- runResult{pod, err}
	}()

	sandboxID := waitForAddCall(t, recordFile, 15*time.Second)
	intent := readState(t, env, sandboxID)
	if len(intent.Attachments) != 1 || intent.Attachments[0].Phase != "adding" {
		t.Fatalf("state during the ADD = %+v, want one attachment in phase adding", intent)
	}
	halfLeases := networkLeases(t, env, network.Name)
	if len(halfLeases) != 1 {
		t.Fatalf("leases during the ADD = %v, want the one the bridge took", halfLeases)
	}
	env.KillNRICNI(nriCNI)
	killCNIPlugins(t, env, sandboxID)

	var result runResult
	select {
	case result = <-done:
	case <-time.After(framework.NRIRequestTimeout + 10*time.Second):
		t.Fatal("crictl runp did not return after nri-cni was killed")
	}
	if result.err != nil {
		t.Fatalf("crictl runp failed after nri-cni was killed, want containerd to fail open: %v", result.err)
	}
	if got := readState(t, env, sandboxID); got.Attachments[0].Phase != "adding" {
		t.Fatalf("state after the kill = %+v, want the intent in phase adding", got)
	}

	// The next attach must not sleep again. The intent keeps the old config
	// for the DEL.
	network.Record.SleepAdd = 0
	env.WriteNetwork(network)
	if removeWhileDown {
		removePod(t, env, sandboxID)
	}
	restarted := env.StartNRICNI(config)

	if removeWhileDown {
		waitForLog(t, restarted, "detached network", sandboxID, 10*time.Second)
		calls, err := framework.RecordedCalls(recordFile)
		if err != nil {
			t.Fatal(err)
		}
		if !hasCall(calls, "DEL", sandboxID) {
			t.Errorf("CNI calls = %+v, want a DEL of the interrupted attach", calls)
		}
		requireNoLeftovers(t, env, 5*time.Second, "after the removed pod's intent was resolved", network)
		return
	}

	waitForLog(t, restarted, "found interrupted attach; deleting it before attaching again", sandboxID, 10*time.Second)
	waitForLog(t, restarted, "attached network", sandboxID, 10*time.Second)
	calls, err := framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	var commands []string
	for _, call := range calls {
		if call.ContainerID == sandboxID {
			commands = append(commands, call.Command)
		}
	}
	if !slices.Equal(commands, []string{"ADD", "DEL", "ADD"}) {
		t.Errorf("CNI calls of the pod = %v, want ADD (interrupted), DEL, ADD", commands)
	}
	if got := readState(t, env, sandboxID); len(got.Attachments) != 1 || got.Attachments[0].Phase != "added" {
		t.Errorf("state after the new attach = %+v, want one attachment in phase added", got)
	}
	address := recordedAddress(t, env, sandboxID, "net1")
	if got := networkLeases(t, env, network.Name); !slices.Equal(got, []string{address}) {
		t.Errorf("leases after the new attach = %v, want only the recorded [%s]; the interrupted one was %v", got, address, halfLeases)
	}
	if got := bridgePorts(t, network.Bridge); len(got) != 1 {
		t.Errorf("bridge ports after the new attach = %v, want one veth", got)
	}
	if got := podNetnsAddresses(t, env, sandboxID)["net1"]; got.Addr().String() != address {
		t.Errorf("pod net1 = %v after the new attach, want the recorded %s", got, address)
	}

	removePod(t, env, sandboxID)
	requireNoLeftovers(t, env, 5*time.Second, "after the pod was removed", network)
}

// TestMissedAttachIsRepaired checks the two repairs of a pod that started
// while nri-cni was not connected: Synchronize attaches a running pod, and a
// pod whose network was unavailable then gets it in its first
// CreateContainer, before the container starts. A host network pod gets no
// CNI call.
func TestMissedAttachIsRepaired(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	late := framework.Network{Name: "late", Bridge: env.Bridge("late"), Subnet: env.Subnet(2)}
	env.WriteNetwork(network)

	early := env.MustRunPod(framework.PodConfig{})
	waiting := env.MustRunPod(framework.PodConfig{Annotations: map[string]string{networksAnnotation: late.Name}})
	env.MustRunPod(framework.PodConfig{HostNetwork: true})
	if got := networkLeases(t, env, network.Name); len(got) != 0 {
		t.Fatalf("leases before nri-cni runs = %v, want none", got)
	}

	nriCNI := env.StartNRICNI(env.NRICNIConfig())
	synchronized := waitForEntry(t, nriCNI, "synchronized", nil, 5*time.Second)
	if got := synchronized.String("unattached"); got != "2" {
		t.Errorf("synchronize found %s unattached pods, want 2: the host network pod needs nothing", got)
	}

	waitForLog(t, nriCNI, "attached network", early.ID, 10*time.Second)
	earlyAddress := recordedAddress(t, env, early.ID, "net1")
	if got := networkLeases(t, env, network.Name); !slices.Equal(got, []string{earlyAddress}) {
		t.Errorf("leases after the repair = %v, want the early pod's [%s]", got, earlyAddress)
	}
	if got := podNetnsAddresses(t, env, early.ID)["net1"]; got.Addr().String() != earlyAddress {
		t.Errorf("early pod net1 = %v after the repair, want %s", got, earlyAddress)
	}

	failed := waitForLog(t, nriCNI, "failed to attach networks of running pod that missed its attach", waiting.ID, 10*time.Second)
	if got := failed.String("error"); !strings.Contains(got, late.Name) {
		t.Errorf("failed repair error %q does not name network %s", got, late.Name)
	}
	if _, err := os.Stat(stateFilePath(env, waiting.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file of the pod whose network is missing: stat error %v, want none", err)
	}

	env.WriteNetwork(late)
	waitForEntry(t, nriCNI, "loaded networks", func(entry framework.LogEntry) bool {
		return strings.Contains(entry.String("networks"), late.Name)
	}, 5*time.Second)
	container := env.MustRunContainer(waiting, framework.ContainerConfig{Command: sleepCommand})
	attached := waitForLog(t, nriCNI, "attached network", waiting.ID, time.Second)
	if got := attached.String("containerID"); got != container {
		t.Errorf("attach of the waiting pod logged containerID %q, want %s: CreateContainer must attach", got, container)
	}
	lateAddress := recordedAddress(t, env, waiting.ID, "net1")
	if got := containerAddresses(t, env, container)["net1"]; got.Addr().String() != lateAddress || !late.Subnet.Contains(got.Addr()) {
		t.Errorf("container net1 = %v, want the recorded %s in %s", got, lateAddress, late.Subnet)
	}
	if got := stateFiles(t, env); len(got) != 2 {
		t.Errorf("state files = %v, want the two pod-network pods' ones", got)
	}

	output, err := env.Crictl("pods", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	for _, podID := range strings.Fields(output) {
		removePod(t, env, podID)
	}
	requireNoLeftovers(t, env, 5*time.Second, "after every pod was removed", network, late)
}

// TestCorruptStateIsMovedAside checks that state files cut short or
// overwritten while nri-cni was down are reported with their paths and moved
// aside, and that CNI GC then frees the cache entries and leases that no
// state owns any more. The other records keep working.
func TestCorruptStateIsMovedAside(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	recordFile := env.RecordFile("calls")
	network.Record = &framework.RecordPlugin{File: recordFile}
	network.CNIVersion = "1.1.0"
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	nriCNI := env.StartNRICNI(config)

	truncated := env.MustRunPod(framework.PodConfig{})
	garbled := env.MustRunPod(framework.PodConfig{})
	kept := env.MustRunPod(framework.PodConfig{})
	keptAddress := recordedAddress(t, env, kept.ID, "net1")
	env.KillNRICNI(nriCNI)

	content, err := os.ReadFile(stateFilePath(env, truncated.ID))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFilePath(env, truncated.ID), content[:len(content)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stateFilePath(env, garbled.ID), []byte("not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	removePod(t, env, truncated.ID)
	removePod(t, env, garbled.ID)

	restarted := env.StartNRICNI(config)
	reported := waitForEntry(t, restarted, "failed to read some state records", nil, 5*time.Second)
	for _, id := range []string{truncated.ID, garbled.ID} {
		path := stateFilePath(env, id)
		if message := reported.String("error"); !containsAll(message, path, path+".corrupt") {
			t.Errorf("state error %q does not name %s and where it was moved", message, path)
		}
		if _, err := os.Stat(path + ".corrupt"); err != nil {
			t.Errorf("corrupt state file was not moved aside: %v", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("corrupt state file %s is still in place: stat error %v", path, err)
		}
	}

	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for {
		leases := networkLeases(t, env, network.Name)
		entries := cacheEntries(t, env)
		if slices.Equal(leases, []string{keptAddress}) && len(entries) == 1 {
			t.Logf("garbage collection freed the unowned leases %s after nri-cni started", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("15s after nri-cni started: leases %v and cache entries %v, want only the kept pod's lease [%s] and entry", leases, entries, keptAddress)
		}
		time.Sleep(100 * time.Millisecond)
	}
	calls, err := framework.RecordedCalls(recordFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{truncated.ID, garbled.ID} {
		if !hasCall(calls, "DEL", id) {
			t.Errorf("CNI calls = %+v, want a DEL of unowned sandbox %s", calls, id)
		}
	}
	if !hasCall(calls, "GC", "") {
		t.Errorf("CNI calls = %+v, want a GC of the CNI 1.1.0 network", calls)
	}
	if got := podNetnsAddresses(t, env, kept.ID)["net1"]; got.Addr().String() != keptAddress {
		t.Errorf("kept pod net1 = %v after the restart, want %s", got, keptAddress)
	}

	removePod(t, env, kept.ID)
	waitForLog(t, restarted, "detached network", kept.ID, 5*time.Second)
	requireNoLeftovers(t, env, 5*time.Second, "after every pod was removed", network)
}

// waitForAddCall waits until the record plugin has recorded an ADD and
// returns its sandbox ID.
func waitForAddCall(t *testing.T, recordFile string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		calls, err := framework.RecordedCalls(recordFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range calls {
			if call.Command == "ADD" {
				return call.ContainerID
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("record plugin saw no ADD within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cniPluginPIDs returns the CNI plugin processes that run for a sandbox,
// found by the CNI_CONTAINERID in their environment.
func cniPluginPIDs(t *testing.T, sandboxID string) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("CNI_CONTAINERID=" + sandboxID + "\x00")
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		environ, err := os.ReadFile("/proc/" + entry.Name() + "/environ")
		if err == nil && bytes.Contains(environ, marker) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killCNIPlugins kills the CNI plugin processes that still run for a sandbox.
// A plugin whose nri-cni was killed keeps running on its own.
func killCNIPlugins(t *testing.T, env *framework.Env, sandboxID string) {
	t.Helper()
	for _, pid := range cniPluginPIDs(t, sandboxID) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			t.Errorf("failed to kill CNI plugin PID %d of sandbox %s: %v", pid, sandboxID, err)
			continue
		}
		t.Logf("killed CNI plugin PID %d of sandbox %s", pid, sandboxID)
	}
}
