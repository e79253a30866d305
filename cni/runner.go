package cni

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Runner runs CNI operations for one network config list.
type Runner interface {
	// Add attaches the network and returns the CNI result.
	Add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error)
	// Del detaches the network. It goes on past a failing plugin, so that the
	// IPAM plugin frees its lease even when a plugin before it fails.
	Del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error
	// GC deletes the cached attachments of the network that are not in valid,
	// and runs GC of plugins of CNI 1.1 or newer, which frees what they hold for other attachments.
	GC(ctx context.Context, list *libcni.NetworkConfigList, valid []types.GCAttachment) error
}

// LibCNI is the Runner on libcni.
type LibCNI struct {
	cni      *libcni.CNIConfig
	cacheDir string
}

var _ Runner = (*LibCNI)(nil)

// NewLibCNI returns a Runner that finds plugins in binDirs and keeps the
// libcni cache of results and configs in cacheDir.
func NewLibCNI(binDirs []string, cacheDir string) *LibCNI {
	exec := &invoke.DefaultExec{
		RawExec:       &invoke.RawExec{Stderr: os.Stderr},
		PluginDecoder: version.PluginDecoder{},
	}
	return &LibCNI{cni: libcni.NewCNIConfigWithCacheDir(binDirs, cacheDir, exec), cacheDir: cacheDir}
}

// Add runs ADD for each plugin of the list in order.
func (r *LibCNI) Add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	return r.cni.AddNetworkList(ctx, list, rt)
}

// Del runs DEL for each plugin of the list in reverse order. libcni stops at
// the first failing plugin; when that happens, Del runs every plugin on its
// own, newest first, and returns the failures joined. Each of those calls
// gets the cached ADD result as prevResult, and the cache entry stays while
// any plugin still fails, so a later retry gets it too.
func (r *LibCNI) Del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	cachePath := r.cachePath(list.Name, rt)
	cached, _ := os.ReadFile(cachePath)

	err := r.cni.DelNetworkList(ctx, list, rt)
	if err == nil || len(list.Plugins) < 2 || ctx.Err() != nil {
		return err
	}

	var errs []error
	for i := len(list.Plugins) - 1; i >= 0; i-- {
		// A successful DelNetworkList removes the cache entry: put it back
		// so the next plugin gets the same prevResult.
		if cached != nil {
			if werr := os.WriteFile(cachePath, cached, 0o600); werr != nil {
				errs = append(errs, fmt.Errorf("failed to restore cached result: %w", werr))
			}
		}
		single := &libcni.NetworkConfigList{
			Name:       list.Name,
			CNIVersion: list.CNIVersion,
			Plugins:    []*libcni.PluginConfig{list.Plugins[i]},
			Bytes:      list.Bytes,
		}
		if perr := r.cni.DelNetworkList(ctx, single, rt); perr != nil {
			errs = append(errs, perr)
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(cachePath)
		return nil
	}
	if cached != nil {
		_ = os.WriteFile(cachePath, cached, 0o600)
	}
	return fmt.Errorf("failed to delete network %q: %w", list.Name, errors.Join(errs...))
}

// cachePath is the file in which libcni keeps the result and config of one
// attachment: results/<network>-<container id>-<interface> in the cache dir.
func (r *LibCNI) cachePath(network string, rt *libcni.RuntimeConf) string {
	return filepath.Join(r.cacheDir, "results", network+"-"+rt.ContainerID+"-"+rt.IfName)
}

// GC runs libcni's garbage collection of the network.
func (r *LibCNI) GC(ctx context.Context, list *libcni.NetworkConfigList, valid []types.GCAttachment) error {
	return r.cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid})
}
