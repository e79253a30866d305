// Command record is a CNI plugin for e2e tests. It appends one JSON line per
// invocation to the file named by recordFile in its network config, so a test
// can list the CNI calls that a runtime made. It passes prevResult through,
// so it can sit anywhere in a plugin chain. Config keys besides the standard
// ones:
//
//	recordFile  file to append to (required)
//	failAdd     when true, ADD fails after it is recorded
//	failDel     when true, DEL fails after it is recorded
//	sleepAdd    Go duration to sleep in ADD before it returns, e.g. "2s"
//	sleepDel    Go duration to sleep in DEL before it returns
//
// It records the inode of the netns it is given and changes nothing in it.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// Call is one recorded invocation, written as one JSON line.
type Call struct {
	Command     string `json:"command"`
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifName"`
	Netns       string `json:"netns"`
	// NetnsInode is the inode of the namespace that Netns names, which is
	// the same whatever path names the namespace. It is 0 when Netns names
	// no file.
	NetnsInode uint64 `json:"netnsInode"`
	Network    string `json:"network"`
}

type netConf struct {
	types.PluginConf
	RecordFile string `json:"recordFile"`
	FailAdd    bool   `json:"failAdd"`
	FailDel    bool   `json:"failDel"`
	SleepAdd   string `json:"sleepAdd"`
	SleepDel   string `json:"sleepDel"`

	sleepAdd time.Duration
	sleepDel time.Duration
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    cmdAdd,
		Del:    cmdDel,
		Check:  cmdCheck,
		GC:     cmdGC,
		Status: cmdStatus,
	}, version.All, "record: a CNI plugin that records its calls for tests")
}

func parseConf(args *skel.CmdArgs) (*netConf, error) {
	conf := &netConf{}
	if err := json.Unmarshal(args.StdinData, conf); err != nil {
		return nil, fmt.Errorf("failed to parse network config: %w", err)
	}
	if conf.RecordFile == "" {
		return nil, fmt.Errorf("missing recordFile in network config %q: set it to the file that records calls", conf.Name)
	}
	var err error
	if conf.sleepAdd, err = parseDuration("sleepAdd", conf.SleepAdd); err != nil {
		return nil, err
	}
	if conf.sleepDel, err = parseDuration("sleepDel", conf.SleepDel); err != nil {
		return nil, err
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return nil, fmt.Errorf("failed to parse prevResult: %w", err)
	}
	return conf, nil
}

func parseDuration(key, value string) (time.Duration, error) {
	if value == "" {
		return 0, nil
	}
	duration, err := time.ParseDuration(value)
	if err != nil {
		return 0, fmt.Errorf("invalid %s %q: use a Go duration such as 2s: %w", key, value, err)
	}
	return duration, nil
}

// record appends the call with one write, which O_APPEND keeps whole when
// plugins of parallel calls append to the same file.
func record(conf *netConf, command string, args *skel.CmdArgs) error {
	line, err := json.Marshal(Call{
		Command:     command,
		ContainerID: args.ContainerID,
		IfName:      args.IfName,
		Netns:       args.Netns,
		NetnsInode:  inode(args.Netns),
		Network:     conf.Name,
	})
	if err != nil {
		return fmt.Errorf("failed to encode call: %w", err)
	}
	file, err := os.OpenFile(conf.RecordFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("failed to open record file %q: %w", conf.RecordFile, err)
	}
	if _, err := file.Write(append(line, '\n')); err != nil {
		file.Close()
		return fmt.Errorf("failed to append to record file %q: %w", conf.RecordFile, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("failed to close record file %q: %w", conf.RecordFile, err)
	}
	return nil
}

// inode returns the inode of the file at path, or 0 when there is none.
func inode(path string) uint64 {
	if path == "" {
		return 0
	}
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := parseConf(args)
	if err != nil {
		return err
	}
	if err := record(conf, "ADD", args); err != nil {
		return err
	}
	time.Sleep(conf.sleepAdd)
	if conf.FailAdd {
		return fmt.Errorf("record: ADD failed on request (failAdd) for container %s", args.ContainerID)
	}

	// A first plugin in a chain has no prevResult: return an empty result.
	result := conf.PrevResult
	if result == nil {
		result = &current.Result{CNIVersion: conf.CNIVersion}
	}
	return types.PrintResult(result, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args)
	if err != nil {
		return err
	}
	if err := record(conf, "DEL", args); err != nil {
		return err
	}
	time.Sleep(conf.sleepDel)
	if conf.FailDel {
		return fmt.Errorf("record: DEL failed on request (failDel) for container %s", args.ContainerID)
	}
	return nil
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, err := parseConf(args)
	if err != nil {
		return err
	}
	return record(conf, "CHECK", args)
}

func cmdGC(args *skel.CmdArgs) error {
	conf, err := parseConf(args)
	if err != nil {
		return err
	}
	return record(conf, "GC", args)
}

func cmdStatus(args *skel.CmdArgs) error {
	conf, err := parseConf(args)
	if err != nil {
		return err
	}
	return record(conf, "STATUS", args)
}
