package sandboxwatch

import (
	"encoding/json"
	"errors"
	"testing"

	containers "github.com/containerd/containerd/api/services/containers/v1"
	"google.golang.org/protobuf/types/known/anypb"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criMetadata has the fields and JSON names of the sandbox metadata that
// containerd's CRI writes, with the CRI's own PodSandboxConfig type.
type criMetadata struct {
	ID             string
	Name           string
	Config         *runtime.PodSandboxConfig
	NetNSPath      string
	IP             string
	RuntimeHandler string
}

func pauseContainer(t *testing.T, version string, md criMetadata) *containers.Container {
	t.Helper()
	value, err := json.Marshal(map[string]any{"Version": version, "Metadata": md})
	if err != nil {
		t.Fatal(err)
	}
	return &containers.Container{
		ID:     md.ID,
		Labels: map[string]string{kindLabel: kindSandbox},
		Extensions: map[string]*anypb.Any{metadataExtension: {
			TypeUrl: "github.com/containerd/cri/pkg/store/sandbox/Metadata", Value: value,
		}},
	}
}

func podConfig() *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata:    &runtime.PodSandboxMetadata{Name: "web", Uid: "uid-1", Namespace: "shop", Attempt: 1},
		Labels:      map[string]string{"app": "web"},
		Annotations: map[string]string{"nri-cni.io/networks": "data@data0"},
	}
}

func TestDecodePauseContainer(t *testing.T) {
	ctr := pauseContainer(t, "v1", criMetadata{ID: "abc", Name: "web_shop_uid-1_1", Config: podConfig(),
		NetNSPath: "/var/run/netns/cni-1234", IP: "10.0.0.5", RuntimeHandler: "runc"})
	pod, err := Decode(ctr)
	if err != nil {
		t.Fatal(err)
	}
	if pod.GetId() != "abc" || pod.GetName() != "web" || pod.GetNamespace() != "shop" || pod.GetUid() != "uid-1" {
		t.Errorf("pod = %v, want sandbox abc of shop/web with uid-1", pod)
	}
	if got := pod.GetAnnotations()["nri-cni.io/networks"]; got != "data@data0" {
		t.Errorf("networks annotation = %q, want data@data0", got)
	}
	if got := pod.GetLabels()["app"]; got != "web" {
		t.Errorf("label app = %q, want web", got)
	}
	ns := pod.GetLinux().GetNamespaces()
	if len(ns) != 1 || ns[0].GetType() != "network" || ns[0].GetPath() != "/var/run/netns/cni-1234" {
		t.Errorf("namespaces = %v, want the network entry of the netns", ns)
	}
	if pod.GetPid() != 0 {
		t.Errorf("pid = %d, want 0 before the pause task runs", pod.GetPid())
	}
}

func TestDecodeHostNetworkPod(t *testing.T) {
	pod, err := Decode(pauseContainer(t, "v1", criMetadata{ID: "abc", Config: podConfig()}))
	if err != nil {
		t.Fatal(err)
	}
	if ns := pod.GetLinux().GetNamespaces(); len(ns) != 0 {
		t.Errorf("namespaces of a host network pod = %v, want none", ns)
	}
}

func TestDecodeSkipsOtherContainers(t *testing.T) {
	ctr := &containers.Container{ID: "app", Labels: map[string]string{kindLabel: "container"}}
	if pod, err := Decode(ctr); pod != nil || err != nil {
		t.Errorf("Decode of an app container = %v, %v, want nothing", pod, err)
	}
}

func TestDecodeRejectsUnknownFormats(t *testing.T) {
	for name, ctr := range map[string]*containers.Container{
		"version":      pauseContainer(t, "v2", criMetadata{ID: "abc", Config: podConfig()}),
		"other-id":     pauseContainer(t, "v1", criMetadata{ID: "other", Config: podConfig()}),
		"no-config":    pauseContainer(t, "v1", criMetadata{ID: "abc"}),
		"no-extension": {ID: "abc", Labels: map[string]string{kindLabel: kindSandbox}},
	} {
		if name == "other-id" {
			ctr.ID = "abc"
		}
		pod, err := Decode(ctr)
		if pod != nil || err == nil {
			t.Errorf("%s: Decode = %v, %v, want an error", name, pod, err)
		}
		if name != "no-extension" && !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("%s: error = %v, want ErrUnknownFormat", name, err)
		}
	}
}
