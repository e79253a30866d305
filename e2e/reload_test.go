package e2e

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// reloadTimeout bounds the time from a change in the conf dir to the reload:
// nri-cni waits 250ms of quiet, and a loaded machine adds to it.
const reloadTimeout = 5 * time.Second

// TestReloadFollowsConfDir checks that nri-cni reloads its networks when
// files in the conf dir are created, replaced by rename or removed, and when
// the folder itself is removed and created again. New pods get the new set,
// attachments made before are torn down with the config they were added
// with, and a bad file leaves the valid networks working.
func TestReloadFollowsConfDir(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	blueV1 := env.RecordFile("blue-v1")
	blueV2 := env.RecordFile("blue-v2")
	blue := blueNetwork(env)
	blue.Record = &framework.RecordPlugin{File: blueV1}
	green := framework.Network{Name: "green", Bridge: env.Bridge("green"), Subnet: env.Subnet(2)}
	red := framework.Network{Name: "red", Bridge: env.Bridge("red"), Subnet: env.Subnet(3)}
	env.WriteNetwork(blue)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())
	reloads := newReloadWatcher(t, nriCNI)

	podA := env.MustRunPod(framework.PodConfig{Name: "a"})
	checkPodNetworks(t, env, podA.ID, ifNames{"net1": blue})

	// Two files created at once are read in one reload.
	reloads.mark()
	env.WriteNetwork(green)
	env.WriteNetwork(red)
	reloads.wait([]string{"blue", "green", "red"}, "after green and red were created")
	time.Sleep(time.Second)
	if got := reloads.since(); got != 1 {
		t.Errorf("two files created at once caused %d reloads, want 1 after the debounce", got)
	}
	podB := env.MustRunPod(framework.PodConfig{Name: "b"})
	checkPodNetworks(t, env, podB.ID, ifNames{"net1": blue, "net2": green, "net3": red})

	// An editor replaces a file by writing a temporary file and renaming it
	// over the old one. The new blue hands out addresses from .100 on and
	// records its calls in another file.
	reloads.mark()
	newBlue := blue
	newBlue.Record = &framework.RecordPlugin{File: blueV2}
	newBlue.RangeStart = hostAddress(blue.Subnet, 100)
	content := mustConflist(t, env, newBlue)
	temporary := env.WriteNetworkFile("blue.conflist.tmp", content)
	if err := os.Rename(temporary, filepath.Join(env.NetworkDir, "blue.conflist")); err != nil {
		t.Fatal(err)
	}
	reloads.wait([]string{"blue", "green", "red"}, "after blue was replaced by rename")
	podC := env.MustRunPod(framework.PodConfig{Name: "c"})
	addresses := checkPodNetworks(t, env, podC.ID, ifNames{"net1": blue, "net2": green, "net3": red})
	if got := addresses["net1"].Addr(); got.Less(newBlue.RangeStart) {
		t.Errorf("pod created after the rename got blue address %s, want one from the new range start %s", got, newBlue.RangeStart)
	}

	// Pod a was added with the old blue: its DEL goes to the old chain, and
	// frees its lease.
	aAddress := recordedAddress(t, env, podA.ID, "net1")
	removePod(t, env, podA.ID)
	checkDelRecorded(t, blueV1, blueV2, podA.ID)
	if got := networkLeases(t, env, blue.Name); slices.Contains(got, aAddress) {
		t.Errorf("blue leases after pod a was removed = %v, still with its %s", got, aAddress)
	}

	reloads.mark()
	if err := os.Remove(filepath.Join(env.NetworkDir, "red.conflist")); err != nil {
		t.Fatal(err)
	}
	reloads.wait([]string{"blue", "green"}, "after red was removed")
	podD := env.MustRunPod(framework.PodConfig{Name: "d"})
	checkPodNetworks(t, env, podD.ID, ifNames{"net1": blue, "net2": green})
	// Pods b and c still hold red, whose file is gone: the stored config
	// frees it.
	bRedAddress := recordedAddress(t, env, podB.ID, "net3")
	removePod(t, env, podB.ID)
	if got := networkLeases(t, env, red.Name); slices.Contains(got, bRedAddress) {
		t.Errorf("red leases after pod b was removed = %v, still with its %s", got, bRedAddress)
	}
	if got := bridgePorts(t, red.Bridge); len(got) != 1 {
		t.Errorf("red bridge ports after pod b was removed = %v, want only pod c's veth", got)
	}

	reloads.mark()
	if err := os.RemoveAll(env.NetworkDir); err != nil {
		t.Fatal(err)
	}
	reloads.wait([]string{}, "after the conf dir was removed")
	podE := env.MustRunPod(framework.PodConfig{Name: "e"})
	checkPodNetworks(t, env, podE.ID, ifNames{})
	if _, err := os.Stat(stateFilePath(env, podE.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file of a pod without networks: stat error %v, want none", err)
	}

	reloads.mark()
	if err := os.Mkdir(env.NetworkDir, 0o755); err != nil {
		t.Fatal(err)
	}
	env.WriteNetworkFile("blue.conflist", content)
	env.WriteNetwork(green)
	reloads.wait([]string{"blue", "green"}, "after the conf dir was created again")
	podF := env.MustRunPod(framework.PodConfig{Name: "f"})
	checkPodNetworks(t, env, podF.ID, ifNames{"net1": blue, "net2": green})

	// Add a file that is not JSON, and break blue with a plugin that does not
	// exist. Green keeps working under net2, the position of its file, and
	// a pod that requests blue fails with the reason.
	reloads.mark()
	badPath := env.WriteNetworkFile("zz-bad.conflist", []byte("{not json"))
	brokenBlue := strings.Replace(string(content), `"type": "bridge"`, `"type": "no-such-plugin"`, 1)
	bluePath := env.WriteNetworkFile("blue.conflist", []byte(brokenBlue))
	loaded := reloads.wait([]string{"green"}, "after bad files were written")
	if got := loaded.String("invalid"); got != "2" {
		t.Errorf("reload counted %s invalid files, want 2", got)
	}
	for _, path := range []string{badPath, bluePath} {
		waitForEntry(t, nriCNI, "network file is unavailable", func(entry framework.LogEntry) bool {
			return entry.String("path") == path
		}, time.Second)
	}
	podG := env.MustRunPod(framework.PodConfig{Name: "g"})
	checkPodNetworks(t, env, podG.ID, ifNames{"net2": green})
	_, err := env.RunPod(framework.PodConfig{Name: "h", Annotations: map[string]string{networksAnnotation: blue.Name}})
	var crictlErr *framework.CrictlError
	if !errors.As(err, &crictlErr) {
		t.Fatalf("crictl runp of a pod on the broken blue = %v, want a crictl failure", err)
	}
	if !containsAll(crictlErr.Stderr, blue.Name, "no-such-plugin") {
		t.Errorf("runp error does not say why network %s is unavailable: %s", blue.Name, crictlErr.Stderr)
	}
	removeFailedSandboxes(t, env, podC.ID, podD.ID, podE.ID, podF.ID, podG.ID)

	for _, pod := range []*framework.Pod{podC, podD, podE, podF, podG} {
		removePod(t, env, pod.ID)
	}
	checkDelRecorded(t, blueV2, blueV1, podC.ID)
	requireNoLeftovers(t, env, 5*time.Second, "after every pod was removed", blue, green, red)
}

// checkDelRecorded checks that the DEL of a sandbox went to the chain that
// records into want and not to the one that records into other.
func checkDelRecorded(t *testing.T, want, other, sandboxID string) {
	t.Helper()
	wantCalls, err := framework.RecordedCalls(want)
	if err != nil {
		t.Fatal(err)
	}
	otherCalls, err := framework.RecordedCalls(other)
	if err != nil {
		t.Fatal(err)
	}
	if !hasCall(wantCalls, "ADD", sandboxID) || !hasCall(wantCalls, "DEL", sandboxID) {
		t.Errorf("calls of the config the sandbox was added with = %+v, want its ADD and DEL", wantCalls)
	}
	if hasCall(otherCalls, "DEL", sandboxID) {
		t.Errorf("calls of the other config = %+v, want no DEL of sandbox %s", otherCalls, sandboxID)
	}
}

func mustConflist(t *testing.T, env *framework.Env, network framework.Network) []byte {
	t.Helper()
	content, err := network.Conflist(env.IPAMDir)
	if err != nil {
		t.Fatal(err)
	}
	return content
}

// reloadWatcher follows the "loaded networks" entries of an nri-cni log.
type reloadWatcher struct {
	t       *testing.T
	process *framework.Process
	seen    int
	changed time.Time
}

func newReloadWatcher(t *testing.T, process *framework.Process) *reloadWatcher {
	return &reloadWatcher{t: t, process: process}
}

// mark notes the reloads so far, before a change to the conf dir.
func (w *reloadWatcher) mark() {
	w.seen = len(framework.LogEntries(w.process.Log(), "loaded networks"))
	w.changed = time.Now()
}

// since returns the number of reloads after the mark.
func (w *reloadWatcher) since() int {
	return len(framework.LogEntries(w.process.Log(), "loaded networks")) - w.seen
}

// wait waits for a reload after the mark whose valid networks are want, and
// returns its entry.
func (w *reloadWatcher) wait(want []string, when string) framework.LogEntry {
	w.t.Helper()
	deadline := w.changed.Add(reloadTimeout)
	for {
		entries := framework.LogEntries(w.process.Log(), "loaded networks")
		for _, entry := range entries[min(w.seen, len(entries)):] {
			if entry.String("networks") == fmt.Sprint(want) {
				w.t.Logf("reloaded %s %s after the change: networks %s, invalid %s", when,
					time.Since(w.changed).Round(time.Millisecond), entry.String("networks"), entry.String("invalid"))
				return entry
			}
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("nri-cni did not reload to networks %v %s within %s; log:\n%s", want, when, reloadTimeout, w.process.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ifNames are the interfaces that a pod should have, each with the network
// whose subnet its address must be in.
type ifNames map[string]framework.Network

// checkPodNetworks checks that a pod has exactly the interfaces of want
// besides eth0 and lo, each with an address in its network's subnet, and
// returns the pod's addresses.
func checkPodNetworks(t *testing.T, env *framework.Env, podID string, want ifNames) map[string]netip.Prefix {
	t.Helper()
	addresses := podNetnsAddresses(t, env, podID)
	for ifName, network := range want {
		if got, ok := addresses[ifName]; !ok || !network.Subnet.Contains(got.Addr()) {
			t.Errorf("pod %s %s = %v, want an address in %s of network %s; addresses %v", podID, ifName, got, network.Subnet, network.Name, addresses)
		}
	}
	for ifName := range addresses {
		if _, expected := want[ifName]; !expected && ifName != "eth0" && ifName != "lo" {
			t.Errorf("pod %s has interface %s, want only %d besides eth0; addresses %v", podID, ifName, len(want), addresses)
		}
	}
	return addresses
}

// hostAddress returns the address with the last byte host in an IPv4 /24.
func hostAddress(subnet netip.Prefix, host byte) netip.Addr {
	bytes := subnet.Masked().Addr().As4()
	bytes[3] = host
	return netip.AddrFrom4(bytes)
}
