package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// TestFailingDelIsRetried checks that a DEL that fails because its plugin
// binary is gone keeps the state, lease and cache entry, is retried in the
// background with a doubling delay, and cleans everything up once the
// binary is back.
func TestFailingDelIsRetried(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	binDir := env.CopyCNIBin()
	config := env.NRICNIConfig()
	config.CNIBinDirs = []string{binDir, env.Paths.TestCNIBin}
	nriCNI := env.StartNRICNI(config)

	pod := env.MustRunPod(framework.PodConfig{})
	address := recordedAddress(t, env, pod.ID, "net1")

	env.RemoveCNIPlugin(binDir, "bridge")
	// containerd only logs the errors of StopPodSandbox and
	// RemovePodSandbox, so both calls succeed.
	removePod(t, env, pod.ID)
	waitForLog(t, nriCNI, "failed to detach pod networks; RemovePodSandbox tries again", pod.ID, time.Second)
	waitForLog(t, nriCNI, "failed to detach pod networks; retrying in the background", pod.ID, time.Second)

	const retryMessage = "failed to detach networks of gone pod; retrying"
	var retries []framework.LogEntry
	deadline := time.Now().Add(10 * time.Second)
	for len(retries) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("nri-cni logged %d background retries of the DEL within 10s, want 3; log:\n%s", len(retries), nriCNI.Log())
		}
		time.Sleep(50 * time.Millisecond)
		retries = entriesFor(nriCNI, retryMessage, pod.ID)
	}
	want := time.Second
	for i, entry := range retries {
		if got := entryDuration(t, entry, "delay"); got != want {
			t.Errorf("background retry %d waits %s, want %s", i+1, got, want)
		}
		if message := entry.String("error"); !strings.Contains(message, "bridge") {
			t.Errorf("background retry %d error %q does not name the missing plugin bridge", i+1, message)
		}
		if i > 0 {
			// Log times have millisecond precision.
			gap := entryTime(t, entry).Sub(entryTime(t, retries[i-1]))
			if previous := entryDuration(t, retries[i-1], "delay"); gap < previous-time.Millisecond {
				t.Errorf("background retry %d came %s after the one before, before its delay %s", i+1, gap, previous)
			}
		}
		want *= 2
	}
	if got := stateFiles(t, env); !slices.Equal(got, []string{stateFilePath(env, pod.ID)}) {
		t.Errorf("state files while the DEL fails = %v, want the pod's record kept", got)
	}
	if got := networkLeases(t, env, network.Name); !slices.Equal(got, []string{address}) {
		t.Errorf("leases while the DEL fails = %v, want the pod's [%s] kept", got, address)
	}
	if got := cacheEntries(t, env); len(got) != 1 {
		t.Errorf("libcni cache entries while the DEL fails = %v, want the pod's one kept", got)
	}

	env.RestoreCNIPlugin(binDir, "bridge")
	restored := time.Now()
	// The next retry comes after the last logged delay, 4s.
	waitForLog(t, nriCNI, "detached network", pod.ID, want/2+5*time.Second)
	t.Logf("DEL succeeded %s after the plugin was restored", time.Since(restored).Round(time.Millisecond))
	requireNoLeftovers(t, env, 5*time.Second, "after the DEL succeeded", network)
}

// TestChangedConfigDeletesWithAddConfig checks that a DEL after the network's
// file changed uses the config of the ADD. The new file moves host-local's
// data dir and subnet, so a DEL from the new file could not free the old
// lease.
func TestChangedConfigDeletesWithAddConfig(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	oldCalls := env.RecordFile("old")
	newCalls := env.RecordFile("new")
	network := blueNetwork(env)
	network.Record = &framework.RecordPlugin{File: oldCalls}
	env.WriteNetwork(network)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())
	reloads := newReloadWatcher(t, nriCNI)

	old := env.MustRunPod(framework.PodConfig{})
	oldAddress := recordedAddress(t, env, old.ID, "net1")

	// A bridge with isGateway takes one subnet, so the new subnet comes with
	// a bridge of its own.
	changed := network
	changed.Bridge = env.Bridge("blue2")
	changed.Subnet = env.Subnet(2)
	changed.Record = &framework.RecordPlugin{File: newCalls}
	newIPAMDir := filepath.Join(env.Dir, "ipam-new")
	content, err := changed.Conflist(newIPAMDir)
	if err != nil {
		t.Fatal(err)
	}
	reloads.mark()
	env.WriteNetworkFile(network.Name+".conflist", content)
	reloads.wait([]string{network.Name}, "after the file changed")

	fresh := env.MustRunPod(framework.PodConfig{})
	freshAddress := netip.MustParseAddr(recordedAddress(t, env, fresh.ID, "net1"))
	if !changed.Subnet.Contains(freshAddress) {
		t.Errorf("pod after the change got %s, want an address in the new subnet %s", freshAddress, changed.Subnet)
	}
	if got := networkLeases(t, env, network.Name); !slices.Equal(got, []string{oldAddress}) {
		t.Errorf("leases in the old data dir = %v, want only the old pod's [%s]", got, oldAddress)
	}

	removePod(t, env, old.ID)
	checkDelRecorded(t, oldCalls, newCalls, old.ID)
	if got := networkLeases(t, env, network.Name); len(got) != 0 {
		t.Errorf("leases in the old data dir after the old pod was removed = %v, want none", got)
	}
	if got := readDirNames(t, filepath.Join(newIPAMDir, network.Name)); !slices.Contains(got, freshAddress.String()) {
		t.Errorf("new data dir = %v, want the new pod's lease %s still held", got, freshAddress)
	}

	removePod(t, env, fresh.ID)
	checkDelRecorded(t, newCalls, oldCalls, fresh.ID)
	for _, name := range readDirNames(t, filepath.Join(newIPAMDir, network.Name)) {
		if name != "lock" && !strings.HasPrefix(name, "last_reserved_ip.") {
			t.Errorf("lease %s left in the new data dir after the new pod was removed", name)
		}
	}
	requireNoLeftovers(t, env, 5*time.Second, "after both pods were removed", network, changed)
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	names := make([]string, 0, len(entries))
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	return names
}

// TestTwentyPodsAtOnce checks that twenty pods started at once, as a burst
// of the kubelet does, get distinct addresses from a range of exactly twenty,
// in both attach modes, and that nothing is left after their removal.
func TestTwentyPodsAtOnce(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testPodBurst(t, mode, 20)
		})
	}
}

func testPodBurst(t *testing.T, mode string, count int) {
	env := framework.New(t)
	network := blueNetwork(env)
	first := framework.Gateway(network.Subnet).Next()
	network.RangeStart = first
	network.RangeEnd = hostAddress(network.Subnet, first.As4()[3]+byte(count-1))
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	config.AttachMode = mode
	nriCNI := env.StartNRICNI(config)

	pods := make([]*framework.Pod, count)
	errs := make([]error, count)
	var wait sync.WaitGroup
	start := time.Now()
	for i := range pods {
		wait.Add(1)
		go func() {
			defer wait.Done()
			pods[i], errs[i] = env.RunPod(framework.PodConfig{Name: fmt.Sprintf("burst-%d", i)})
		}()
	}
	wait.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pod %d of the burst failed: %v", i, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, pod := range pods {
		waitForLog(t, nriCNI, "attached network", pod.ID, 30*time.Second)
	}
	t.Logf("%d pods started and attached in %s (%s mode)", count, time.Since(start).Round(time.Millisecond), mode)

	seen := map[string]string{}
	for _, pod := range pods {
		address := recordedAddress(t, env, pod.ID, "net1")
		if other, ok := seen[address]; ok {
			t.Errorf("pods %s and %s both got %s", other, pod.ID, address)
		}
		seen[address] = pod.ID
		if got := podNetnsAddresses(t, env, pod.ID)["net1"]; got.Addr().String() != address {
			t.Errorf("pod %s net1 = %v, want its recorded %s", pod.ID, got, address)
		}
	}
	if got := networkLeases(t, env, network.Name); len(got) != count {
		t.Errorf("leases of the burst = %d, want %d", len(got), count)
	}

	start = time.Now()
	for _, pod := range pods {
		wait.Add(1)
		go func() {
			defer wait.Done()
			if err := env.StopPod(pod.ID); err != nil {
				t.Errorf("failed to stop pod: %v", err)
			}
			if err := env.RemovePod(pod.ID); err != nil {
				t.Errorf("failed to remove pod: %v", err)
			}
		}()
	}
	wait.Wait()
	t.Logf("%d pods removed in %s", count, time.Since(start).Round(time.Millisecond))
	requireNoLeftovers(t, env, 5*time.Second, "after the burst was removed", network)
}
