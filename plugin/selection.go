package plugin

import (
	"fmt"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-cni/nri-cni/cni"
	"github.com/nri-cni/nri-cni/config"
)

// target is one network to attach and the interface name it gets.
type target struct {
	network *cni.Network
	ifName  string
}

// selectNetworks returns the networks a pod gets, in order: the networks
// annotation when the pod has one, else defaultNetworks, else every network
// in the conf dir.
func selectNetworks(pod *api.PodSandbox, cfg *config.Config, nets *cni.Networks) ([]target, error) {
	selections, err := requestedNetworks(pod, cfg, nets)
	if err != nil {
		return nil, err
	}
	assigned, err := config.AssignInterfaces(selections, cfg.InterfacePrefix)
	if err != nil {
		return nil, err
	}

	targets := make([]target, 0, len(assigned))
	for _, sel := range assigned {
		nw, err := nets.Get(sel.Network)
		if err != nil {
			return nil, err
		}
		targets = append(targets, target{network: nw, ifName: sel.IfName})
	}
	return targets, nil
}

func requestedNetworks(pod *api.PodSandbox, cfg *config.Config, nets *cni.Networks) (
	[]config.NetworkSelection, error) {
	if value, ok := pod.GetAnnotations()[config.NetworksAnnotation]; ok {
		selections, err := config.ParseAnnotation(value)
		if err != nil {
			return nil, fmt.Errorf("invalid annotation %s=%q: %w", config.NetworksAnnotation, value, err)
		}
		return selections, nil
	}
	if cfg.DefaultNetworks != nil {
		return cfg.DefaultNetworks, nil
	}
	all := nets.All()
	selections := make([]config.NetworkSelection, len(all))
	for i, nw := range all {
		selections[i] = config.NetworkSelection{Network: nw.Name}
	}
	return selections, nil
}
