package plugin

import (
	"context"
	"errors"
	"os"
	"slices"
	"testing"
	"time"
)

// fakeHold makes the plugin hold an open file of the pod's netns path and
// name it heldPath, and returns that file.
func fakeHold(t *testing.T, env *testEnv, heldPath string) *os.File {
	t.Helper()
	file, err := os.Open(env.netns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { file.Close() })
	env.plugin.holdNetNS = func(path string, _ nsID) (*heldNetNS, error) {
		if path != env.netns {
			t.Errorf("held netns %q, want the pod's %q", path, env.netns)
		}
		return &heldNetNS{file: file, path: heldPath}, nil
	}
	return file
}

func TestStopDetachesInHeldNetNS(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, nil)
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	file := fakeHold(t, env, "/proc/1/fd/7")

	env.stop(pod)
	want := []string{"ADD alpha net1", "ADD beta net2", "DEL beta net2", "DEL alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	for _, c := range env.runner.calls[2:] {
		if c.netns != "/proc/1/fd/7" {
			t.Errorf("DEL of %s got netns %q, want the held /proc/1/fd/7", c.network, c.netns)
		}
	}
	if err := file.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("held netns after the detach: close = %v, want it closed already", err)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}

func TestStopReturnsBeforeDetachAndRemoveWaits(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	fakeHold(t, env, "/proc/1/fd/7")
	gate := make(chan struct{})
	env.runner.delGate = gate

	if err := env.plugin.StopPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	removed := make(chan error, 1)
	go func() { removed <- env.plugin.RemovePodSandbox(ctx, env.pod("sb1", nil)) }()
	select {
	case err := <-removed:
		t.Fatalf("RemovePodSandbox returned %v while the DEL was running, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	if env.store.len() != 1 {
		t.Errorf("state records while the DEL runs = %d, want 1", env.store.len())
	}

	close(gate)
	if err := <-removed; err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if env.store.len() != 0 {
		t.Errorf("state records after RemovePodSandbox = %d, want 0", env.store.len())
	}
	if got := env.runner.ops(); !slices.Equal(got, []string{"ADD alpha net1", "DEL alpha net1"}) {
		t.Errorf("calls = %v, want one ADD and one DEL", got)
	}
}

func TestStopOfPodWithNothingAttachedHoldsNothing(t *testing.T) {
	env := newTestEnv(t, nil, nil)
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	env.plugin.holdNetNS = func(path string, _ nsID) (*heldNetNS, error) {
		t.Errorf("held netns %q of a pod with no attachment", path)
		return nil, nil
	}
	env.stop(pod)
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
}

func TestHoldNetNS(t *testing.T) {
	host, err := hostNetNS()
	if err != nil {
		t.Fatal(err)
	}
	plain := t.TempDir() + "/netns"
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", plain, plain + ".missing"} {
		netns, err := holdNetNS(path, host)
		if netns != nil || err != nil {
			t.Errorf("holdNetNS(%q) = %+v, %v, want nothing held for a path that is no netns", path, netns, err)
		}
	}
	if _, err := holdNetNS("/proc/self/ns/net", host); !errors.Is(err, ErrHostNetNS) {
		t.Errorf("holdNetNS of the plugin's own netns: error = %v, want ErrHostNetNS", err)
	}
}
