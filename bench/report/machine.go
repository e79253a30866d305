package report

import (
	"bufio"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Machine describes where a report was made.
type Machine struct {
	Cores     int     `json:"cores"`
	CPUModel  string  `json:"cpuModel"`
	MemoryGiB float64 `json:"memoryGiB"`
	Kernel    string  `json:"kernel"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
	// Versions are those of the programs the run used, read from their
	// build information.
	Versions map[string]string `json:"versions"`
	// LoadStart and LoadEnd are the 1-minute load averages at the start and
	// end of the run; other work on the machine raises them.
	LoadStart float64 `json:"loadStart"`
	LoadEnd   float64 `json:"loadEnd"`
}

// Binaries are the programs whose versions a Machine records.
type Binaries struct {
	Containerd string
	Runc       string
	Crictl     string
	Bridge     string
	NRICNI     string
	// Repository is the nri-cni checkout, for its commit.
	Repository string
}

// CollectMachine describes this machine and the versions of binaries.
func CollectMachine(binaries Binaries) Machine {
	m := Machine{
		Cores:     runtime.NumCPU(),
		CPUModel:  cpuModel(),
		MemoryGiB: memoryGiB(),
		Kernel:    kernelRelease(),
		OS:        osRelease(),
		Go:        runtime.Version(),
		LoadStart: LoadAverage(),
		Versions:  map[string]string{},
	}
	modules := []struct{ name, binary, module string }{
		{"containerd", binaries.Containerd, "github.com/containerd/containerd/v2"},
		{"nri (in containerd)", binaries.Containerd, "github.com/containerd/nri"},
		{"runc", binaries.Runc, "github.com/opencontainers/runc"},
		{"crictl", binaries.Crictl, "sigs.k8s.io/cri-tools"},
		{"cni plugins", binaries.Bridge, "github.com/containernetworking/plugins"},
		{"libcni (in nri-cni)", binaries.NRICNI, "github.com/containernetworking/cni"},
		{"nri (in nri-cni)", binaries.NRICNI, "github.com/containerd/nri"},
	}
	for _, module := range modules {
		m.Versions[module.name] = moduleVersion(module.binary, module.module)
	}
	m.Versions["nri-cni"] = gitDescribe(binaries.Repository)
	return m
}

// moduleVersion returns the version of module in the build information of
// binary, or "unknown".
func moduleVersion(binary, module string) string {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return "unknown"
	}
	if info.Main.Path == module {
		return info.Main.Version
	}
	for _, dep := range info.Deps {
		if dep.Path == module {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "unknown"
}

func gitDescribe(repository string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = repository
	output, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(output))
}

// LoadAverage returns the 1-minute load average, or 0 when it cannot be read.
func LoadAverage() float64 {
	content, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(content))
	if len(fields) == 0 {
		return 0
	}
	load, _ := strconv.ParseFloat(fields[0], 64)
	return load
}

func cpuModel() string {
	return firstValue("/proc/cpuinfo", "model name")
}

func memoryGiB() float64 {
	value := firstValue("/proc/meminfo", "MemTotal")
	kilobytes, err := strconv.ParseFloat(strings.TrimSuffix(value, " kB"), 64)
	if err != nil {
		return 0
	}
	return float64(int(kilobytes/(1<<20)*10+0.5)) / 10
}

// firstValue returns the value of the first "key : value" line of path.
func firstValue(path, key string) string {
	file, err := os.Open(path)
	if err != nil {
		return "unknown"
	}
	defer file.Close()
	scanner := bufio.NewScanner(file)
	for scanner.Scan() {
		name, value, found := strings.Cut(scanner.Text(), ":")
		if found && strings.TrimSpace(name) == key {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
}

func kernelRelease() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(uts.Release[:])
}

func osRelease() string {
	content, err := os.ReadFile(filepath.Join("/etc", "os-release"))
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(content), "\n") {
		if value, found := strings.CutPrefix(line, "PRETTY_NAME="); found {
			return strings.Trim(value, `"`)
		}
	}
	return "unknown"
}
