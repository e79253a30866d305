package plugin

import (
	"context"
	"strconv"

	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"
)

// adjustContainer makes a member container join its pod's network namespace,
// or keeps it in the host's for a host network pod. When the pod's networks
// are not attached yet, because the plugin was not connected at
// RunPodSandbox, it attaches them first, so no app starts without them.
func (p *Plugin) adjustContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container,
	log *zap.Logger) (*api.ContainerAdjustment, error) {
	current, hasEntry := containerNetNS(ctr)
	podPath, podHasNetNS := podNetNSPath(pod)

	if !podHasNetNS {
		if !hasEntry {
			return nil, nil
		}
		adjust := &api.ContainerAdjustment{}
		adjust.RemoveNamespace(&api.LinuxNamespace{Type: networkNamespace})
		log.Info("removed network namespace of container in host network pod",
			zap.String("netns", current))
		return adjust, nil
	}

	if err := p.attachPod(ctx, pod, log); err != nil {
		return nil, err
	}

	want := joinPath(pod, podPath)
	if hasEntry && current != "" && sameNetNS(current, want) {
		return nil, nil
	}
	adjust := &api.ContainerAdjustment{}
	adjust.AddOrReplaceNamespace(&api.LinuxNamespace{Type: networkNamespace, Path: want})
	log.Info("joined container to pod network namespace", zap.String("netns", want),
		zap.String("previous", current), zap.Bool("hadEntry", hasEntry))
	return adjust, nil
}

// joinPath is the namespace path a member container joins: the pause task's
// /proc/<pid>/ns/net, as containerd's CRI uses it, when it is the pod's
// namespace, and the pod's pinned path otherwise.
func joinPath(pod *api.PodSandbox, pinned string) string {
	if pod.GetPid() != 0 {
		proc := "/proc/" + strconv.FormatUint(uint64(pod.GetPid()), 10) + "/ns/net"
		if pinned == "" || sameNetNS(proc, pinned) {
			return proc
		}
	}
	return pinned
}

func containerNetNS(ctr *api.Container) (string, bool) {
	for _, ns := range ctr.GetLinux().GetNamespaces() {
		if ns.GetType() == networkNamespace {
			return ns.GetPath(), true
		}
	}
	return "", false
}
