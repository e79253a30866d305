package e2e

import (
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// netnsCheckSlack is how much later than its 5s check interval nri-cni may
// notice a recorded pod whose netns is gone, on a loaded machine.
const netnsCheckSlack = 5 * time.Second

// retryingMessage is what nri-cni logs before each reconnect attempt.
const retryingMessage = "not connected to NRI; retrying"

// TestContainerdRestartReconnects checks that nri-cni reconnects by itself
// with growing delays when containerd restarts, and serves new pods without
// a restart of its own. It still frees the leases of pods from before the
// restart, for which containerd sends no StopPodSandbox or RemovePodSandbox:
// at the delete event of the pause container, and without containerd's
// events once the netns is gone.
func TestContainerdRestartReconnects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// events is whether nri-cni follows containerd's container events.
		events bool
		// goneMessage is what nri-cni logs when it finds the old pod gone.
		goneMessage string
	}{
		{name: "events", events: true, goneMessage: "pause container of recorded pod is deleted; detaching"},
		{name: "netns-check", goneMessage: "network namespace of recorded pod is gone; detaching"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testContainerdRestart(t, tc.events, tc.goneMessage)
		})
	}
}

func testContainerdRestart(t *testing.T, events bool, goneMessage string) {
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	if !events {
		config.ContainerdSocket = ""
	}
	nriCNI := env.StartNRICNI(config)
	pid := nriCNI.PID()

	old := env.MustRunPod(framework.PodConfig{})
	env.MustRunContainer(old, framework.ContainerConfig{Command: sleepCommand})
	if got := networkLeases(t, env, network.Name); len(got) != 1 {
		t.Fatalf("leases of the pod before the restart = %v, want one", got)
	}

	// With containerd down, every attempt fails at once, so the delays of
	// three attempts show the backoff.
	env.StopContainerd()
	retries := waitForEntries(t, nriCNI, retryingMessage, 3, 10*time.Second)
	checkBackoff(t, retries[:3], 1)
	start := time.Now()
	env.StartContainerd()
	connected := waitForEntries(t, nriCNI, "connected", 2, 10*time.Second)
	t.Logf("nri-cni reconnected %s after containerd was ready", time.Since(start).Round(time.Millisecond))
	if nriCNI.Exited() || nriCNI.PID() != pid {
		t.Fatalf("nri-cni exited or changed PID after the containerd restart, want PID %d to keep serving", pid)
	}
	if got := connected[1].String("sandboxes"); got != "1" {
		t.Errorf("reconnect logged %s recorded sandboxes, want the 1 pod from before", got)
	}
	synchronized := waitForEntries(t, nriCNI, "synchronized", 2, 5*time.Second)
	if got := synchronized[1].String("pods"); got != "1" {
		t.Errorf("synchronize after the restart listed %s pods, want the 1 running pod", got)
	}
	if got := synchronized[1].String("gone"); got != "0" {
		t.Errorf("synchronize after the restart found %s gone pods, want 0", got)
	}

	fresh := env.MustRunPod(framework.PodConfig{})
	attached := waitForLog(t, nriCNI, "attached network", fresh.ID, 5*time.Second)
	if got := attached.String("ifName"); got != "net1" {
		t.Errorf("new pod attached as %q, want net1", got)
	}
	if got := networkLeases(t, env, network.Name); len(got) != 2 {
		t.Errorf("leases with the old and the new pod = %v, want two", got)
	}
	if got := podNetnsAddresses(t, env, fresh.ID); !network.Subnet.Contains(got["net1"].Addr()) {
		t.Errorf("new pod net1 address = %v, want one in %s; addresses %v", got["net1"], network.Subnet, got)
	}

	// containerd delivers no NRI event for the old pod now. nri-cni detaches
	// it when it receives the delete event of its pause container, or when
	// it finds its netns gone.
	oldAddress := recordedAddress(t, env, old.ID, "net1")
	removePod(t, env, old.ID)
	removed := time.Now()
	waitForLog(t, nriCNI, goneMessage, old.ID, 5*time.Second+netnsCheckSlack)
	waitForLog(t, nriCNI, "detached network", old.ID, 5*time.Second)
	t.Logf("old pod detached %s after crictl rmp", time.Since(removed).Round(time.Millisecond))
	for _, lease := range networkLeases(t, env, network.Name) {
		if lease == oldAddress {
			t.Errorf("lease %s of the old pod is still held after its detach", lease)
		}
	}

	// The new pod's events are delivered again.
	removePod(t, env, fresh.ID)
	if got := entriesFor(nriCNI, "detached network", fresh.ID); len(got) != 1 {
		t.Errorf("detach log entries of the new pod after crictl rmp = %d, want 1 from StopPodSandbox", len(got))
	}
	requireNoLeftovers(t, env, 5*time.Second, "after both pods were removed", network)
}

// nri-cni's reconnect backoff, as cmd/nri-cni/serve.go sets it: the delay
// doubles from minBackoff per attempt up to maxBackoff, with jitter over
// [d/2, d), and starts from minBackoff again after a connection that lasted
// stablePeriod.
const (
	minBackoff   = 500 * time.Millisecond
	maxBackoff   = 5 * time.Second
	stablePeriod = 30 * time.Second
)

// backoffDelay returns the upper bound of the delay before attempt, counted
// from 1 since the last reset.
func backoffDelay(attempt int) time.Duration {
	delay := minBackoff
	for i := 1; i < attempt && delay < maxBackoff; i++ {
		delay *= 2
	}
	return min(delay, maxBackoff)
}

// checkBackoff checks that entries are consecutive reconnect attempts from
// firstAttempt on, that each delay is in [d/2, d) of backoffDelay, and that
// each attempt waited the delay of the one before.
func checkBackoff(t *testing.T, entries []framework.LogEntry, firstAttempt int) {
	t.Helper()
	var delays []string
	for _, entry := range entries {
		delays = append(delays, "attempt "+entry.String("attempt")+" waits "+entry.String("delay"))
	}
	t.Logf("reconnect backoff: %s", strings.Join(delays, ", "))
	for i, entry := range entries {
		attempt := firstAttempt + i
		if got := entry.String("attempt"); got != strconv.Itoa(attempt) {
			t.Errorf("retry %d logged attempt %s, want %d", i+1, got, attempt)
		}
		want := backoffDelay(attempt)
		if delay := entryDuration(t, entry, "delay"); delay < want/2 || delay >= want {
			t.Errorf("attempt %d waits %s, want a delay in [%s, %s)", attempt, delay, want/2, want)
		}
		if entry.String("socket") == "" || entry.String("error") == "" {
			t.Errorf("retry log entry %v has no socket or error", entry)
		}
		if i > 0 {
			previous := entries[i-1]
			// Log times have millisecond precision.
			if gap := entryTime(t, entry).Sub(entryTime(t, previous)); gap < entryDuration(t, previous, "delay")-time.Millisecond {
				t.Errorf("attempt %d came %s after attempt %s, before its delay %s", attempt, gap, previous.String("attempt"), previous.String("delay"))
			}
		}
	}
}

// TestReconnectBackoffResets checks that the reconnect delay keeps growing
// over short connections and starts from its minimum again once a
// connection has lasted the stable period. The test waits out that period,
// so it takes more than 30s.
func TestReconnectBackoffResets(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())

	env.StopContainerd()
	waitForEntries(t, nriCNI, retryingMessage, 2, 10*time.Second)
	env.StartContainerd()
	waitForEntries(t, nriCNI, "connected", 2, 10*time.Second)
	before := len(framework.LogEntries(nriCNI.Log(), retryingMessage))

	// The connection lasted less than the stable period: the next attempt
	// goes on from the last delay.
	env.RestartContainerd()
	retries := waitForEntries(t, nriCNI, retryingMessage, before+1, 10*time.Second)
	checkBackoff(t, retries[before:before+1], before+1)
	connected := waitForEntries(t, nriCNI, "connected", 3, 15*time.Second)
	// A containerd that starts slowly costs more than one attempt.
	settled := len(framework.LogEntries(nriCNI.Log(), retryingMessage))

	stableUntil := entryTime(t, connected[2]).Add(stablePeriod + time.Second)
	t.Logf("waiting %s for the connection to become stable", time.Until(stableUntil).Round(time.Second))
	time.Sleep(time.Until(stableUntil))
	if got := len(framework.LogEntries(nriCNI.Log(), retryingMessage)); got != settled {
		t.Fatalf("nri-cni logged %d reconnect attempts while containerd ran, want still %d", got, settled)
	}

	env.StopContainerd()
	retries = waitForEntries(t, nriCNI, retryingMessage, settled+1, 10*time.Second)
	checkBackoff(t, retries[settled:settled+1], 1)
	env.StartContainerd()
	waitForEntries(t, nriCNI, "connected", 4, 10*time.Second)

	pod := env.MustRunPod(framework.PodConfig{})
	waitForLog(t, nriCNI, "attached network", pod.ID, 5*time.Second)
	removePod(t, env, pod.ID)
	requireNoLeftovers(t, env, 5*time.Second, "after the pod was removed", network)
}

// TestSIGTERMStopsCleanly checks that SIGTERM stops nri-cni at once with exit
// code 0 and leaves running pods attached and recorded, so that a new
// nri-cni tears them down.
func TestSIGTERMStopsCleanly(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	nriCNI := env.StartNRICNI(config)

	pod := env.MustRunPod(framework.PodConfig{})
	address := recordedAddress(t, env, pod.ID, "net1")

	start := time.Now()
	if err := nriCNI.Stop(5 * time.Second); err != nil {
		t.Fatalf("SIGTERM did not stop nri-cni cleanly: %v", err)
	}
	t.Logf("nri-cni stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	if code, err := nriCNI.ExitCode(); err != nil || code != 0 {
		t.Errorf("nri-cni exit code after SIGTERM = %d (%v), want 0", code, err)
	}
	if got := framework.LogEntries(nriCNI.Log(), "nri-cni stopped"); len(got) != 1 {
		t.Errorf("nri-cni logged \"nri-cni stopped\" %d times, want once; log:\n%s", len(got), nriCNI.Log())
	}
	if got := framework.LogEntries(nriCNI.Log(), "detached network"); len(got) != 0 {
		t.Errorf("nri-cni detached %d networks at SIGTERM, want none: the pod still runs", len(got))
	}
	if got := stateFiles(t, env); len(got) != 1 {
		t.Errorf("state files after SIGTERM = %v, want the running pod's one", got)
	}
	if err := hostPing(netip.MustParseAddr(address)); err != nil {
		t.Errorf("pod lost net1 when nri-cni stopped: %v", err)
	}

	restarted := env.StartNRICNI(config)
	connected := waitForEntry(t, restarted, "connected", nil, 5*time.Second)
	if got := connected.String("sandboxes"); got != "1" {
		t.Errorf("new nri-cni connected with %s recorded sandboxes, want 1", got)
	}
	removePod(t, env, pod.ID)
	waitForLog(t, restarted, "detached network", pod.ID, 5*time.Second)
	requireNoLeftovers(t, env, 5*time.Second, "after the pod was removed", network)
}

// TestKilledPluginFreesRemovedPods checks that pods stopped and removed while
// nri-cni was killed with SIGKILL are detached from their stored config once
// it starts again, within 15s, while a pod that still runs keeps its
// attachment. The network file is gone meanwhile, so only the stored config
// can free the leases.
func TestKilledPluginFreesRemovedPods(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	networkFile := env.WriteNetwork(network)
	config := env.NRICNIConfig()
	nriCNI := env.StartNRICNI(config)

	var removed []*framework.Pod
	for range 3 {
		removed = append(removed, env.MustRunPod(framework.PodConfig{}))
	}
	kept := env.MustRunPod(framework.PodConfig{})
	container := env.MustRunContainer(kept, framework.ContainerConfig{Command: sleepCommand})
	keptAddress := recordedAddress(t, env, kept.ID, "net1")

	env.KillNRICNI(nriCNI)
	if err := os.Remove(networkFile); err != nil {
		t.Fatal(err)
	}
	for _, pod := range removed {
		removePod(t, env, pod.ID)
	}
	if got := networkLeases(t, env, network.Name); len(got) != 4 {
		t.Fatalf("leases while nri-cni is down = %v, want all 4: nothing else frees them", got)
	}

	restarted := env.StartNRICNI(config)
	start := time.Now()
	deadline := start.Add(15 * time.Second)
	for {
		leases := networkLeases(t, env, network.Name)
		if slices.Equal(leases, []string{keptAddress}) {
			t.Logf("leases of the removed pods freed %s after nri-cni started", time.Since(start).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("leases 15s after nri-cni started = %v, want only the running pod's [%s]; log:\n%s", leases, keptAddress, restarted.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	synchronized := waitForEntry(t, restarted, "synchronized", nil, time.Second)
	if got := synchronized.String("gone"); got != "3" {
		t.Errorf("synchronize found %s gone pods, want 3", got)
	}
	for _, pod := range removed {
		waitForLog(t, restarted, "detached network", pod.ID, 5*time.Second)
	}
	if got := stateFiles(t, env); !slices.Equal(got, []string{stateFilePath(env, kept.ID)}) {
		t.Errorf("state files after the repair = %v, want only the running pod's", got)
	}
	if got := cacheEntries(t, env); len(got) != 1 {
		t.Errorf("libcni cache entries after the repair = %v, want only the running pod's", got)
	}
	if got := containerAddresses(t, env, container)["net1"]; got.Addr().String() != keptAddress {
		t.Errorf("running pod net1 = %v after the restart, want its recorded %s", got, keptAddress)
	}
	// The counters that the final check relies on see the running pod.
	leftovers, err := env.Leftovers(network)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := leftovers.Counts(), "leases=1 veths=1 netnsMounts=1 stateFiles=1 cacheEntries=1"; got != want {
		t.Errorf("leftovers of the running pod = %s, want %s", got, want)
	}

	removePod(t, env, kept.ID)
	waitForLog(t, restarted, "detached network", kept.ID, 5*time.Second)
	requireNoLeftovers(t, env, 5*time.Second, "after every pod was removed", network)
}

// TestSimulatedRebootFreesStaleLeases checks a node reboot: containerd, its
// shims, the pods and nri-cni die, the netns mounts are gone, and the state
// dir and the leases stay. After start, nri-cni frees the stale leases, and
// new pods get addresses from a range that the old pods filled.
func TestSimulatedRebootFreesStaleLeases(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	first := framework.Gateway(network.Subnet).Next()
	network.RangeStart, network.RangeEnd = first, first.Next()
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	env.StartNRICNI(config)

	var old []*framework.Pod
	for range 2 {
		pod := env.MustRunPod(framework.PodConfig{})
		env.MustRunContainer(pod, framework.ContainerConfig{Command: sleepCommand})
		old = append(old, pod)
	}
	if _, err := env.RunPod(framework.PodConfig{}); err == nil {
		t.Fatal("a third pod got an address from a range of two, want the range full")
	}
	removeFailedSandboxes(t, env, old[0].ID, old[1].ID)

	env.SimulateReboot()
	if got := networkLeases(t, env, network.Name); len(got) != 2 {
		t.Fatalf("leases after the reboot = %v, want the two stale ones kept", got)
	}
	if got := netnsMounts(t, env); len(got) != 0 {
		t.Fatalf("netns mounts after the reboot = %v, want none", got)
	}
	env.StartContainerd()
	nriCNI := env.StartNRICNI(config)

	start := time.Now()
	for _, pod := range old {
		waitForLog(t, nriCNI, "detached network", pod.ID, 5*time.Second+netnsCheckSlack)
	}
	t.Logf("stale attachments detached %s after nri-cni started", time.Since(start).Round(time.Millisecond))
	if got := networkLeases(t, env, network.Name); len(got) != 0 {
		t.Errorf("leases after the stale attachments were detached = %v, want none", got)
	}

	for range 2 {
		pod := env.MustRunPod(framework.PodConfig{})
		address := recordedAddress(t, env, pod.ID, "net1")
		if got := podNetnsAddresses(t, env, pod.ID)["net1"]; got.Addr().String() != address {
			t.Errorf("new pod net1 = %v, want the recorded %s", got, address)
		}
	}

	// The kubelet stops and removes the pods that did not survive the reboot.
	output, err := env.Crictl("pods", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	for _, podID := range strings.Fields(output) {
		removePod(t, env, podID)
	}
	requireNoLeftovers(t, env, 5*time.Second, "after every pod was removed", network)
}
