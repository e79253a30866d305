// Package report holds the results of one benchmark run, derives the ratios
// and targets from them, and writes them as JSON and Markdown.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/nri-cni/nri-cni/bench/hookpath"
	"github.com/nri-cni/nri-cni/bench/stats"
)

// Report is one run of the benchmark.
type Report struct {
	// Command is the command that made the report, as a reader types it.
	Command    string     `json:"command"`
	Started    time.Time  `json:"started"`
	DurationS  float64    `json:"durationSeconds"`
	Machine    Machine    `json:"machine"`
	Parameters Parameters `json:"parameters"`
	// Setups are (a), (b), (c-sync), (c-async) and (d), in that order.
	Setups   []Setup          `json:"setups"`
	Floor    Floor            `json:"floor"`
	Usage    []Usage          `json:"nriCniUsage"`
	HookPath *hookpath.Result `json:"hookPath,omitempty"`
	// Checks are the correctness checks that passed during the run.
	Checks []string `json:"checks"`
	// Errors are nri-cni's error log lines, empty in a clean run.
	Errors  []string `json:"nriCniErrors"`
	Ratios  []Ratio  `json:"ratios"`
	Splits  []Split  `json:"splits"`
	Targets []Target `json:"targets"`
}

// Parameters are the sizes of the run.
type Parameters struct {
	Pods           int    `json:"pods"`
	Rounds         int    `json:"rounds"`
	BurstPods      int    `json:"burstPods"`
	BurstRounds    int    `json:"burstRounds"`
	MemoryPods     int    `json:"memoryPods"`
	HookIterations int    `json:"hookIterations"`
	Network        string `json:"network"`
}

// Setup is the results of one setup.
type Setup struct {
	Key         string     `json:"key"`
	Label       string     `json:"label"`
	Description string     `json:"description"`
	Sequential  Sequential `json:"sequential"`
	Burst       Burst      `json:"burst"`
	// ContainerdCPUPerPodMs is containerd's user plus system time per pod
	// of the sequential phase, with the CNI plugins it ran.
	ContainerdCPUPerPodMs float64 `json:"containerdCpuPerPodMs"`
}

// Sequential holds the latencies of pods started and removed one after
// another.
type Sequential struct {
	Runp           Distribution `json:"runp"`
	FirstContainer Distribution `json:"firstContainer"`
	// CreateStart is FirstContainer minus Runp of each pod: `crictl create`
	// and `crictl start`.
	CreateStart Distribution `json:"createStart"`
	Teardown    Distribution `json:"teardown"`
}

// Distribution is a set of samples in milliseconds with its summary.
type Distribution struct {
	stats.Summary
	SamplesMs []float64 `json:"samplesMs"`
}

// NewDistribution summarizes samples, rounded to 10 µs in the JSON.
func NewDistribution(samples []float64) Distribution {
	rounded := make([]float64, len(samples))
	for i, sample := range samples {
		rounded[i] = float64(int64(sample*100+0.5)) / 100
	}
	return Distribution{Summary: stats.Summarize(samples), SamplesMs: rounded}
}

// Burst holds the wall times in seconds of each round's bursts of pods
// started or removed at once.
type Burst struct {
	// Pods is the size of each burst, 0 for a setup without bursts.
	Pods int `json:"pods"`
	// RunpS is until every `crictl runp` returned, AttachedS until X was
	// attached to every pod, which in async mode comes after runp.
	RunpS     []float64 `json:"runpSeconds"`
	AttachedS []float64 `json:"attachedSeconds"`
	RemovalS  []float64 `json:"removalSeconds"`
	// RunpContainerS is until every pod's first container runs, and
	// RemovalContainerS the removal of those pods.
	RunpContainerS    []float64    `json:"runpContainerSeconds"`
	RemovalContainerS []float64    `json:"removalContainerSeconds"`
	PodRunp           Distribution `json:"podRunp"`
	Failures          int          `json:"failures"`
	FailureMessages   []string     `json:"failureMessages,omitempty"`
}

// Floor is the raw libcni ADD and DEL of X into a fresh netns.
type Floor struct {
	Add Distribution `json:"add"`
	Del Distribution `json:"del"`
	// ExecMs is the median time of one run of each plugin binary of X with
	// CNI_COMMAND=VERSION.
	ExecMs map[string]float64 `json:"execMs"`
}

// Usage is nri-cni's memory and CPU in one setup.
type Usage struct {
	Setup string `json:"setup"`
	// Mode is the attach mode, or none for the setup without a network.
	Mode string `json:"mode"`
	// RSSMiB maps the number of attached pods to the resident memory.
	RSSMiB map[int]float64 `json:"rssMiB"`
	// PeakRSSMiB is the highest resident memory of the process (VmHWM).
	PeakRSSMiB float64 `json:"peakRssMiB"`
	// RSSAfterMiB is the resident memory once every pod is gone again.
	RSSAfterMiB float64 `json:"rssAfterMiB"`
	// CPUPerPodMs is nri-cni's own user plus system time per pod of the
	// sequential phase (attach, first container, detach), and
	// ChildrenCPUPerPodMs that of the CNI plugins it ran.
	CPUPerPodMs         float64 `json:"cpuPerPodMs"`
	ChildrenCPUPerPodMs float64 `json:"childrenCpuPerPodMs"`
}

// Save writes the report as indented JSON.
func (r *Report) Save(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("failed to write report: %w", err)
	}
	return nil
}

// Load reads a report that Save wrote.
func Load(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("failed to decode report %s: %w", path, err)
	}
	return &r, nil
}

// Setup returns the setup with key, or nil.
func (r *Report) Setup(key string) *Setup {
	for i := range r.Setups {
		if r.Setups[i].Key == key {
			return &r.Setups[i]
		}
	}
	return nil
}
