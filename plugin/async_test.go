package plugin

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/nri-cni/nri-cni/config"
)

func asyncMode(c *config.Config) { c.AttachMode = config.AttachAsync }

func TestAsyncAttachCompletesBeforeCreateContainer(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, asyncMode)
	ctx := context.Background()
	pod := env.pod("sb1", nil)

	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.plugin.CreateContainer(ctx, pod, container("c1", &env.netns)); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD alpha net1", "ADD beta net2"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if sb := env.store.get("sb1"); sb == nil || !sb.Complete() {
		t.Fatalf("record = %+v, want a complete one", sb)
	}
}

func TestAsyncAttachFailureReachesCreateContainer(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, asyncMode)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	env.runner.failAdd["beta"] = errPlugin

	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatalf("RunPodSandbox: %v, want the failure at CreateContainer", err)
	}
	_, _, err := env.plugin.CreateContainer(ctx, pod, container("c1", &env.netns))
	if !errors.Is(err, errPlugin) {
		t.Fatalf("CreateContainer error = %v, want the ADD error", err)
	}
	want := []string{"ADD alpha net1", "ADD beta net2", "DEL beta net2", "DEL alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0 after rollback", env.store.len())
	}

	delete(env.runner.failAdd, "beta")
	if _, _, err := env.plugin.CreateContainer(ctx, pod, container("c2", &env.netns)); err != nil {
		t.Fatalf("second CreateContainer: %v, want a fresh attach", err)
	}
	if sb := env.store.get("sb1"); sb == nil || !sb.Complete() {
		t.Fatalf("record = %+v, want a complete one", sb)
	}
}

func TestAsyncSelectionErrorFailsRunPodSandbox(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, asyncMode)
	pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: "nosuch"})
	if err := env.plugin.RunPodSandbox(context.Background(), pod); err == nil {
		t.Fatal("RunPodSandbox succeeded, want the unknown network error")
	}
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
}

func TestAsyncStopWaitsForAttach(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, asyncMode)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	env.stop(pod)
	want := []string{"ADD alpha net1", "DEL alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}
