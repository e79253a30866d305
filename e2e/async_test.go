package e2e

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// TestAsyncAttachFailureFailsCreate runs a pod in async mode whose range is
// exhausted: its runp succeeds, its first container fails with the ADD's
// error and leaves nothing, and once the address is free the next create
// attaches the network.
func TestAsyncAttachFailureFailsCreate(t *testing.T) {
	t.Parallel()
	env := framework.New(t)
	network := blueNetwork(env)
	only := framework.Gateway(network.Subnet).Next()
	network.RangeStart = only
	network.RangeEnd = only
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	config.AttachMode = "async"
	env.StartNRICNI(config)

	first := env.MustRunPod(framework.PodConfig{})
	env.MustRunContainer(first, framework.ContainerConfig{Command: sleepCommand})
	firstPorts := bridgePorts(t, network.Bridge)
	firstState := stateFiles(t, env)

	second, err := env.RunPod(framework.PodConfig{})
	if err != nil {
		t.Fatalf("runp of the second pod: %v, want success in async mode", err)
	}
	_, err = env.CreateContainer(second, framework.ContainerConfig{Command: sleepCommand})
	var crictlErr *framework.CrictlError
	if !errors.As(err, &crictlErr) {
		t.Fatalf("create in the second pod = %v, want a crictl failure", err)
	}
	for _, want := range []string{network.Name, "no IP addresses available"} {
		if !strings.Contains(crictlErr.Stderr, want) {
			t.Errorf("create error does not contain %q: %s", want, crictlErr.Stderr)
		}
	}
	if got := bridgePorts(t, network.Bridge); !slices.Equal(got, firstPorts) {
		t.Errorf("bridge ports after the failed attach = %v, want only the first pod's %v", got, firstPorts)
	}
	if got := networkLeases(t, env, network.Name); !slices.Equal(got, []string{only.String()}) {
		t.Errorf("leases after the failed attach = %v, want only the first pod's [%s]", got, only)
	}
	if got := stateFiles(t, env); !slices.Equal(got, firstState) {
		t.Errorf("state files after the failed attach = %v, want only the first pod's %v", got, firstState)
	}

	if err := env.StopPod(first.ID); err != nil {
		t.Fatal(err)
	}
	if err := env.RemovePod(first.ID); err != nil {
		t.Fatal(err)
	}
	container := env.MustRunContainer(second, framework.ContainerConfig{Command: sleepCommand})
	addresses := containerAddresses(t, env, container)
	if got := addresses["net1"].Addr(); got != only {
		t.Errorf("net1 of the second pod after the retry = %v, want %s; addresses %v", got, only, addresses)
	}
}
