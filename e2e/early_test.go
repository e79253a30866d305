package e2e

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// verifiedMessage is what nri-cni logs once the containerd at its
// containerdSocket has shown that it runs the pods of NRI.
const verifiedMessage = "containerd at containerdSocket runs the pods of NRI; attaching pods early"

// verifyContainerd runs and removes one pod, whose RunPodSandbox shows
// nri-cni that the containerd it follows is the one that sends NRI events.
// Pods started after it attach early.
func verifyContainerd(t *testing.T, env *framework.Env, nriCNI *framework.Process) {
	t.Helper()
	before := len(framework.LogEntries(nriCNI.Log(), verifiedMessage))
	pod := env.MustRunPod(framework.PodConfig{Name: "verify"})
	waitForEntries(t, nriCNI, verifiedMessage, before+1, 5*time.Second)
	removePod(t, env, pod.ID)
}

// attachedEarly reports whether an "attached network" entry comes from an
// attach that started when the CRI created the pod's pause container.
func attachedEarly(entry framework.LogEntry) bool {
	early, _ := entry["early"].(bool)
	return early
}

func TestEarlyAttachBeforeRunPodSandbox(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	blue := blueNetwork(env)
	red := framework.Network{Name: "red", Bridge: env.Bridge("red"), Subnet: env.Subnet(2)}
	env.WriteNetwork(blue)
	env.WriteNetwork(red)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())
	waitForEntry(t, nriCNI, "following containerd's sandboxes", nil, 10*time.Second)
	verifyContainerd(t, env, nriCNI)

	cases := []struct {
		name        string
		annotations map[string]string
		want        map[string]framework.Network
	}{
		{name: "default", want: map[string]framework.Network{"net1": blue, "net2": red}},
		{name: "annotated", annotations: map[string]string{networksAnnotation: "red@data0"},
			want: map[string]framework.Network{"data0": red}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env := env.For(t)
			pod := env.MustRunPod(framework.PodConfig{Annotations: tc.annotations})
			attached := entriesFor(nriCNI, "attached network", pod.ID)
			if len(attached) != len(tc.want) {
				t.Fatalf("attached %d networks, want %d; log:\n%s", len(attached), len(tc.want), nriCNI.Log())
			}
			checked := waitForLog(t, nriCNI, "pod networks attached early", pod.ID, 5*time.Second)
			for _, entry := range attached {
				if !attachedEarly(entry) {
					t.Errorf("network %s was attached in RunPodSandbox, want early: %v", entry.String("network"), entry)
				}
				if entryTime(t, entry).After(entryTime(t, checked)) {
					t.Errorf("network %s attached at %s, after RunPodSandbox checked it at %s",
						entry.String("network"), entry.String("time"), checked.String("time"))
				}
			}

			container := env.MustRunContainer(pod, framework.ContainerConfig{Command: sleepCommand})
			addresses := containerAddresses(t, env, container)
			for ifName, network := range tc.want {
				if got, ok := addresses[ifName]; !ok || !network.Subnet.Contains(got.Addr()) {
					t.Errorf("%s = %v, want an address of %s in %s; addresses %v", ifName, got,
						network.Name, network.Subnet, addresses)
				}
			}
			removePod(t, env, pod.ID)
			requireNoLeftovers(t, env, 5*time.Second, "after the pod was removed", blue, red)
		})
	}
}

// startFollowing starts an environment with the blue network and nri-cni,
// and waits until nri-cni follows containerd's sandboxes.
func startFollowing(t *testing.T) (*framework.Env, framework.Network, *framework.Process) {
	t.Helper()
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())
	waitForEntry(t, nriCNI, "following containerd's sandboxes", nil, 10*time.Second)
	return env, network, nriCNI
}

func TestEarlyAttachOfFailedSandboxIsDetached(t *testing.T) {
	t.Parallel()
	env, network, nriCNI := startFollowing(t)
	verifyContainerd(t, env, nriCNI)

	// runc fails to write a sysctl that does not exist while it creates the
	// pause task, after the CRI has created the pause container: the CRI
	// deletes it again and never sends RunPodSandbox.
	_, err := env.RunPod(framework.PodConfig{Sysctls: map[string]string{"net.ipv4.nri_cni_no_such_sysctl": "1"}})
	if err == nil {
		t.Fatal("crictl runp with an unknown sysctl succeeded, want runc to fail")
	}
	removeFailedSandboxes(t, env)
	var attached []framework.LogEntry
	for _, entry := range framework.LogEntries(nriCNI.Log(), "attached network") {
		if attachedEarly(entry) {
			attached = append(attached, entry)
		}
	}
	switch {
	case len(attached) == 1:
		deleted := waitForEntry(t, nriCNI, "pause container of recorded pod is deleted; detaching", nil, 5*time.Second)
		if deleted.String("sandboxID") != attached[0].String("sandboxID") {
			t.Errorf("detached sandbox %s, want the early one %s", deleted.String("sandboxID"), attached[0].String("sandboxID"))
		}
	case len(framework.LogEntries(nriCNI.Log(), "failed to attach pod networks early; RunPodSandbox reports it")) == 1:
		// The CRI removed the netns while the ADD ran, and the ADD was
		// rolled back.
		t.Log("the early attach of the failed sandbox failed and was rolled back")
	default:
		t.Fatalf("no early attach of the failed sandbox; log:\n%s", nriCNI.Log())
	}
	// The netns check would find the pod after 5s; the delete event is sooner.
	took := requireNoLeftovers(t, env, 4*time.Second, "after the failed sandbox", network)
	t.Logf("nothing left %s after the failed runp", took.Round(time.Millisecond))
}

func TestAttachInRunPodSandboxWithoutContainerd(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)

	for _, tc := range []struct {
		name, socket, warning string
	}{
		{name: "off", socket: ""},
		{name: "no-socket", socket: filepath.Join(env.Dir, "no-such-containerd.sock"),
			warning: "not following containerd's sandboxes; pods attach at RunPodSandbox until it connects"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := env.For(t)
			config := env.NRICNIConfig()
			config.ContainerdSocket = tc.socket
			nriCNI := env.StartNRICNI(config)
			if tc.warning != "" {
				waitForEntry(t, nriCNI, tc.warning, nil, 5*time.Second)
			}

			pod := env.MustRunPod(framework.PodConfig{})
			attached := waitForLog(t, nriCNI, "attached network", pod.ID, 5*time.Second)
			if attachedEarly(attached) {
				t.Errorf("attached early with containerdSocket %q: %v", tc.socket, attached)
			}
			if got := networkLeases(t, env, network.Name); len(got) != 1 {
				t.Errorf("leases = %v, want one", got)
			}
			if entries := framework.LogEntries(nriCNI.Log(), "following containerd's sandboxes"); len(entries) != 0 {
				t.Errorf("followed containerd with containerdSocket %q: %v", tc.socket, entries)
			}
			removePod(t, env, pod.ID)
			requireNoLeftovers(t, env, 5*time.Second, "after the pod was removed", network)
			env.KillNRICNI(nriCNI)
		})
	}
}

func TestEarlyAttachAfterContainerdRestart(t *testing.T) {
	t.Parallel()
	env, network, nriCNI := startFollowing(t)

	env.StopContainerd()
	env.StartContainerd()
	// nri-cni connects to the new containerd's events and NRI by itself,
	// and verifies the new containerd again.
	waitForEntries(t, nriCNI, "following containerd's sandboxes", 2, 15*time.Second)
	waitForEntries(t, nriCNI, "connected", 2, 15*time.Second)
	verifyContainerd(t, env, nriCNI)

	pod := env.MustRunPod(framework.PodConfig{})
	if attached := waitForLog(t, nriCNI, "attached network", pod.ID, 5*time.Second); !attachedEarly(attached) {
		t.Errorf("pod after the restart was attached in RunPodSandbox, want early: %v", attached)
	}
	removePod(t, env, pod.ID)
	requireNoLeftovers(t, env, 5*time.Second, "after the pod was removed", network)
}

// TestOtherContainerdAttachesNothingEarly points containerdSocket at a
// second containerd, whose NRI socket nri-cni does not dial. Its pods must
// get no network, and nri-cni must log which key to fix.
func TestOtherContainerdAttachesNothingEarly(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	other := framework.New(t)
	network := blueNetwork(env)
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	config.ContainerdSocket = other.ContainerdSocket
	nriCNI := env.StartNRICNI(config)
	waitForEntry(t, nriCNI, "following containerd's sandboxes", nil, 10*time.Second)

	foreign := other.MustRunPod(framework.PodConfig{Name: "foreign"})
	for i := range 3 {
		pod := env.MustRunPod(framework.PodConfig{})
		if attached := waitForLog(t, nriCNI, "attached network", pod.ID, 5*time.Second); attachedEarly(attached) {
			t.Errorf("pod %d attached early from another containerd's events: %v", i, attached)
		}
		removePod(t, env, pod.ID)
	}
	waitForEntry(t, nriCNI, "containerd at containerdSocket reported none of the last pods of NRI, so pods attach "+
		"in RunPodSandbox: set containerdSocket to the socket of the containerd whose NRI socket is nriSocket", nil, 5*time.Second)
	if got := entriesFor(nriCNI, "attached network", foreign.ID); len(got) != 0 {
		t.Errorf("the other containerd's pod got networks: %v", got)
	}
	if entries := framework.LogEntries(nriCNI.Log(), verifiedMessage); len(entries) != 0 {
		t.Errorf("nri-cni took the other containerd for NRI's: %v", entries)
	}
	removePod(t, other, foreign.ID)
	requireNoLeftovers(t, env, 5*time.Second, "after the pods were removed", network)
}
