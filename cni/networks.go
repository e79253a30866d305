// Package cni loads the nri-cni network configs and runs the CNI plugins.
package cni

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/utils"
	"github.com/containernetworking/cni/pkg/version"
)

// ConfExtensions are the file name endings read from the conf dir.
var ConfExtensions = []string{".conf", ".conflist", ".json"}

// ErrUnknownNetwork is returned for a network name no file in the conf dir defines.
var ErrUnknownNetwork = errors.New("unknown network")

// ErrInvalidNetwork is returned for a network whose file failed validation.
var ErrInvalidNetwork = errors.New("invalid network")

// Network is one network config list loaded from the conf dir.
type Network struct {
	Name string
	// Path is the file the network was loaded from.
	Path string
	// List is the parsed config; its Bytes are sent to the plugins.
	List *libcni.NetworkConfigList
}

// FileError is a network file that could not be loaded.
type FileError struct {
	Path string
	// Network is the name in the file, when the file got that far.
	Network string
	Err     error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("network file %s: %v", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

// Networks is an immutable snapshot of the conf dir.
type Networks struct {
	ordered []*Network
	byName  map[string]*Network
	invalid map[string]*FileError
	// slots lists one entry per file that is not a duplicate of an earlier
	// name, valid or not, in file name order: the positions that interface
	// names count, so a broken file does not rename the interfaces after it.
	slots []*Network
	// Errors lists every file that was not loaded, in file name order.
	Errors []*FileError
}

// LoadNetworks reads every network file in confDir, in file name order, and
// checks that each plugin binary exists in one of binDirs. A missing conf dir
// yields no networks. A bad file is reported in Errors and its network, when
// the name could be read, is marked invalid. The first file of a name wins.
func LoadNetworks(confDir string, binDirs []string) (*Networks, error) {
	files, err := libcni.ConfFiles(confDir, ConfExtensions)
	if err != nil {
		return nil, fmt.Errorf("failed to list network files in %s: %w", confDir, err)
	}

	n := &Networks{
		byName:  make(map[string]*Network),
		invalid: make(map[string]*FileError),
	}
	for _, path := range files {
		name, list, err := loadFile(path)
		if err == nil {
			err = CheckBinaries(list, binDirs)
		}
		n.add(path, name, list, err)
	}
	return n, nil
}

// add records the outcome of loading one file. The first file of a name
// decides whether the network is valid; later files of that name are
// reported and ignored.
func (n *Networks) add(path, name string, list *libcni.NetworkConfigList, err error) {
	if first := n.firstPath(name); first != "" {
		n.Errors = append(n.Errors, &FileError{Path: path, Network: name,
			Err: fmt.Errorf("network %q is already defined by %s: this file is ignored", name, first)})
		return
	}
	if err != nil {
		fe := &FileError{Path: path, Network: name, Err: err}
		if name != "" {
			n.invalid[name] = fe
		}
		n.Errors = append(n.Errors, fe)
		n.slots = append(n.slots, nil)
		return
	}
	nw := &Network{Name: name, Path: path, List: list}
	n.byName[name] = nw
	n.ordered = append(n.ordered, nw)
	n.slots = append(n.slots, nw)
}

// firstPath returns the file that defined a name first, valid or not.
func (n *Networks) firstPath(name string) string {
	if name == "" {
		return ""
	}
	if nw, ok := n.byName[name]; ok {
		return nw.Path
	}
	if fe, ok := n.invalid[name]; ok {
		return fe.Path
	}
	return ""
}

// loadFile parses a config list, or a single plugin config, into a config
// list. A file holds a list when it has a "plugins" key, whatever its file
// name ending. The network name is returned whenever the file got as far as
// one, also with an error, so that the network is reported as invalid.
func loadFile(path string) (string, *libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	var head struct {
		Name    *string          `json:"name"`
		Plugins *json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return "", nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if head.Name == nil || *head.Name == "" {
		return "", nil, fmt.Errorf("the config has no name")
	}
	name := *head.Name
	if err := utils.ValidateNetworkName(name); err != nil {
		return "", nil, fmt.Errorf("invalid network name %q: use letters, digits, '_', '.' and '-', "+
			"starting with a letter or digit", name)
	}

	var list *libcni.NetworkConfigList
	if head.Plugins != nil || strings.HasSuffix(path, ".conflist") {
		list, err = libcni.ConfListFromBytes(data)
	} else {
		// libcni marks the single-plugin format deprecated, but CNI plugins
		// and users still ship .conf files, so nri-cni keeps reading them.
		var conf *libcni.PluginConfig
		conf, err = libcni.ConfFromBytes(data)
		if err == nil {
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return name, nil, err
	}
	if len(list.Plugins) == 0 {
		return name, nil, fmt.Errorf("network %q has no plugins", name)
	}
	if list.CNIVersion != "" && !slices.Contains(version.All.SupportedVersions(), list.CNIVersion) {
		return name, nil, fmt.Errorf("network %q has cniVersion %q, which libcni does not support: use one of %s",
			name, list.CNIVersion, strings.Join(version.All.SupportedVersions(), ", "))
	}
	for i, p := range list.Plugins {
		if p.Network.Type == "" {
			return name, nil, fmt.Errorf("plugin %d of network %q has no type", i, name)
		}
	}
	return name, list, nil
}

// CheckBinaries checks that the binary of every plugin of a list, and of
// every IPAM plugin they delegate to, is in binDirs. A missing IPAM binary
// would fail every ADD and also the DEL of the rollback.
func CheckBinaries(list *libcni.NetworkConfigList, binDirs []string) error {
	for _, p := range list.Plugins {
		for _, binary := range []string{p.Network.Type, p.Network.IPAM.Type} {
			if binary == "" {
				continue
			}
			if _, err := invoke.FindInPath(binary, binDirs); err != nil {
				return fmt.Errorf("plugin binary %q of network %q not found in %s: install it there "+
					"or add its folder to cniBinDirs", binary, list.Name, strings.Join(binDirs, ", "))
			}
		}
	}
	return nil
}

// Get returns the network of a name, or an error wrapping ErrUnknownNetwork or
// ErrInvalidNetwork with the reason the network is unavailable.
func (n *Networks) Get(name string) (*Network, error) {
	if nw, ok := n.byName[name]; ok {
		return nw, nil
	}
	if fe, ok := n.invalid[name]; ok {
		return nil, fmt.Errorf("%w %q: %v", ErrInvalidNetwork, name, fe)
	}
	known := strings.Join(n.Names(), ", ")
	if known == "" {
		known = "none"
	}
	err := fmt.Errorf("%w %q: no file in the conf dir defines it (known networks: %s)",
		ErrUnknownNetwork, name, known)
	if len(n.Errors) > 0 {
		paths := make([]string, len(n.Errors))
		for i, fe := range n.Errors {
			paths[i] = filepath.Base(fe.Path)
		}
		err = fmt.Errorf("%w; these files failed to load, see the log for why: %s", err,
			strings.Join(paths, ", "))
	}
	return nil, err
}

// All returns the valid networks in file name order.
func (n *Networks) All() []*Network {
	return n.ordered
}

// Positions returns the valid networks with their position among the
// network files, counted from 1. A file that failed to load keeps its
// position, so the networks after it keep their interface names.
func (n *Networks) Positions() map[*Network]int {
	positions := make(map[*Network]int, len(n.ordered))
	for i, nw := range n.slots {
		if nw != nil {
			positions[nw] = i + 1
		}
	}
	return positions
}

// Names returns the names of the valid networks in file name order.
func (n *Networks) Names() []string {
	names := make([]string, len(n.ordered))
	for i, nw := range n.ordered {
		names[i] = nw.Name
	}
	return names
}

// BaseName returns the file name of a network, for logs.
func (nw *Network) BaseName() string {
	return filepath.Base(nw.Path)
}
