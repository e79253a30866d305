package framework

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of the CPU times in
// /proc/<pid>/stat. Linux fixes it at 100 on every architecture that Go
// supports, whatever the kernel's own HZ.
const clockTicksPerSecond = 100

// Usage is what a process has used so far, read from /proc.
type Usage struct {
	// RSS is the resident memory in bytes (VmRSS).
	RSS int64
	// PeakRSS is the highest resident memory since the start (VmHWM).
	PeakRSS int64
	// CPU is the user plus system time of the process's own threads.
	CPU time.Duration
	// ChildrenCPU is the user plus system time of the children that the
	// process has waited for, with their own waited-for children, such as
	// the CNI plugins that a runtime runs.
	ChildrenCPU time.Duration
}

// ProcessUsage reads the memory and CPU time of process pid. The CPU times
// have a resolution of 10ms.
func ProcessUsage(pid int) (Usage, error) {
	var usage Usage
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage, fmt.Errorf("failed to read memory of PID %d: %w", pid, err)
	}
	if usage.RSS, err = statusBytes(status, "VmRSS:"); err != nil {
		return usage, fmt.Errorf("failed to read memory of PID %d: %w", pid, err)
	}
	if usage.PeakRSS, err = statusBytes(status, "VmHWM:"); err != nil {
		return usage, fmt.Errorf("failed to read memory of PID %d: %w", pid, err)
	}

	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage, fmt.Errorf("failed to read CPU time of PID %d: %w", pid, err)
	}
	ticks, err := statTicks(stat)
	if err != nil {
		return usage, fmt.Errorf("failed to read CPU time of PID %d: %w", pid, err)
	}
	usage.CPU = ticksToDuration(ticks[0] + ticks[1])
	usage.ChildrenCPU = ticksToDuration(ticks[2] + ticks[3])
	return usage, nil
}

// Usage reads the memory and CPU time of the process.
func (p *Process) Usage() (Usage, error) {
	return ProcessUsage(p.PID())
}

// ContainerdUsage reads the memory and CPU time of the environment's
// containerd. Its launcher execs containerd in its own process, so the PID
// is containerd's.
func (env *Env) ContainerdUsage() (Usage, error) {
	if env.containerd == nil {
		return Usage{}, fmt.Errorf("containerd of %s is not running", env.Dir)
	}
	return env.containerd.Usage()
}

// statusBytes returns the value of a "Name:   123 kB" line of
// /proc/<pid>/status in bytes.
func statusBytes(status []byte, name string) (int64, error) {
	for _, line := range strings.Split(string(status), "\n") {
		value, found := strings.CutPrefix(line, name)
		if !found {
			continue
		}
		fields := strings.Fields(value)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("unexpected status line %q", line)
		}
		kilobytes, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unexpected status line %q: %w", line, err)
		}
		return kilobytes * 1024, nil
	}
	return 0, fmt.Errorf("status has no %s line", strings.TrimSuffix(name, ":"))
}

// statTicks returns utime, stime, cutime and cstime, fields 14 to 17 of
// /proc/<pid>/stat. The command name in field 2 is in parentheses and may
// contain spaces, so the fields are counted from the last ")".
func statTicks(stat []byte) ([4]int64, error) {
	var ticks [4]int64
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return ticks, fmt.Errorf("unexpected stat line %q", stat)
	}
	// After ")" come field 3 (state) and the following ones.
	fields := strings.Fields(string(stat[end+1:]))
	const first = 14 - 3
	if len(fields) < first+len(ticks) {
		return ticks, fmt.Errorf("stat line has %d fields after the command name, expected at least %d", len(fields), first+len(ticks))
	}
	for i := range ticks {
		value, err := strconv.ParseInt(fields[first+i], 10, 64)
		if err != nil {
			return ticks, fmt.Errorf("field %d of stat line: %w", 14+i, err)
		}
		ticks[i] = value
	}
	return ticks, nil
}

func ticksToDuration(ticks int64) time.Duration {
	return time.Duration(ticks) * time.Second / clockTicksPerSecond
}
