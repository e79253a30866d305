package framework

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Leftovers is what pods of the given networks left in an environment: it
// combines the residue counters of several networks with the pinned network
// namespaces. Every list is empty when nothing is left.
type Leftovers struct {
	// Leases are host-local's leases, by network name.
	Leases map[string][]string
	// Veths are the ports of each network's bridge, by bridge name.
	Veths        map[string][]string
	NetnsMounts  []string
	StateFiles   []string
	CacheEntries []string
}

// Counts returns the number of leftovers of each kind, such as
// "leases=0 veths=0 netnsMounts=0 stateFiles=0 cacheEntries=0".
func (l Leftovers) Counts() string {
	return fmt.Sprintf("leases=%d veths=%d netnsMounts=%d stateFiles=%d cacheEntries=%d",
		countAll(l.Leases), countAll(l.Veths), len(l.NetnsMounts), len(l.StateFiles), len(l.CacheEntries))
}

// Empty reports whether nothing is left.
func (l Leftovers) Empty() bool {
	return countAll(l.Leases) == 0 && countAll(l.Veths) == 0 && len(l.NetnsMounts) == 0 &&
		len(l.StateFiles) == 0 && len(l.CacheEntries) == 0
}

// String returns the counts followed by every leftover by name.
func (l Leftovers) String() string {
	var out strings.Builder
	out.WriteString(l.Counts())
	writeMap := func(kind string, values map[string][]string) {
		keys := make([]string, 0, len(values))
		for key := range values {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			if len(values[key]) > 0 {
				fmt.Fprintf(&out, " %s[%s]=%v", kind, key, values[key])
			}
		}
	}
	writeMap("leases", l.Leases)
	writeMap("veths", l.Veths)
	for _, list := range []struct {
		kind   string
		values []string
	}{{"netnsMounts", l.NetnsMounts}, {"stateFiles", l.StateFiles}, {"cacheEntries", l.CacheEntries}} {
		if len(list.values) > 0 {
			fmt.Fprintf(&out, " %s=%v", list.kind, list.values)
		}
	}
	return out.String()
}

func countAll(values map[string][]string) int {
	total := 0
	for _, list := range values {
		total += len(list)
	}
	return total
}

// Leftovers counts the leases and bridge ports of networks, every pinned
// network namespace of the environment, and every state file and libcni
// cache entry of nri-cni.
func (env *Env) Leftovers(networks ...Network) (Leftovers, error) {
	leftovers := Leftovers{Leases: map[string][]string{}, Veths: map[string][]string{}}
	for _, network := range networks {
		residue, err := env.NetworkResidue(network.Name, network.Bridge)
		if err != nil {
			return leftovers, err
		}
		leftovers.Leases[network.Name] = residue.Leases
		leftovers.Veths[network.Bridge] = residue.BridgePorts
		leftovers.StateFiles, leftovers.CacheEntries = residue.StateFiles, residue.CacheEntries
	}
	if len(networks) == 0 {
		var err error
		if leftovers.StateFiles, err = env.StateFiles(); err != nil {
			return leftovers, err
		}
		if leftovers.CacheEntries, err = env.CacheEntries(); err != nil {
			return leftovers, err
		}
	}
	var err error
	if leftovers.NetnsMounts, err = env.NetnsMounts(); err != nil {
		return leftovers, err
	}
	return leftovers, nil
}

// WaitForNoLeftovers polls Leftovers until nothing is left or timeout has
// passed, and returns the last count and how long it waited. Background
// teardown, such as nri-cni's repair after a restart, finishes some time
// after the CRI call that started it.
func (env *Env) WaitForNoLeftovers(timeout time.Duration, networks ...Network) (Leftovers, time.Duration, error) {
	start := time.Now()
	for {
		leftovers, err := env.Leftovers(networks...)
		if err != nil || leftovers.Empty() || time.Since(start) >= timeout {
			return leftovers, time.Since(start), err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
