package plugin

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-cni/nri-cni/config"
)

// newEarlyEnv returns a test env whose plugin has verified the containerd
// of its sandbox events, so that pods attach early.
func newEarlyEnv(t *testing.T, networks []string, mutate func(*config.Config)) *testEnv {
	t.Helper()
	env := newTestEnv(t, networks, mutate)
	env.plugin.Subscribed()
	env.plugin.gate.mu.Lock()
	env.plugin.gate.verified = true
	env.plugin.gate.mu.Unlock()
	return env
}

func TestEarlyAttachStandsAtRunPodSandbox(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha", "beta"}, nil)
	env.plugin.SandboxCreated(env.pod("sb1", nil))
	env.wait()
	want := []string{"ADD alpha net1", "ADD beta net2"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls of the early attach = %v, want %v", got, want)
	}

	if err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Errorf("calls after RunPodSandbox = %v, want only the early %v", got, want)
	}
	if sb := env.store.get("sb1"); sb == nil || !sb.Complete() {
		t.Errorf("record = %+v, want a complete one", sb)
	}
	if env.plugin.sandboxes.isEarly("sb1") {
		t.Error("sandbox is still marked early after RunPodSandbox")
	}
}

func TestEarlyAttachThatDiffersIsReplaced(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha", "beta"}, nil)
	env.plugin.SandboxCreated(env.pod("sb1", map[string]string{config.NetworksAnnotation: "alpha"}))
	env.wait()

	pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: "beta@data0"})
	if err := env.plugin.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD alpha net1", "DEL alpha net1", "ADD beta data0"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	sb := env.store.get("sb1")
	if sb == nil || len(sb.Attachments) != 1 || sb.Attachments[0].Network != "beta" {
		t.Errorf("record = %+v, want beta only", sb)
	}
}

func TestEarlyAttachAfterRunPodSandboxDoesNothing(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, nil)
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	env.plugin.SandboxCreated(pod)
	env.wait()
	if got := env.runner.ops(); !slices.Equal(got, []string{"ADD alpha net1"}) {
		t.Errorf("calls = %v, want the one ADD of RunPodSandbox", got)
	}
}

func TestEarlyAttachSkipsHostNetworkPod(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, nil)
	env.plugin.SandboxCreated(hostPod("h1"))
	env.wait()
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
}

func TestEarlyAttachOfDeletedSandboxIsDetached(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go env.plugin.Run(ctx)

	env.plugin.SandboxCreated(env.pod("sb1", nil))
	env.wait()
	// A Synchronize before RunPodSandbox does not take the pod for gone.
	if _, err := env.plugin.Synchronize(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	env.plugin.SandboxDeleted("sb1")
	waitFor(t, "the record of the deleted sandbox to go", func() bool { return env.store.get("sb1") == nil })
	if got, want := env.runner.ops(), []string{"ADD alpha net1", "DEL alpha net1"}; !slices.Equal(got, want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

func TestSynchronizeKeepsEarlyAttach(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	env.plugin.SandboxCreated(env.pod("sb1", nil))
	env.wait()
	if _, err := env.plugin.Synchronize(ctx, []*api.PodSandbox{}, nil); err != nil {
		t.Fatal(err)
	}
	env.plugin.repairOnce(ctx)
	if err := env.plugin.RunPodSandbox(ctx, env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	env.plugin.repairOnce(ctx)
	if got := env.runner.ops(); !slices.Equal(got, []string{"ADD alpha net1"}) {
		t.Errorf("calls = %v, want only the early ADD", got)
	}
	if env.store.get("sb1") == nil {
		t.Error("record of the running pod was deleted")
	}
}

func TestRunPodSandboxCancelsQueuedTeardown(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	env.plugin.SandboxCreated(env.pod("sb1", nil))
	env.wait()
	// As after a restart, which loses the early mark: Synchronize queues
	// the pod, and its RunPodSandbox comes before the repair runs.
	env.plugin.sandboxes.takeEarly("sb1")
	if _, err := env.plugin.Synchronize(ctx, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := env.plugin.RunPodSandbox(ctx, env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	env.plugin.repairOnce(ctx)
	if env.store.get("sb1") == nil {
		t.Errorf("record of the running pod was deleted; calls %v", env.runner.ops())
	}
}

func TestAsyncEarlyAttachIsCheckedAtCreateContainer(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, asyncMode)
	ctx := context.Background()
	env.plugin.SandboxCreated(env.pod("sb1", nil))
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.plugin.CreateContainer(ctx, pod, container("c1", &env.netns)); err != nil {
		t.Fatal(err)
	}
	if got := env.runner.ops(); !slices.Equal(got, []string{"ADD alpha net1"}) {
		t.Errorf("calls = %v, want one ADD", got)
	}
	if env.plugin.sandboxes.isEarly("sb1") {
		t.Error("sandbox is still marked early after its first CreateContainer")
	}
}

func TestFailedEarlyAttachFailsRunPodSandbox(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, nil)
	env.runner.failAdd["alpha"] = errPlugin
	env.plugin.SandboxCreated(env.pod("sb1", nil))
	env.wait()

	err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil))
	if !errors.Is(err, errPlugin) {
		t.Fatalf("RunPodSandbox error = %v, want the early ADD's", err)
	}
	want := []string{"ADD alpha net1", "DEL alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Errorf("calls = %v, want the early ADD and its rollback only: %v", got, want)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}

	// The kubelet retries the sandbox, and the next attach runs again.
	delete(env.runner.failAdd, "alpha")
	if err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil)); err != nil {
		t.Fatalf("second RunPodSandbox: %v", err)
	}
}

func TestEarlyAttachWaitsForVerifiedContainerd(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	env.plugin.Subscribed()

	// Until a pod it reported reaches RunPodSandbox, the watched
	// containerd may be another runtime: nothing attaches early.
	env.plugin.SandboxCreated(env.pod("sb1", nil))
	env.wait()
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Fatalf("calls before the containerd was verified = %v, want none", calls)
	}
	if err := env.plugin.RunPodSandbox(ctx, env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}

	env.plugin.SandboxCreated(env.pod("sb2", nil))
	env.wait()
	want := []string{"ADD alpha net1", "ADD alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls after the containerd was verified = %v, want the hook's ADD and an early one", got)
	}
	if !env.plugin.sandboxes.isEarly("sb2") {
		t.Error("second pod is not marked early")
	}

	// A new subscription may be another containerd, which must verify again.
	env.plugin.Subscribed()
	env.plugin.SandboxCreated(env.pod("sb3", nil))
	env.wait()
	if got := env.runner.ops(); len(got) != 2 {
		t.Errorf("calls after a new subscription = %v, want no early ADD for sb3", got)
	}
}

func TestEarlyGateReportsOtherContainerd(t *testing.T) {
	var gate earlyGate
	gate.reset()
	gate.created("foreign")
	for i := 1; i <= unseenLimit+1; i++ {
		verified, mismatch := gate.ran(fmt.Sprintf("nri-%d", i))
		if verified {
			t.Fatalf("pod %d verified a containerd that never reported it", i)
		}
		if mismatch != (i == unseenLimit) {
			t.Errorf("pod %d: mismatch = %v, want true only at pod %d", i, mismatch, unseenLimit)
		}
	}
	if gate.created("foreign-2") {
		t.Error("a containerd that reported none of NRI's pods may attach early")
	}
	gate.deleted("foreign")
	gate.deleted("foreign-2")
	if len(gate.seen) != 0 {
		t.Errorf("seen = %v after the deletes, want empty", gate.seen)
	}
}

func TestAsyncEarlySelectionErrorFailsRunPodSandbox(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, asyncMode)
	pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: "nosuch"})
	env.plugin.SandboxCreated(pod)
	err := env.plugin.RunPodSandbox(context.Background(), pod)
	if err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("RunPodSandbox error = %v, want the unknown network nosuch", err)
	}
	env.wait()
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
	if env.plugin.sandboxes.isEarly("sb1") {
		t.Error("failed sandbox is still marked early")
	}
}

func TestHostNetworkPodVerifiesContainerd(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	env.plugin.Subscribed()
	env.plugin.SandboxCreated(hostPod("h1"))
	if err := env.plugin.RunPodSandbox(ctx, hostPod("h1")); err != nil {
		t.Fatal(err)
	}
	env.plugin.SandboxCreated(env.pod("sb1", nil))
	env.wait()
	if got := env.runner.ops(); !slices.Equal(got, []string{"ADD alpha net1"}) {
		t.Errorf("calls = %v, want an early ADD after a host network pod verified the containerd", got)
	}
}

func TestStopCancelsPendingEarlyAttach(t *testing.T) {
	env := newEarlyEnv(t, []string{"alpha"}, asyncMode)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	// The mark that SandboxCreated sets before its attach takes the lock,
	// as when that goroutine has not run yet. The attach runs only while
	// the mark is set.
	if !env.plugin.sandboxes.markEarly("sb1") {
		t.Fatal("failed to mark the sandbox early")
	}
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if err := env.plugin.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	env.wait()
	if env.plugin.sandboxes.isEarly("sb1") {
		t.Error("stopped sandbox is still marked early, so its pending early attach would run")
	}
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls after the stop = %v, want none", calls)
	}
}
