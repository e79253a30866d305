package plugin

import (
	"context"
	"slices"
	"testing"

	"github.com/containerd/nri/pkg/api"
)

func container(id string, netns *string) *api.Container {
	ctr := &api.Container{Id: id, Name: "app-" + id, Linux: &api.LinuxContainer{
		Namespaces: []*api.LinuxNamespace{{Type: "pid"}},
	}}
	if netns != nil {
		ctr.Linux.Namespaces = append(ctr.Linux.Namespaces, &api.LinuxNamespace{Type: "network", Path: *netns})
	}
	return ctr
}

func TestCreateContainerKeepsPodNamespace(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := env.pod("sb1", nil)
	if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
		t.Fatal(err)
	}

	adjust, _, err := env.plugin.CreateContainer(ctx, pod, container("c1", &env.netns))
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		t.Errorf("adjustment = %+v, want none for a container already in the pod's namespace", adjust)
	}
}

func TestCreateContainerJoinsPodNamespace(t *testing.T) {
	other := "/proc/self/ns/net"
	tests := []struct {
		name  string
		netns *string
	}{
		{"missing-entry", nil},
		{"other-namespace", &other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, []string{"alpha"}, nil)
			ctx := context.Background()
			pod := env.pod("sb1", nil)
			if err := env.plugin.RunPodSandbox(ctx, pod); err != nil {
				t.Fatal(err)
			}
			adjust, _, err := env.plugin.CreateContainer(ctx, pod, container("c1", tt.netns))
			if err != nil {
				t.Fatal(err)
			}
			ns := adjust.GetLinux().GetNamespaces()
			if len(ns) != 1 || ns[0].Type != "network" || ns[0].Path != env.netns {
				t.Fatalf("namespaces = %v, want network at %s", ns, env.netns)
			}
		})
	}
}

func TestCreateContainerInHostNetworkPod(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := hostPod("h1")

	adjust, _, err := env.plugin.CreateContainer(ctx, pod, container("c1", nil))
	if err != nil {
		t.Fatal(err)
	}
	if adjust != nil {
		t.Errorf("adjustment = %+v, want none", adjust)
	}

	stray := "/proc/1/ns/net"
	adjust, _, err = env.plugin.CreateContainer(ctx, pod, container("c2", &stray))
	if err != nil {
		t.Fatal(err)
	}
	ns := adjust.GetLinux().GetNamespaces()
	if len(ns) != 1 {
		t.Fatalf("namespaces = %v, want one removal", ns)
	}
	if typ, removed := ns[0].IsMarkedForRemoval(); !removed || typ != "network" {
		t.Errorf("namespace %v is not a removal of network", ns[0])
	}
	if calls := env.runner.ops(); len(calls) != 0 {
		t.Errorf("CNI calls = %v, want none", calls)
	}
}

func TestCreateContainerAttachesMissedPod(t *testing.T) {
	env := newTestEnv(t, []string{"alpha"}, nil)
	ctx := context.Background()
	pod := env.pod("sb1", nil)

	if _, _, err := env.plugin.CreateContainer(ctx, pod, container("c1", &env.netns)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.plugin.CreateContainer(ctx, pod, container("c2", &env.netns)); err != nil {
		t.Fatal(err)
	}
	want := []string{"ADD alpha net1"}
	if got := env.runner.ops(); !slices.Equal(got, want) {
		t.Fatalf("calls = %v, want %v", got, want)
	}
}
