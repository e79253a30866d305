package config

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// NetworksAnnotation is the pod annotation that selects a pod's networks.
// Its value is a comma-separated list of `name` or `name@ifname`.
const NetworksAnnotation = "nri-cni.io/networks"

// maxIfNameLen is the longest Linux interface name in bytes (IFNAMSIZ - 1).
const maxIfNameLen = 15

// NetworkSelection is one requested network and, when given, its interface name.
type NetworkSelection struct {
	Network string
	IfName  string
}

// String returns the selection in annotation syntax.
func (s NetworkSelection) String() string {
	if s.IfName == "" {
		return s.Network
	}
	return s.Network + "@" + s.IfName
}

// MarshalJSON writes the selection in annotation syntax.
func (s NetworkSelection) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(s.String())), nil
}

// ParseSelection parses one `name` or `name@ifname` item.
func ParseSelection(item string) (NetworkSelection, error) {
	item = strings.TrimSpace(item)
	name, ifName, hasIf := strings.Cut(item, "@")
	if name == "" {
		return NetworkSelection{}, fmt.Errorf("network %q has no name: write name or name@ifname", item)
	}
	if strings.ContainsFunc(name, unicode.IsSpace) {
		return NetworkSelection{}, fmt.Errorf("network name %q contains white space", name)
	}
	if hasIf {
		if err := ValidateInterfaceName(ifName); err != nil {
			return NetworkSelection{}, fmt.Errorf("network %q: %w", item, err)
		}
	}
	return NetworkSelection{Network: name, IfName: ifName}, nil
}

// ParseAnnotation parses the value of the networks annotation. An empty value
// selects no network.
func ParseAnnotation(value string) ([]NetworkSelection, error) {
	var selections []NetworkSelection
	if strings.TrimSpace(value) == "" {
		return selections, nil
	}
	for _, item := range strings.Split(value, ",") {
		sel, err := ParseSelection(item)
		if err != nil {
			return nil, err
		}
		selections = append(selections, sel)
	}
	return selections, nil
}

// ValidateInterfaceName checks a name against the Linux rules for network
// interfaces and rejects the names that belong to the CRI and the kernel.
func ValidateInterfaceName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("interface name is empty")
	case len(name) > maxIfNameLen:
		return fmt.Errorf("interface name %q is longer than %d bytes", name, maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	case strings.ContainsAny(name, "/:@,") || strings.ContainsFunc(name, unicode.IsSpace):
		return fmt.Errorf("interface name %q contains '/', ':', '@', ',' or white space", name)
	case name == "eth0":
		return fmt.Errorf("interface name %q belongs to containerd's own CNI setup: pick another", name)
	case name == "lo":
		return fmt.Errorf("interface name %q is the loopback interface: pick another", name)
	}
	return nil
}

// AssignInterfaces returns the selections with every interface name filled
// in: prefix + position (1, 2, ...) unless the selection names one. It rejects
// a network or an interface name given twice.
func AssignInterfaces(selections []NetworkSelection, prefix string) ([]NetworkSelection, error) {
	assigned := make([]NetworkSelection, len(selections))
	networks := make(map[string]bool, len(selections))
	ifNames := make(map[string]string, len(selections))
	for i, sel := range selections {
		if networks[sel.Network] {
			return nil, fmt.Errorf("network %q is selected twice", sel.Network)
		}
		networks[sel.Network] = true

		automatic := sel.IfName == ""
		if automatic {
			sel.IfName = prefix + strconv.Itoa(i+1)
		}
		if err := ValidateInterfaceName(sel.IfName); err != nil {
			return nil, fmt.Errorf("network %q: %w", sel.Network, err)
		}
		if other, taken := ifNames[sel.IfName]; taken {
			if automatic {
				return nil, fmt.Errorf("interface name %q of network %q, which is number %d in "+
					"the list, is already given to network %q: name the interface with %s@ifname",
					sel.IfName, sel.Network, i+1, other, sel.Network)
			}
			return nil, fmt.Errorf("interface name %q is used by networks %q and %q",
				sel.IfName, other, sel.Network)
		}
		ifNames[sel.IfName] = sel.Network
		assigned[i] = sel
	}
	return assigned, nil
}
