package plugin

import (
	"context"
	"github.com/containerd/nri/pkg/api"
	"slices"
	"testing"
	"time"
)

// waitFor polls cond until it holds or five seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSynchronizeDetachesGonePods(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kept, gone := env.pod("kept", nil), env.pod("gone", nil)
	for _, pod := range []*api.PodSandbox{kept, gone} {
		if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
			t.Fatal(err)
		}
	}
	go env.plugin.Run(ctx)

	if _, err := env.plugin.Synchronize(ctx, []*api.PodSandbox{kept}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the gone pod's record to go", func() bool { return env.store.get("gone") == nil })
	if env.store.get("kept") == nil {
		t.Error("record of the running pod was deleted")
	}
}

func TestSynchronizeAttachesMissedPod(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go env.plugin.Run(ctx)

	pod := env.pod("sb1", nil)
	if _, err := env.plugin.Synchronize(ctx, []*api.PodSandbox{pod, hostPod("h1")}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the missed pod to be attached", func() bool { return env.store.get("sb1") != nil })
	if got, want := env.runner.ops(), []string{"ADD alpha net1"}; !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}

func TestFailedRemoveIsRetried(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	go env.plugin.Run(ctx)

	env.runner.setFailDel("alpha", errPlugin)
	if err := env.plugin.RemovePodSandbox(ctx, pod); err == nil {
		t.Fatal("RemovePodSandbox succeeded, want the DEL error")
	}
	if env.store.get("sb1") == nil {
		t.Fatal("record deleted although DEL failed")
	}
	env.runner.setFailDel("alpha", nil)
	waitFor(t, "the retried DEL to delete the record", func() bool { return env.store.get("sb1") == nil })
}

func TestGoneNetNSIsDetached(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := env.plugin.RunPodSandbox(ctx, env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	env.plugin.netnsExists = func(string) bool { return false }
	go env.plugin.Run(ctx)

	waitFor(t, "the record of the pod without netns to go", func() bool { return env.store.get("sb1") == nil })
	if got, want := env.runner.ops(), []string{"ADD alpha net1", "DEL alpha net1"}; !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}
