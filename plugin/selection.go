package plugin

import (
	"fmt"
	"strconv"

	"github.com/containerd/nri/pkg/api"

	"github.com/nri-cni/nri-cni/cni"
	"github.com/nri-cni/nri-cni/config"
)

// target is one network to attach and the interface name it gets.
type target struct {
	network *cni.Network
	ifName  string
}

// selection is the origin of a pod's network list, for error messages.
type selection struct {
	items []config.NetworkSelection
	// source names where the list came from.
	source string
	// allFiles is set when the list is every network of the conf dir.
	allFiles bool
}

// selectNetworks returns the networks a pod gets, in order: the networks
// annotation when the pod has one, else defaultNetworks, else every network
// in the conf dir.
func selectNetworks(pod *api.PodSandbox, cfg *config.Config, nets *cni.Networks) ([]target, selection, error) {
	sel, err := requestedNetworks(pod, cfg, nets)
	if err != nil {
		return nil, sel, err
	}
	assigned, err := config.AssignInterfaces(sel.items, cfg.InterfacePrefix)
	if err != nil {
		return nil, sel, fmt.Errorf("invalid %s: %w", sel.source, err)
	}

	targets := make([]target, 0, len(assigned))
	for _, item := range assigned {
		nw, err := nets.Get(item.Network)
		if err != nil {
			return nil, sel, fmt.Errorf("%s: %w", sel.source, err)
		}
		targets = append(targets, target{network: nw, ifName: item.IfName})
	}
	return targets, sel, nil
}

func requestedNetworks(pod *api.PodSandbox, cfg *config.Config, nets *cni.Networks) (selection, error) {
	if value, ok := pod.GetAnnotations()[config.NetworksAnnotation]; ok {
		source := fmt.Sprintf("annotation %s=%q", config.NetworksAnnotation, value)
		items, err := config.ParseAnnotation(value)
		if err != nil {
			return selection{source: source}, fmt.Errorf("invalid %s: %w", source, err)
		}
		return selection{items: items, source: source}, nil
	}
	if cfg.DefaultNetworks != nil {
		return selection{items: cfg.DefaultNetworks, source: "defaultNetworks of the config"}, nil
	}

	// Every network of the conf dir, named by its position among the files,
	// so that a file that fails to load does not rename the others.
	positions := nets.Positions()
	all := nets.All()
	items := make([]config.NetworkSelection, len(all))
	for i, nw := range all {
		items[i] = config.NetworkSelection{
			Network: nw.Name,
			IfName:  cfg.InterfacePrefix + strconv.Itoa(positions[nw]),
		}
	}
	return selection{items: items, source: "networks of the conf dir", allFiles: true}, nil
}
