package framework

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Leases returns the addresses that host-local has handed out in network,
// read from its data dir: one file per address, besides its lock and its
// last_reserved_ip.<range> files.
func (env *Env) Leases(network string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(env.IPAMDir, network))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list leases of network %s: %w", network, err)
	}
	var leases []string
	for _, entry := range entries {
		name := entry.Name()
		if name == "lock" || strings.HasPrefix(name, "last_reserved_ip.") {
			continue
		}
		leases = append(leases, name)
	}
	return leases, nil
}

// NetnsMounts returns the pinned network namespaces that containerd's CRI
// has mounted below the environment's state dir.
func (env *Env) NetnsMounts() ([]string, error) {
	mounts, err := mountsUnder(env.Dir)
	if err != nil {
		return nil, err
	}
	var netns []string
	for _, mount := range mounts {
		if mount.fsType == "nsfs" {
			netns = append(netns, mount.mountPoint)
		}
	}
	sort.Strings(netns)
	return netns, nil
}

// StateFiles returns nri-cni's per-sandbox state files.
func (env *Env) StateFiles() ([]string, error) {
	files, err := filepath.Glob(filepath.Join(env.StateDir, "sandboxes", "*.json"))
	if err != nil {
		return nil, fmt.Errorf("failed to list state files: %w", err)
	}
	return files, nil
}

// CacheEntries returns the attachments in nri-cni's libcni cache: libcni
// stores one result file per network, container and interface under
// <cache dir>/results.
func (env *Env) CacheEntries() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(env.CNICacheDir, "results"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list libcni cache entries: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, entry := range entries {
		names = append(names, entry.Name())
	}
	return names, nil
}

// Residue is what an environment counts after a pod is gone: every list is
// empty when nothing was left behind.
type Residue struct {
	Leases       []string
	BridgePorts  []string
	StateFiles   []string
	CacheEntries []string
}

// Empty reports whether nothing was left behind.
func (r Residue) Empty() bool {
	return len(r.Leases) == 0 && len(r.BridgePorts) == 0 && len(r.StateFiles) == 0 && len(r.CacheEntries) == 0
}

func (r Residue) String() string {
	return fmt.Sprintf("leases=%v bridgePorts=%v stateFiles=%v cacheEntries=%v", r.Leases, r.BridgePorts, r.StateFiles, r.CacheEntries)
}

// NetworkResidue collects what network and its bridge still hold, and what
// nri-cni still keeps in its state dir and libcni cache for any pod.
func (env *Env) NetworkResidue(network, bridge string) (Residue, error) {
	var residue Residue
	var err error
	if residue.Leases, err = env.Leases(network); err != nil {
		return residue, err
	}
	if residue.BridgePorts, err = BridgePorts(bridge); err != nil {
		return residue, err
	}
	if residue.StateFiles, err = env.StateFiles(); err != nil {
		return residue, err
	}
	if residue.CacheEntries, err = env.CacheEntries(); err != nil {
		return residue, err
	}
	return residue, nil
}
