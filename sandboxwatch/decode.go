package sandboxwatch

import (
	"encoding/json"
	"errors"
	"fmt"

	containers "github.com/containerd/containerd/api/services/containers/v1"
	"github.com/containerd/nri/pkg/api"
)

// Labels and extensions that containerd's CRI sets on the pause container of
// a pod sandbox.
const (
	kindLabel         = "io.cri-containerd.kind"
	kindSandbox       = "sandbox"
	metadataExtension = "io.cri-containerd.sandbox.metadata"
	// metadataVersion is the version of the CRI's sandbox metadata that
	// Decode reads.
	metadataVersion = "v1"
)

// ErrUnknownFormat is returned for sandbox metadata of a format that Decode
// does not read, as a future containerd may write.
var ErrUnknownFormat = errors.New("unknown format of the CRI's sandbox metadata")

// sandboxMetadata is the part of the CRI's sandbox metadata that nri-cni
// reads: the CRI writes it as JSON into the pause container's extensions.
type sandboxMetadata struct {
	Version  string `json:"Version"`
	Metadata struct {
		ID        string            `json:"ID"`
		Config    *podSandboxConfig `json:"Config"`
		NetNSPath string            `json:"NetNSPath"`
	} `json:"Metadata"`
}

// podSandboxConfig is the part of the CRI's PodSandboxConfig that network
// selection needs, in the JSON names of its Go type.
type podSandboxConfig struct {
	Metadata struct {
		Name      string `json:"name"`
		UID       string `json:"uid"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// Decode returns the pod of a pause container as NRI would pass it at
// RunPodSandbox, without the pause task's PID, which does not exist yet. It
// returns nil for a container that is not a pod sandbox's.
func Decode(ctr *containers.Container) (*api.PodSandbox, error) {
	if ctr.GetLabels()[kindLabel] != kindSandbox {
		return nil, nil
	}

	ext := ctr.GetExtensions()[metadataExtension]
	if ext == nil {
		return nil, fmt.Errorf("pause container %s has no extension %s", ctr.GetID(), metadataExtension)
	}
	var md sandboxMetadata
	if err := json.Unmarshal(ext.GetValue(), &md); err != nil {
		return nil, fmt.Errorf("failed to decode sandbox metadata of container %s: %w", ctr.GetID(), err)
	}
	if md.Version != metadataVersion {
		return nil, fmt.Errorf("%w: version %q of container %s, want %q",
			ErrUnknownFormat, md.Version, ctr.GetID(), metadataVersion)
	}

	m := md.Metadata
	if m.ID != ctr.GetID() || m.Config == nil {
		return nil, fmt.Errorf("%w: container %s has metadata of sandbox %q", ErrUnknownFormat,
			ctr.GetID(), m.ID)
	}

	pod := &api.PodSandbox{
		Id:          m.ID,
		Name:        m.Config.Metadata.Name,
		Uid:         m.Config.Metadata.UID,
		Namespace:   m.Config.Metadata.Namespace,
		Labels:      m.Config.Labels,
		Annotations: m.Config.Annotations,
		Linux:       &api.LinuxPodSandbox{},
	}
	// A host network pod has no netns, and NRI gives it no network entry.
	if m.NetNSPath != "" {
		pod.Linux.Namespaces = []*api.LinuxNamespace{{Type: "network", Path: m.NetNSPath}}
	}
	return pod, nil
}
