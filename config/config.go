// Package config loads, defaults and validates the nri-cni configuration file.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// DefaultPath is the configuration file read when no --config flag is given.
const DefaultPath = "/etc/nri-cni/config.yaml"

// CRIConfDir is the conf dir of containerd's own CRI. nri-cni never reads it,
// because every network in it is already attached by the CRI as eth0.
const CRIConfDir = "/etc/cni/net.d"

// Config is the nri-cni configuration. The JSON names are the YAML keys.
type Config struct {
	NRISocket   string   `json:"nriSocket"`
	PluginName  string   `json:"pluginName"`
	PluginIndex string   `json:"pluginIndex"`
	CNIConfDir  string   `json:"cniConfDir"`
	CNIBinDirs  []string `json:"cniBinDirs"`
	CNICacheDir string   `json:"cniCacheDir"`
	StateDir    string   `json:"stateDir"`
	// DefaultNetworks lists the networks of a pod without the networks
	// annotation. Nil means every network in CNIConfDir, in file name order.
	DefaultNetworks []NetworkSelection `json:"defaultNetworks"`
	InterfacePrefix string             `json:"interfacePrefix"`
	CNITimeout      Duration           `json:"cniTimeout"`
	// AttachMode is AttachSync or AttachAsync.
	AttachMode string `json:"attachMode"`
	LogLevel   string `json:"logLevel"`
	// LogFile is a file the log is appended to instead of stderr.
	LogFile string `json:"logFile,omitempty"`
	// ContainerdSocket is containerd's API socket. Through it nri-cni
	// learns of each pod sandbox when the CRI creates its pause container
	// and starts the CNI ADD then, before RunPodSandbox. Empty turns that
	// off, and pods attach at RunPodSandbox.
	ContainerdSocket string `json:"containerdSocket"`
}

// Attach modes.
const (
	// AttachSync runs a pod's CNI ADDs inside RunPodSandbox: a failed ADD
	// fails the sandbox, at the cost of holding containerd's NRI lock.
	AttachSync = "sync"
	// AttachAsync runs them in the background from RunPodSandbox, and the
	// pod's first CreateContainer waits for them and reports their failure.
	AttachAsync = "async"
)

// Duration is a time.Duration written as a Go duration string such as "10s".
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// Default returns the configuration used for every key the file leaves out.
func Default() *Config {
	return &Config{
		NRISocket:       "/var/run/nri/nri.sock",
		PluginName:      "nri-cni",
		PluginIndex:     "10",
		CNIConfDir:      "/etc/nri-cni/net.d",
		CNIBinDirs:      []string{"/opt/cni/bin"},
		CNICacheDir:     "/var/lib/cni",
		StateDir:        "/var/lib/nri-cni",
		InterfacePrefix: "net",
		CNITimeout:      Duration(10 * time.Second),
		AttachMode:      AttachSync,
		LogLevel:        "info",

		ContainerdSocket: "/run/containerd/containerd.sock",
	}
}

// Load reads the configuration file at path. When the file does not exist
// and mayBeMissing is set, Load returns the defaults.
func Load(path string, mayBeMissing bool) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && mayBeMissing {
		return Default(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read config file: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes YAML (or JSON) configuration data on top of the defaults and
// validates the result. source names the data in error messages.
func Parse(data []byte, source string) (*Config, error) {
	cfg := Default()
	if len(bytes.TrimSpace(data)) == 0 {
		return cfg, nil
	}

	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("invalid config %s: not valid YAML: %w", source, err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(jsonData, &keys); err != nil {
		return nil, fmt.Errorf("invalid config %s: expected a map of keys at the top level", source)
	}

	for _, key := range sortedKeys(keys) {
		if string(keys[key]) == "null" && key != "defaultNetworks" {
			return nil, fmt.Errorf("invalid config %s: key %q has no value: give one, or remove "+
				"the key to use the default", source, key)
		}
		if err := cfg.decodeKey(key, keys[key]); err != nil {
			return nil, fmt.Errorf("invalid config %s: %w", source, err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid config %s: %w", source, err)
	}
	return cfg, nil
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeKey sets the field of one YAML key, with an error that names the key.
func (c *Config) decodeKey(key string, raw json.RawMessage) error {
	switch key {
	case "nriSocket":
		return decodeString(key, raw, &c.NRISocket)
	case "pluginName":
		return decodeString(key, raw, &c.PluginName)
	case "pluginIndex":
		return decodeIndex(raw, &c.PluginIndex)
	case "cniConfDir":
		return decodeString(key, raw, &c.CNIConfDir)
	case "cniBinDirs":
		return decodeStrings(key, raw, &c.CNIBinDirs)
	case "cniCacheDir":
		return decodeString(key, raw, &c.CNICacheDir)
	case "stateDir":
		return decodeString(key, raw, &c.StateDir)
	case "defaultNetworks":
		return decodeNetworks(raw, &c.DefaultNetworks)
	case "interfacePrefix":
		return decodeString(key, raw, &c.InterfacePrefix)
	case "cniTimeout":
		return decodeDuration(key, raw, &c.CNITimeout)
	case "attachMode":
		return decodeString(key, raw, &c.AttachMode)
	case "logLevel":
		return decodeString(key, raw, &c.LogLevel)
	case "logFile":
		return decodeString(key, raw, &c.LogFile)
	case "containerdSocket":
		return decodeString(key, raw, &c.ContainerdSocket)
	}
	return fmt.Errorf("unknown key %q: the keys are %s", key, strings.Join(knownKeys, ", "))
}

var knownKeys = []string{
	"nriSocket", "pluginName", "pluginIndex", "cniConfDir", "cniBinDirs", "cniCacheDir",
	"stateDir", "defaultNetworks", "interfacePrefix", "cniTimeout", "attachMode", "logLevel", "logFile",
	"containerdSocket",
}

func decodeString(key string, raw json.RawMessage, dst *string) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("key %q: value %s is not a string", key, raw)
	}
	return nil
}

func decodeStrings(key string, raw json.RawMessage, dst *[]string) error {
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("key %q: value %s is not a list of strings", key, raw)
	}
	return nil
}

// decodeIndex accepts the index as a number (10) or a string ("10").
func decodeIndex(raw json.RawMessage, dst *string) error {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		*dst = n.String()
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return fmt.Errorf("key %q: value %s is not a two-digit index such as 10", "pluginIndex", raw)
	}
	return nil
}

func decodeDuration(key string, raw json.RawMessage, dst *Duration) error {
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("key %q: value %s is not a duration string such as 10s", key, raw)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("key %q: value %q is not a duration such as 10s or 1m30s", key, s)
	}
	*dst = Duration(d)
	return nil
}

func decodeNetworks(raw json.RawMessage, dst *[]NetworkSelection) error {
	if string(raw) == "null" {
		// A key with no value, such as a list whose entries are all
		// commented out, means the same as no key: every network.
		*dst = nil
		return nil
	}
	var items []string
	if err := json.Unmarshal(raw, &items); err != nil {
		return fmt.Errorf("key %q: value %s is not a list of network names", "defaultNetworks", raw)
	}
	selections := make([]NetworkSelection, 0, len(items))
	for _, item := range items {
		sel, err := ParseSelection(item)
		if err != nil {
			return fmt.Errorf("key %q: %w", "defaultNetworks", err)
		}
		selections = append(selections, sel)
	}
	*dst = selections
	return nil
}

// Validate checks every value and returns an error naming the first invalid key.
func (c *Config) Validate() error {
	if err := c.validatePaths(); err != nil {
		return err
	}

	if c.PluginName == "" || strings.ContainsAny(c.PluginName, "/ \t\n") {
		return fmt.Errorf("key %q: value %q is not a valid plugin name: use letters, digits and dashes",
			"pluginName", c.PluginName)
	}

	if !isTwoDigits(c.PluginIndex) {
		return fmt.Errorf("key %q: value %q is not a two-digit index from 00 to 99 "+
			"(quote an index with a leading zero, as in \"05\", so YAML keeps the zero)",
			"pluginIndex", c.PluginIndex)
	}

	if err := c.validatePrefix(); err != nil {
		return err
	}

	if c.CNITimeout <= 0 {
		return fmt.Errorf("key %q: value %q must be greater than zero", "cniTimeout",
			time.Duration(c.CNITimeout))
	}

	if c.AttachMode != AttachSync && c.AttachMode != AttachAsync {
		return fmt.Errorf("key %q: value %q is not one of %s, %s", "attachMode", c.AttachMode,
			AttachSync, AttachAsync)
	}

	for _, p := range []struct{ key, value string }{
		{"logFile", c.LogFile}, {"containerdSocket", c.ContainerdSocket},
	} {
		if p.value == "" {
			continue
		}
		if err := checkAbsPath(p.key, p.value); err != nil {
			return err
		}
	}

	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("key %q: value %q is not one of debug, info, warn, error",
			"logLevel", c.LogLevel)
	}
	return c.validateDefaultNetworks()
}

// validatePaths checks the keys that name files and folders.
func (c *Config) validatePaths() error {
	paths := []struct {
		key, value string
	}{
		{"nriSocket", c.NRISocket},
		{"cniConfDir", c.CNIConfDir},
		{"cniCacheDir", c.CNICacheDir},
		{"stateDir", c.StateDir},
	}
	for _, p := range paths {
		if err := checkAbsPath(p.key, p.value); err != nil {
			return err
		}
	}
	if isCRIConfDir(c.CNIConfDir) {
		return fmt.Errorf("key %q: value %q is containerd's own CNI conf dir, whose networks "+
			"the CRI already attaches as eth0: use a folder of its own such as /etc/nri-cni/net.d",
			"cniConfDir", c.CNIConfDir)
	}
	if len(c.CNIBinDirs) == 0 {
		return fmt.Errorf("key %q: the list is empty: name at least one folder such as /opt/cni/bin",
			"cniBinDirs")
	}
	for _, dir := range c.CNIBinDirs {
		if err := checkAbsPath("cniBinDirs", dir); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) validatePrefix() error {
	// The longest generated name is the prefix followed by two digits.
	if err := ValidateInterfaceName(c.InterfacePrefix + "99"); err != nil || c.InterfacePrefix == "" {
		return fmt.Errorf("key %q: value %q cannot start an interface name: use at most %d "+
			"letters or digits, such as net", "interfacePrefix", c.InterfacePrefix, maxIfNameLen-2)
	}
	return nil
}

func (c *Config) validateDefaultNetworks() error {
	if _, err := AssignInterfaces(c.DefaultNetworks, c.InterfacePrefix); err != nil {
		return fmt.Errorf("key %q: %w", "defaultNetworks", err)
	}
	return nil
}

// isCRIConfDir reports whether dir is containerd's CNI conf dir, also
// through a symbolic link.
func isCRIConfDir(dir string) bool {
	if filepath.Clean(dir) == CRIConfDir {
		return true
	}
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	criResolved, err := filepath.EvalSymlinks(CRIConfDir)
	return err == nil && resolved == criResolved
}

func checkAbsPath(key, value string) error {
	if value == "" {
		return fmt.Errorf("key %q: the value is empty: give an absolute path", key)
	}
	if !filepath.IsAbs(value) {
		return fmt.Errorf("key %q: value %q is not an absolute path", key, value)
	}
	return nil
}

func isTwoDigits(s string) bool {
	if len(s) != 2 {
		return false
	}
	_, err := strconv.Atoi(s)
	return err == nil && s[0] != '-' && s[0] != '+'
}
