package plugin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/state"
)

func (e *testEnv) pod(id string, annotations map[string]string) *api.PodSandbox {
	return &api.PodSandbox{
		Id:          id,
		Name:        "pod-" + id,
		Namespace:   "default",
		Uid:         "uid-" + id,
		Annotations: annotations,
		Linux: &api.LinuxPodSandbox{Namespaces: []*api.LinuxNamespace{
			{Type: "network", Path: e.netns},
		}},
	}
}

func hostPod(id string) *api.PodSandbox {
	return &api.PodSandbox{Id: id, Name: "host-" + id, Namespace: "default",
		Linux: &api.LinuxPodSandbox{Namespaces: []*api.LinuxNamespace{{Type: "ipc"}}}}
}

func TestRunPodSandboxAttachesAllNetworksInOrder(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, nil)
	pod := env.pod("sb1", nil)

	if err := env.plugin.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatalf("RunPodSandbox: %v", err)
	}

	want := []string{"ADD alpha net1", "ADD beta net2"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	sb := env.store.get("sb1")
	if sb == nil {
		t.Fatal("no state record saved")
	}
	if len(sb.Attachments) != 2 {
		t.Fatalf("record has %d attachments, want 2", len(sb.Attachments))
	}
	for _, att := range sb.Attachments {
		if att.Phase != state.PhaseAdded {
			t.Errorf("attachment %s phase = %q, want added", att.Network, att.Phase)
		}
		if len(att.Result) == 0 {
			t.Errorf("attachment %s has no result", att.Network)
		}
		if att.NetNS != env.netns {
			t.Errorf("attachment %s netns = %q, want %q", att.Network, att.NetNS, env.netns)
		}
	}
}

func TestRunPodSandboxPassesKubernetesArgs(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	if err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	args := env.runner.calls[0].args
	want := map[string]string{
		"IgnoreUnknown":              "1",
		"K8S_POD_NAMESPACE":          "default",
		"K8S_POD_NAME":               "pod-sb1",
		"K8S_POD_INFRA_CONTAINER_ID": "sb1",
		"K8S_POD_UID":                "uid-sb1",
	}
	got := map[string]string{}
	for _, kv := range args {
		got[kv[0]] = kv[1]
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("CNI_ARGS %s = %q, want %q", k, got[k], v)
		}
	}
}

func TestHostNetworkPodGetsNoCNICall(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := hostPod("h1")

	for name, hook := range map[string]func() error{
		"run":    func() error { return env.plugin.RunPodSandbox(ctx, pod) },
		"stop":   func() error { return env.plugin.StopPodSandbox(ctx, pod) },
		"remove": func() error { return env.plugin.RemovePodSandbox(ctx, pod) },
	} {
		if err := hook(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}

func TestAnnotationSelectsNetworksAndNames(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta", "gamma"}, nil)
	pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: "gamma, alpha@blue0"})

	if err := env.plugin.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD gamma net1", "ADD alpha blue0"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}

func TestDefaultNetworksReplaceAll(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, func(c *config.Config) {
		c.DefaultNetworks = []config.NetworkSelection{{Network: "beta"}}
		c.InterfacePrefix = "ext"
	})
	if err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD beta ext1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}

func TestEmptyAnnotationSelectsNoNetwork(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: ""})
	if err := env.plugin.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
}

func TestBadSelectionFailsWithoutCNICall(t *testing.T) {
	tests := []struct {
		name       string
		annotation string
		wantInErr  string
	}{
		{"unknown-network", "nosuch", `"nosuch"`},
		{"eth0", "alpha@eth0", `"eth0"`},
		{"lo", "alpha@lo", `"lo"`},
		{"long-ifname", "alpha@abcdefghijklmnop", "longer than 15"},
		{"slash-ifname", "alpha@a/b", `"a/b"`},
		{"duplicate-network", "alpha,alpha", "selected twice"},
		{"duplicate-ifname", "alpha@x1,beta@x1", `"x1"`},
		{"empty-item", "alpha,,beta", "no name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, []string{"alpha", "beta"}, nil)
			pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: tt.annotation})
			err := env.plugin.RunPodSandbox(context.Background(), pod)
			if err == nil {
				t.Fatal("RunPodSandbox succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantInErr)
			}
			if !strings.Contains(err.Error(), "default/pod-sb1") {
				t.Errorf("error %q does not name the pod", err)
			}
			if calls := env.runner.ops(); len(calls) != 0 {
				t.Errorf("CNI calls = %v, want none", calls)
			}
			if env.store.len() != 0 {
				t.Errorf("state records = %d, want 0", env.store.len())
			}
		})
	}
}

func TestInvalidNetworkFileFailsPodWithReason(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, func(c *config.Config) {
		conf := `{"cniVersion":"1.0.0","name":"broken","plugins":[{"type":"nosuchplugin"}]}`
		if err := os.WriteFile(filepath.Join(c.CNIConfDir, "20-broken.conflist"), []byte(conf), 0o644); err != nil {
			panic(err)
		}
	})
	pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: "broken"})
	err := env.plugin.RunPodSandbox(context.Background(), pod)
	if err == nil {
		t.Fatal("RunPodSandbox succeeded, want an error")
	}
	if !strings.Contains(err.Error(), "nosuchplugin") {
		t.Errorf("error %q does not say which binary is missing", err)
	}
}

func TestFailedAddRollsBackEveryAttempt(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, nil)
	env.runner.failAdd["beta"] = errPlugin

	err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil))
	if !errors.Is(err, errPlugin) {
		t.Fatalf("error = %v, want the plugin's error", err)
	}
	for _, want := range []string{`"beta"`, "default/pod-sb1", "plugin failed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %s", err, want)
		}
	}
	want := []string{"ADD alpha net1", "ADD beta net2", "DEL beta net2", "DEL alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}

func TestFailedRollbackKeepsRecord(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, nil)
	env.runner.failAdd["beta"] = errPlugin
	env.runner.failDel["alpha"] = errPlugin

	if err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil)); err == nil {
		t.Fatal("RunPodSandbox succeeded, want an error")
	}
	sb := env.store.get("sb1")
	if sb == nil || len(sb.Attachments) != 1 || sb.Attachments[0].Network != "alpha" {
		t.Fatalf("record = %+v, want only alpha kept", sb)
	}

	env.runner.setFailDel("alpha", nil)
	if err := env.plugin.RemovePodSandbox(context.Background(), env.pod("sb1", nil)); err != nil {
		t.Fatalf("RemovePodSandbox: %v", err)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}

func TestStopUsesConfigStoredAtAdd(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	added := env.runner.calls[0].config

	writeNetwork(t, env.cfg.CNIConfDir, "10-alpha.conflist", "alpha", "br-changed")
	env.plugin.ReloadNetworks()
	env.stop(pod)

	del := env.runner.calls[1]
	if del.op != "DEL" {
		t.Fatalf("second call is %s, want DEL", del.op)
	}
	if del.config != added {
		t.Errorf("DEL config = %s, want the config of the ADD %s", del.config, added)
	}
	if del.netns != "" {
		t.Errorf("DEL netns = %q, want empty for a path that is not a netns", del.netns)
	}
}

func TestSecondStopAndRemoveAreNoOps(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		env.stop(pod)
	}
	if err := env.plugin.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD alpha net1", "DEL alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}

func TestFailedStopKeepsStateForRemove(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, nil)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	env.runner.setFailDel("beta", errPlugin)
	env.stop(pod)
	sb := env.store.get("sb1")
	if sb == nil || len(sb.Attachments) != 1 || sb.Attachments[0].Network != "beta" {
		t.Fatalf("record = %+v, want only beta kept", sb)
	}

	env.runner.setFailDel("beta", nil)
	if err := env.plugin.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}

func TestRefusesHostNetworkNamespace(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	pod := env.pod("sb1", nil)
	pod.Linux.Namespaces[0].Path = "/proc/self/ns/net"

	err := env.plugin.RunPodSandbox(context.Background(), pod)
	if !errors.Is(err, ErrHostNetNS) {
		t.Fatalf("error = %v, want ErrHostNetNS", err)
	}
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
}

func TestRejectsNetNSOfOtherTask(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	pod := env.pod("sb1", nil)
	pod.Pid = uint32(os.Getpid())

	err := env.plugin.RunPodSandbox(context.Background(), pod)
	if err == nil || !strings.Contains(err.Error(), "is not the one of pause task") {
		t.Fatalf("error = %v, want a netns mismatch", err)
	}
}

func TestRecordsSurviveRestart(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}

	restarted, err := New(Options{Config: env.cfg, Runner: env.runner, Store: env.store})
	if err != nil {
		t.Fatal(err)
	}
	if err := restarted.RemovePodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD alpha net1", "DEL alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}

func TestInterruptedAttachIsRedone(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	pod := env.pod("sb1", nil)
	sb := newRecord(pod, env.netns, []target{{network: env.plugin.networks.Load().All()[0], ifName: "net1"}})
	if err := env.store.Save(sb); err != nil {
		t.Fatal(err)
	}
	restarted, err := New(Options{Config: env.cfg, Runner: env.runner, Store: env.store})
	if err != nil {
		t.Fatal(err)
	}

	if err := restarted.RunPodSandbox(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	want := []string{"DEL alpha net1", "ADD alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
	if got := env.store.get("sb1"); got == nil || !got.Complete() {
		t.Fatalf("record = %+v, want a complete one", got)
	}
}

func TestConfigureAppliesRuntimeConfig(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, nil)
	text := "interfacePrefix: ext\ndefaultNetworks: [beta]\n" +
		"cniConfDir: " + env.cfg.CNIConfDir + "\ncniBinDirs: [" + env.cfg.CNIBinDirs[0] + "]\n"
	if _, err := env.plugin.Configure(context.Background(), text, "containerd", "v2.4.2"); err != nil {
		t.Fatal(err)
	}
	if err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD beta ext1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}

func TestConfigureRejectsInvalidRuntimeConfig(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	_, err := env.plugin.Configure(context.Background(), "cniTimeout: banana\n", "containerd", "v2.4.2")
	if err == nil || !strings.Contains(err.Error(), "cniTimeout") {
		t.Fatalf("error = %v, want one naming cniTimeout", err)
	}
}

func TestBrokenFileKeepsInterfaceNames(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, func(c *config.Config) {
		conf := `{"cniVersion":"1.0.0","name":"alpha","plugins":[{"type":"nosuchplugin"}]}`
		if err := os.WriteFile(filepath.Join(c.CNIConfDir, "10-alpha.conflist"), []byte(conf), 0o644); err != nil {
			panic(err)
		}
	})
	if err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil)); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD beta net2"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}

func TestAnnotationErrorNamesAnnotation(t *testing.T) {
	env := newTestEnv(t, []string{"alpha", "beta"}, nil)
	pod := env.pod("sb1", map[string]string{config.NetworksAnnotation: "alpha@net2,beta"})
	err := env.plugin.RunPodSandbox(context.Background(), pod)
	if err == nil {
		t.Fatal("RunPodSandbox succeeded, want an interface name clash")
	}
	for _, want := range []string{config.NetworksAnnotation, `"net2"`, "beta@ifname"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestBinaryRemovedAfterLoadFailsBeforeADD(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	if err := os.Remove(filepath.Join(env.cfg.CNIBinDirs[0], "bridge")); err != nil {
		t.Fatal(err)
	}
	err := env.plugin.RunPodSandbox(context.Background(), env.pod("sb1", nil))
	if err == nil || !strings.Contains(err.Error(), `"bridge"`) || !strings.Contains(err.Error(), "cniBinDirs") {
		t.Fatalf("RunPodSandbox error = %v, want one naming the missing binary bridge and cniBinDirs", err)
	}
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
	if env.store.len() != 0 {
		t.Errorf("state records = %d, want 0", env.store.len())
	}
}
