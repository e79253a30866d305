package framework

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/yaml"
)

// NRICNIConfig is the nri-cni config file that StartNRICNI writes.
// Env.NRICNIConfig fills in the paths that the environment owns. Other fields
// are left out of the file when they are empty, so nri-cni uses its defaults.
type NRICNIConfig struct {
	NRISocket       string   `json:"nriSocket"`
	PluginName      string   `json:"pluginName,omitempty"`
	PluginIndex     string   `json:"pluginIndex,omitempty"`
	CNIConfDir      string   `json:"cniConfDir"`
	CNIBinDirs      []string `json:"cniBinDirs"`
	CNICacheDir     string   `json:"cniCacheDir"`
	StateDir        string   `json:"stateDir"`
	DefaultNetworks []string `json:"defaultNetworks,omitempty"`
	InterfacePrefix string   `json:"interfacePrefix,omitempty"`
	CNITimeout      string   `json:"cniTimeout,omitempty"`
	AttachMode      string   `json:"attachMode,omitempty"`
	LogLevel        string   `json:"logLevel,omitempty"`
	// ContainerdSocket is always written, so that an empty value turns
	// the early attach off instead of aiming at the default socket.
	ContainerdSocket string `json:"containerdSocket"`
}

// NRICNIConfig returns the config that connects nri-cni to this environment,
// with debug logs.
func (env *Env) NRICNIConfig() NRICNIConfig {
	return NRICNIConfig{
		NRISocket:   env.NRISocket,
		CNIConfDir:  env.NetworkDir,
		CNIBinDirs:  []string{env.Paths.CNIBin, env.Paths.TestCNIBin},
		CNICacheDir: env.CNICacheDir,
		StateDir:    env.StateDir,
		LogLevel:    "debug",

		ContainerdSocket: env.ContainerdSocket,
	}
}

// WriteNRICNIConfig writes content as an nri-cni config file and returns its
// path.
func (env *Env) WriteNRICNIConfig(content []byte) (string, error) {
	sequence := env.nextSequence()
	path := filepath.Join(env.Dir, "nri-cni", fmt.Sprintf("config-%d.yaml", sequence))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("failed to create nri-cni config folder: %w", err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		return "", fmt.Errorf("failed to write nri-cni config: %w", err)
	}
	return path, nil
}

func (env *Env) checkNRICNIBinary() {
	env.t.Helper()
	if _, err := os.Stat(env.Paths.NRICNI); err != nil {
		env.t.Skipf("%s is missing: run make build", env.Paths.NRICNI)
	}
}

// StartNRICNI writes config, starts bin/nri-cni with it and waits until it
// logs that it connected to containerd. It fails the test when nri-cni exits
// or does not connect within 10s. Cleanup stops it.
func (env *Env) StartNRICNI(config NRICNIConfig) *Process {
	env.t.Helper()
	env.checkNRICNIBinary()
	content, err := yaml.Marshal(config)
	if err != nil {
		env.t.Fatalf("failed to encode nri-cni config: %v", err)
	}
	configPath, err := env.WriteNRICNIConfig(content)
	if err != nil {
		env.t.Fatalf("%v", err)
	}

	sequence := env.nextSequence()
	logPath := filepath.Join(env.Dir, "logs", fmt.Sprintf("nri-cni-%d.log", sequence))
	start := time.Now()
	process, err := startProcess("nri-cni", logPath, env.nriCNIEnviron(), env.Paths.NRICNI, "--config", configPath)
	if err != nil {
		env.t.Fatalf("%v", err)
	}
	env.addProcess(process)

	deadline := time.Now().Add(10 * time.Second)
	for {
		if entries := LogEntries(process.Log(), "connected"); len(entries) > 0 {
			break
		}
		if process.Exited() {
			env.t.Fatalf("nri-cni exited before it connected:\n%s", process.logTail(30))
		}
		if time.Now().After(deadline) {
			env.t.Fatalf("nri-cni did not log \"connected\" within 10s:\n%s", process.logTail(30))
		}
		time.Sleep(20 * time.Millisecond)
	}
	env.t.Logf("nri-cni (PID %d) connected in %s, log %s", process.PID(), time.Since(start).Round(time.Millisecond), logPath)
	return process
}

// RunNRICNI runs bin/nri-cni with the config file at configPath and returns
// its exit code and what it wrote. It fails the test when nri-cni still runs
// after timeout.
func (env *Env) RunNRICNI(configPath string, timeout time.Duration) (int, string) {
	env.t.Helper()
	env.checkNRICNIBinary()
	sequence := env.nextSequence()
	logPath := filepath.Join(env.Dir, "logs", fmt.Sprintf("nri-cni-%d.log", sequence))
	process, err := startProcess("nri-cni", logPath, env.nriCNIEnviron(), env.Paths.NRICNI, "--config", configPath)
	if err != nil {
		env.t.Fatalf("%v", err)
	}
	env.addProcess(process)
	code, err := process.Wait(timeout)
	if err != nil {
		env.t.Fatalf("%v", err)
	}
	return code, process.Log()
}

// nriCNIEnviron is the environment of nri-cni: a PATH for the CNI plugins'
// own commands (iptables, nft), and nothing else.
func (env *Env) nriCNIEnviron() []string {
	return []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
}

// LogEntry is one JSON line of a zap log.
type LogEntry map[string]any

// String returns the value of field key, or "" when it is missing.
func (e LogEntry) String(key string) string {
	value, ok := e[key]
	if !ok {
		return ""
	}
	if text, ok := value.(string); ok {
		return text
	}
	return fmt.Sprint(value)
}

// LogEntries returns the JSON log lines of log whose "msg" is message. Lines
// that are not JSON are skipped.
func LogEntries(log, message string) []LogEntry {
	var entries []LogEntry
	scanner := bufio.NewScanner(strings.NewReader(log))
	scanner.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var entry LogEntry
		if err := json.Unmarshal([]byte(line), &entry); err != nil {
			continue
		}
		if entry.String("msg") == message {
			entries = append(entries, entry)
		}
	}
	return entries
}

// Network describes a bridge network for nri-cni's conf dir: a bridge with
// the gateway address, host-local IPAM with its leases in the environment's
// IPAM folder, no IP masquerading and no routes.
type Network struct {
	Name   string
	Bridge string
	Subnet netip.Prefix
	// RangeStart and RangeEnd limit the addresses that host-local hands out.
	// Zero values mean the whole subnet.
	RangeStart netip.Addr
	RangeEnd   netip.Addr
	// Record adds the record test plugin after the bridge in the chain.
	Record *RecordPlugin
	// CNIVersion is the list's cniVersion. Empty means 1.0.0. With 1.1.0 or
	// newer, libcni also sends GC to the plugins of the list.
	CNIVersion string
}

// RecordPlugin configures the record test plugin in a chain.
type RecordPlugin struct {
	// File is where the plugin appends its calls, made by Env.RecordFile.
	File     string
	FailAdd  bool
	FailDel  bool
	SleepAdd time.Duration
	SleepDel time.Duration
}

// Conflist returns the network as a CNI network configuration list.
func (n Network) Conflist(ipamDir string) ([]byte, error) {
	ipRange := map[string]any{"subnet": n.Subnet.String()}
	if n.RangeStart.IsValid() {
		ipRange["rangeStart"] = n.RangeStart.String()
	}
	if n.RangeEnd.IsValid() {
		ipRange["rangeEnd"] = n.RangeEnd.String()
	}
	plugins := []map[string]any{{
		"type":      "bridge",
		"bridge":    n.Bridge,
		"isGateway": true,
		"ipMasq":    false,
		"ipam": map[string]any{
			"type":    "host-local",
			"dataDir": ipamDir,
			"ranges":  [][]map[string]any{{ipRange}},
		},
	}}
	if n.Record != nil {
		record := map[string]any{"type": "record", "recordFile": n.Record.File}
		if n.Record.FailAdd {
			record["failAdd"] = true
		}
		if n.Record.FailDel {
			record["failDel"] = true
		}
		if n.Record.SleepAdd > 0 {
			record["sleepAdd"] = n.Record.SleepAdd.String()
		}
		if n.Record.SleepDel > 0 {
			record["sleepDel"] = n.Record.SleepDel.String()
		}
		plugins = append(plugins, record)
	}
	cniVersion := n.CNIVersion
	if cniVersion == "" {
		cniVersion = "1.0.0"
	}
	return json.MarshalIndent(map[string]any{
		"cniVersion": cniVersion,
		"name":       n.Name,
		"plugins":    plugins,
	}, "", "  ")
}

// WriteNetwork writes network into nri-cni's conf dir as <name>.conflist and
// returns the file's path. Bridge and Subnet must come from Env.Bridge and
// Env.Subnet, so cleanup finds them.
func (env *Env) WriteNetwork(network Network) string {
	env.t.Helper()
	if !strings.HasPrefix(network.Bridge, env.block.linkPrefix()) {
		env.t.Fatalf("bridge %q of network %s is not from Env.Bridge: cleanup would not delete it", network.Bridge, network.Name)
	}
	if !env.block.prefix().Contains(network.Subnet.Addr()) {
		env.t.Fatalf("subnet %s of network %s is not from Env.Subnet", network.Subnet, network.Name)
	}
	content, err := network.Conflist(env.IPAMDir)
	if err != nil {
		env.t.Fatalf("failed to encode network %s: %v", network.Name, err)
	}
	return env.WriteNetworkFile(network.Name+".conflist", content)
}

// WriteNetworkFile writes content as fileName into nri-cni's conf dir and
// returns the file's path.
func (env *Env) WriteNetworkFile(fileName string, content []byte) string {
	env.t.Helper()
	path := filepath.Join(env.NetworkDir, fileName)
	if err := os.WriteFile(path, content, 0o644); err != nil {
		env.t.Fatalf("failed to write network file: %v", err)
	}
	return path
}

// RecordFile returns a new empty file for the record plugin's calls.
func (env *Env) RecordFile(name string) string {
	env.t.Helper()
	path := filepath.Join(env.Dir, "records", name+".jsonl")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		env.t.Fatalf("failed to create records folder: %v", err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		env.t.Fatalf("failed to create record file: %v", err)
	}
	return path
}

// RecordedCall is one line that the record plugin appended.
type RecordedCall struct {
	Command     string `json:"command"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	// NetnsInode is the inode of the namespace that Netns named during the
	// call, 0 when it named none.
	NetnsInode uint64 `json:"netnsInode"`
	Network    string `json:"network"`
}

// RecordedCalls returns the calls in a record file.
func RecordedCalls(path string) ([]RecordedCall, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read record file: %w", err)
	}
	var calls []RecordedCall
	for _, line := range strings.Split(strings.TrimSpace(string(content)), "\n") {
		if line == "" {
			continue
		}
		var call RecordedCall
		if err := json.Unmarshal([]byte(line), &call); err != nil {
			return nil, fmt.Errorf("failed to parse record line %q: %w", line, err)
		}
		calls = append(calls, call)
	}
	return calls, nil
}

var recordPlugin struct {
	once sync.Once
	err  error
}

// BuildRecordPlugin builds the record test plugin into Paths.TestCNIBin once
// per process, so a test run always uses the plugin's current source.
func BuildRecordPlugin(paths Paths) error {
	recordPlugin.once.Do(func() {
		if err := os.MkdirAll(paths.TestCNIBin, 0o755); err != nil {
			recordPlugin.err = fmt.Errorf("failed to create %s: %w", paths.TestCNIBin, err)
			return
		}
		// Build next to the target and rename, so a parallel test binary never
		// runs a half-written plugin.
		temporary := filepath.Join(paths.TestCNIBin, fmt.Sprintf(".record-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", temporary, modulePath+"/e2e/cniplugins/record")
		cmd.Dir = paths.Root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if output, err := cmd.CombinedOutput(); err != nil {
			os.Remove(temporary)
			recordPlugin.err = fmt.Errorf("failed to build the record CNI plugin: %w: %s", err, output)
			return
		}
		if err := os.Rename(temporary, filepath.Join(paths.TestCNIBin, "record")); err != nil {
			recordPlugin.err = fmt.Errorf("failed to install the record CNI plugin: %w", err)
		}
	})
	return recordPlugin.err
}
