package framework

import (
	"fmt"
	"os"
	"path/filepath"
)

// Option changes the environment that New starts.
type Option func(*envOptions)

type envOptions struct {
	criNetworks []criNetworkOption
}

type criNetworkOption struct {
	name         string
	bridgeSuffix string
	subnet       int
}

// WithCRINetwork gives containerd's CRI a second network of its own: a
// bridge network like Network, named name, on bridge Env.Bridge(bridgeSuffix)
// and subnet Env.Subnet(subnet). Its file follows eth0's in the CRI's conf
// dir, and max_conf_num counts it, so the CRI attaches it itself as eth1,
// set up in parallel with eth0 and torn down after it. Each further
// WithCRINetwork adds the next ethN.
func WithCRINetwork(name, bridgeSuffix string, subnet int) Option {
	return func(o *envOptions) {
		o.criNetworks = append(o.criNetworks, criNetworkOption{name: name, bridgeSuffix: bridgeSuffix, subnet: subnet})
	}
}

func collectOptions(options []Option) envOptions {
	var o envOptions
	for _, option := range options {
		option(&o)
	}
	return o
}

// applyOptions sets the fields of env that the options name. It runs once
// the environment owns its address block.
func (env *Env) applyOptions(o envOptions) {
	env.t.Helper()
	for _, network := range o.criNetworks {
		if network.name == CRINetworkName {
			env.t.Fatalf("CRI network name %q is taken by eth0: choose another name", network.name)
		}
		if network.subnet == 0 {
			env.t.Fatalf("subnet 0 of CRI network %s is eth0's: use 1 to %d", network.name, SubnetsPerBlock-1)
		}
		env.CRINetworks = append(env.CRINetworks, Network{
			Name:   network.name,
			Bridge: env.Bridge(network.bridgeSuffix),
			Subnet: env.Subnet(network.subnet),
		})
	}
}

// writeCRINetworks writes the CRI networks after eth0's into the CRI's conf
// dir, as 20-<name>.conflist, 21-<name>.conflist and so on, and returns the
// max_conf_num that makes the CRI load all of them.
func (env *Env) writeCRINetworks(confDir string) (int, error) {
	for i, network := range env.CRINetworks {
		content, err := network.Conflist(env.IPAMDir)
		if err != nil {
			return 0, fmt.Errorf("failed to encode CRI network %s: %w", network.Name, err)
		}
		path := filepath.Join(confDir, fmt.Sprintf("%d-%s.conflist", 20+i, network.Name))
		if err := os.WriteFile(path, content, 0o644); err != nil {
			return 0, fmt.Errorf("failed to write CRI network %s: %w", network.Name, err)
		}
	}
	return 1 + len(env.CRINetworks), nil
}
