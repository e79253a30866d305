// Package floor measures the cheapest possible attach of a network: a libcni
// ADD and DEL of its config list into a fresh network namespace, with no
// runtime around them. No runtime can attach the same network faster.
package floor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/nri-cni/nri-cni/bench/netns"
)

// IfName is the interface name of the floor's attachments, the one nri-cni
// gives the first network of a pod.
const IfName = "net1"

// Floor runs libcni ADD and DEL of one network.
type Floor struct {
	cni      *libcni.CNIConfig
	list     *libcni.NetworkConfigList
	binDirs  []string
	netnsDir string
}

// New returns a Floor for the network config list conflist, with plugins
// from binDirs, the libcni cache in cacheDir and the namespaces it creates
// pinned in netnsDir.
func New(conflist []byte, binDirs []string, cacheDir, netnsDir string) (*Floor, error) {
	list, err := libcni.ConfListFromBytes(conflist)
	if err != nil {
		return nil, fmt.Errorf("failed to parse floor network: %w", err)
	}
	exec := &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: os.Stderr},
		PluginDecoder: version.PluginDecoder{},
	}
	return &Floor{
		cni:      libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, exec),
		list:     list,
		binDirs:  binDirs,
		netnsDir: netnsDir,
	}, nil
}

// Attachment is one ADD of the floor network.
type Attachment struct {
	id string
	ns *netns.Namespace
}

// Add creates a fresh namespace, which is not timed, and returns the time of
// the libcni ADD into it.
func (f *Floor) Add(ctx context.Context, id string) (*Attachment, time.Duration, error) {
	ns, err := netns.Create(filepath.Join(f.netnsDir, id), false)
	if err != nil {
		return nil, 0, err
	}
	attachment := &Attachment{id: id, ns: ns}
	start := time.Now()
	_, err = f.cni.AddNetworkList(ctx, f.list, f.runtimeConf(attachment))
	took := time.Since(start)
	if err != nil {
		_ = f.cni.DelNetworkList(ctx, f.list, f.runtimeConf(attachment))
		_ = ns.Delete()
		return nil, 0, fmt.Errorf("failed to add floor network %s to %s: %w", f.list.Name, ns.Path, err)
	}
	return attachment, took, nil
}

// Del returns the time of the libcni DEL of an attachment and then deletes
// its namespace, which is not timed.
func (f *Floor) Del(ctx context.Context, attachment *Attachment) (time.Duration, error) {
	start := time.Now()
	err := f.cni.DelNetworkList(ctx, f.list, f.runtimeConf(attachment))
	took := time.Since(start)
	if nsErr := attachment.ns.Delete(); err == nil {
		err = nsErr
	}
	if err != nil {
		return 0, fmt.Errorf("failed to delete floor network %s from %s: %w", f.list.Name, attachment.ns.Path, err)
	}
	return took, nil
}

func (f *Floor) runtimeConf(attachment *Attachment) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: attachment.id,
		NetNS:       attachment.ns.Path,
		IfName:      IfName,
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", attachment.id}},
	}
}

// ExecCost returns the time of one run of each plugin of the network with
// CNI_COMMAND=VERSION: the price of starting the plugin's binary, which every
// ADD and DEL pays once per plugin, and once more for its IPAM plugin.
func (f *Floor) ExecCost(ctx context.Context) (map[string]time.Duration, error) {
	costs := map[string]time.Duration{}
	types := []string{}
	for _, plugin := range f.list.Plugins {
		types = append(types, plugin.Network.Type)
		if plugin.Network.IPAM.Type != "" {
			types = append(types, plugin.Network.IPAM.Type)
		}
	}
	raw := &invoke.RawExec{Stderr: os.Stderr}
	stdin := []byte(fmt.Sprintf(`{"cniVersion":%q}`, f.list.CNIVersion))
	for _, pluginType := range types {
		path, err := invoke.FindInPath(pluginType, f.binDirs)
		if err != nil {
			return nil, fmt.Errorf("failed to find CNI plugin %s in %s: %w", pluginType, strings.Join(f.binDirs, ", "), err)
		}
		start := time.Now()
		if _, err := raw.ExecPlugin(ctx, path, stdin, []string{"CNI_COMMAND=VERSION"}); err != nil {
			return nil, fmt.Errorf("failed to run %s VERSION: %w", path, err)
		}
		costs[pluginType] = time.Since(start)
	}
	return costs, nil
}
