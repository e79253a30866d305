// Package hookpath profiles nri-cni's hook path in-process. It builds a
// plugin.Plugin through plugin.New with the real libcni runner and disk
// store. Then it calls RunPodSandbox, StopPodSandbox and RemovePodSandbox
// for pods whose network namespace is a real, pinned netns with a process in
// it. Wrappers of the runner and the store time each CNI call and each state
// write, so the hook's wall time splits into CNI exec, state writes and the
// rest (netns checks, network selection, logging). A CPU profile of the hook
// calls shows where the plugin's own CPU goes.
package hookpath

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/nri-cni/nri-cni/bench/netns"
	"github.com/nri-cni/nri-cni/bench/stats"
	"github.com/nri-cni/nri-cni/cni"
	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/plugin"
	"github.com/nri-cni/nri-cni/state"
)

// ProfileLabel is the pprof label whose value CurrentPlugin marks the CPU
// samples of the plugin as it is, without the proposed store.
const (
	ProfileLabel  = "plugin"
	CurrentPlugin = "current"
)

// Options configure Run.
type Options struct {
	// NetworkName and Conflist are the network that every pod gets as net1.
	NetworkName string
	Conflist    []byte
	// BinDirs are the folders of the CNI plugins.
	BinDirs []string
	// Dir is an empty folder for the plugin's conf dir, libcni cache, state
	// dir and log, and for the pinned namespaces.
	Dir string
	// Iterations is the number of pods to attach and detach.
	Iterations int
	// CPUProfile, when set, is the file that receives a CPU profile of the
	// hook calls, labelled with ProfileLabel.
	CPUProfile string
}

// Result is the measured hook path. Times are in milliseconds.
type Result struct {
	Iterations int           `json:"iterations"`
	AttachMode string        `json:"attachMode"`
	Attach     Attach        `json:"attach"`
	Detach     Detach        `json:"detach"`
	RemoveHook stats.Summary `json:"removeHookMs"`
	// CPUPerPodMs is the plugin's own user plus system time per pod, summed
	// over the three hooks, and ChildrenCPUPerPodMs that of the CNI plugins
	// it ran.
	CPUPerPodMs         float64 `json:"cpuPerPodMs"`
	ChildrenCPUPerPodMs float64 `json:"childrenCpuPerPodMs"`
	// RecordBytes is the size of a pod's state record with one attachment.
	RecordBytes int       `json:"recordBytes"`
	Save        SaveSteps `json:"saveSteps"`
	// OverlappedAttach is the RunPodSandbox hook of a second plugin, run
	// in turn with the first, whose store syncs the intent during the ADD
	// (see overlapStore): the measured effect of that proposed change.
	OverlappedAttach Attach `json:"overlappedAttach"`
}

// Attach splits the RunPodSandbox hook.
type Attach struct {
	Hook stats.Summary `json:"hookMs"`
	// CNIAdd is the libcni ADD of the network.
	CNIAdd stats.Summary `json:"cniAddMs"`
	// IntentSave and ResultSave are the two state saves of an attach: the
	// intent before the ADD and the record with the result after it.
	IntentSave stats.Summary `json:"intentSaveMs"`
	ResultSave stats.Summary `json:"resultSaveMs"`
	// Other is the hook minus the ADD and the saves: netns checks, network
	// selection, encoding of the result and logging.
	Other stats.Summary `json:"otherMs"`
}

// Detach splits the StopPodSandbox hook and the detach that it starts in
// the background.
type Detach struct {
	// Hook is the hook itself, which holds the netns and returns.
	Hook stats.Summary `json:"hookMs"`
	// Done is from the start of the hook until the background detach is
	// done, which the pin's unmount in between does not stop.
	Done   stats.Summary `json:"doneMs"`
	CNIDel stats.Summary `json:"cniDelMs"`
	// StateDelete removes the record and syncs the folder.
	StateDelete stats.Summary `json:"stateDeleteMs"`
	// Other is Done minus the DEL and the state delete.
	Other stats.Summary `json:"otherMs"`
}

// Run attaches and detaches Iterations pods in sync mode and returns the
// measured split of the hooks.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Iterations <= 0 {
		return nil, fmt.Errorf("invalid iterations %d: give at least 1", opts.Iterations)
	}
	if err := writeNetwork(opts); err != nil {
		return nil, err
	}
	disk, err := state.NewDiskStore(filepath.Join(opts.Dir, "state"))
	if err != nil {
		return nil, err
	}
	p, recorder, closeLog, err := newPlugin(opts, "current", disk)
	if err != nil {
		return nil, err
	}
	defer closeLog()
	overlap, err := newOverlapStore(filepath.Join(opts.Dir, "state-overlapped"))
	if err != nil {
		return nil, err
	}
	overlapped, overlappedRecorder, closeOverlappedLog, err := newPlugin(opts, "overlapped", overlap)
	if err != nil {
		return nil, err
	}
	defer closeOverlappedLog()

	// Every namespace exists before the timed loop, so that the profile
	// holds the hooks and not the namespace set-up. Pod i of the plugin
	// with the proposed store uses namespace Iterations + i.
	namespaces := make([]*netns.Namespace, 0, 2*opts.Iterations)
	defer func() {
		for _, ns := range namespaces {
			_ = ns.Delete()
		}
	}()
	for i := range 2 * opts.Iterations {
		ns, err := netns.Create(filepath.Join(opts.Dir, "netns", strconv.Itoa(i)), true)
		if err != nil {
			return nil, err
		}
		namespaces = append(namespaces, ns)
	}

	if opts.CPUProfile != "" {
		file, err := os.Create(opts.CPUProfile)
		if err != nil {
			return nil, fmt.Errorf("failed to create CPU profile file: %w", err)
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			return nil, fmt.Errorf("failed to start CPU profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	samples, overlappedSamples := newSampleSet(), newSampleSet()
	var cpu, childrenCPU, unused time.Duration
	// The samples of each plugin carry the label plugin=current or
	// plugin=overlapped, so that `go tool pprof -tagfocus` can tell them apart.
	for i := range opts.Iterations {
		var err error
		pprof.Do(ctx, pprof.Labels(ProfileLabel, CurrentPlugin), func(ctx context.Context) {
			ns := namespaces[i]
			err = samples.runPod(ctx, p, recorder, benchPod(i, ns), ns, &cpu, &childrenCPU)
		})
		if err != nil {
			return nil, err
		}
		pprof.Do(ctx, pprof.Labels(ProfileLabel, "overlapped"), func(ctx context.Context) {
			j := opts.Iterations + i
			ns := namespaces[j]
			err = overlappedSamples.runPod(ctx, overlapped, overlappedRecorder, benchPod(j, ns), ns, &unused, &unused)
		})
		if err != nil {
			return nil, err
		}
	}
	pprof.StopCPUProfile()

	result := samples.result(opts.Iterations)
	result.OverlappedAttach = overlappedSamples.result(opts.Iterations).Attach
	result.CPUPerPodMs = milliseconds(cpu) / float64(opts.Iterations)
	result.ChildrenCPUPerPodMs = milliseconds(childrenCPU) / float64(opts.Iterations)
	if recorder.lastRecord == nil {
		return nil, errors.New("the plugin saved no state record: check that the network is selected")
	}
	steps, size, err := measureSaveSteps(filepath.Join(opts.Dir, "save-steps"), recorder.lastRecord, opts.Iterations)
	if err != nil {
		return nil, err
	}
	result.Save, result.RecordBytes = steps, size
	return result, nil
}

// confDir is the conf dir of the plugins, below Options.Dir.
const confDir = "net.d"

// writeNetwork writes the network into the plugins' conf dir.
func writeNetwork(opts Options) error {
	dir := filepath.Join(opts.Dir, confDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("failed to create conf dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, opts.NetworkName+".conflist"), opts.Conflist, 0o644); err != nil {
		return fmt.Errorf("failed to write network %s: %w", opts.NetworkName, err)
	}
	return nil
}

// newPlugin returns a sync-mode plugin on the conf dir with a timed libcni
// runner and a timed store, and the closer of its log. name separates its
// libcni cache and log from those of other plugins; store keeps its records.
func newPlugin(opts Options, name string, store state.Store) (*plugin.Plugin, *recorder, func(), error) {
	cfg := config.Default()
	cfg.NRISocket = filepath.Join(opts.Dir, "unused-nri.sock")
	cfg.CNIConfDir = filepath.Join(opts.Dir, confDir)
	cfg.CNIBinDirs = opts.BinDirs
	cfg.CNICacheDir = filepath.Join(opts.Dir, "cache-"+name)
	// The store is given, so the plugin does not open this folder.
	cfg.StateDir = filepath.Join(opts.Dir, "state-"+name)
	cfg.AttachMode = config.AttachSync
	cfg.ContainerdSocket = ""
	if err := cfg.Validate(); err != nil {
		return nil, nil, nil, fmt.Errorf("invalid hook path config: %w", err)
	}

	logFile, err := os.Create(filepath.Join(opts.Dir, name+".log"))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("failed to create plugin log: %w", err)
	}
	rec := &recorder{}
	p, err := plugin.New(plugin.Options{
		Config: cfg,
		Logger: newLogger(logFile),
		Runner: &timedRunner{Runner: cni.NewLibCNI(cfg.CNIBinDirs, cfg.CNICacheDir), recorder: rec},
		Store:  &timedStore{Store: store, recorder: rec},
	})
	if err != nil {
		logFile.Close()
		return nil, nil, nil, fmt.Errorf("failed to create plugin: %w", err)
	}
	return p, rec, func() { logFile.Close() }, nil
}

// newLogger returns the JSON logger that nri-cni runs with at level info,
// writing to file instead of stderr.
func newLogger(file *os.File) *zap.Logger {
	encoder := zap.NewProductionEncoderConfig()
	encoder.EncodeTime = zapcore.ISO8601TimeEncoder
	encoder.TimeKey = "time"
	encoder.EncodeDuration = zapcore.StringDurationEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(encoder), zapcore.Lock(file), zapcore.InfoLevel)
	return zap.New(core)
}

// benchPod returns a pod as containerd's CRI passes it at RunPodSandbox: a
// 64-hex sandbox id, the pause task's PID and the pinned netns.
func benchPod(i int, ns *netns.Namespace) *api.PodSandbox {
	sum := sha256.Sum256([]byte("hookpath-" + strconv.Itoa(i)))
	name := fmt.Sprintf("hookpath-%d", i)
	return &api.PodSandbox{
		Id:        hex.EncodeToString(sum[:]),
		Name:      name,
		Uid:       "uid-" + name,
		Namespace: "default",
		Pid:       uint32(ns.PID()),
		Linux: &api.LinuxPodSandbox{
			Namespaces: []*api.LinuxNamespace{{Type: "network", Path: ns.Path}},
		},
	}
}

// sampleSet collects the per-pod times in milliseconds.
type sampleSet struct {
	attachHook, add, intentSave, resultSave, attachOther  []float64
	detachHook, detachDone, del, stateDelete, detachOther []float64
	removeHook                                            []float64
}

func newSampleSet() *sampleSet {
	return &sampleSet{}
}

// runPod runs the three hooks of one pod and adds their times, and the CPU
// time they used, to the set.
func (s *sampleSet) runPod(ctx context.Context, p *plugin.Plugin, rec *recorder, pod *api.PodSandbox,
	ns *netns.Namespace, cpu, childrenCPU *time.Duration) error {
	rec.reset()
	took, err := timeHook(cpu, childrenCPU, func() error { return p.RunPodSandbox(ctx, pod) })
	if err != nil {
		return fmt.Errorf("failed to run RunPodSandbox of pod %s: %w", pod.Name, err)
	}
	if len(rec.adds) != 1 || len(rec.saves) != 2 {
		return fmt.Errorf("RunPodSandbox of pod %s ran %d ADDs and %d saves, expected 1 and 2", pod.Name, len(rec.adds), len(rec.saves))
	}
	s.attachHook = append(s.attachHook, milliseconds(took))
	s.add = append(s.add, milliseconds(rec.adds[0]))
	s.intentSave = append(s.intentSave, milliseconds(rec.saves[0]))
	s.resultSave = append(s.resultSave, milliseconds(rec.saves[1]))
	s.attachOther = append(s.attachOther, milliseconds(took-rec.adds[0]-rec.saves[0]-rec.saves[1]))

	// containerd kills the pause task before StopPodSandbox, and unmounts
	// and removes the pin right after it, while the detach runs.
	ns.StopProcess()
	rec.reset()
	stopped := time.Now()
	took, err = timeHook(cpu, childrenCPU, func() error { return p.StopPodSandbox(ctx, pod) })
	if err != nil {
		return fmt.Errorf("failed to run StopPodSandbox of pod %s: %w", pod.Name, err)
	}
	if err := ns.Delete(); err != nil {
		return err
	}
	if _, err := timeHook(cpu, childrenCPU, func() error { return p.Wait(ctx) }); err != nil {
		return fmt.Errorf("failed to wait for the detach of pod %s: %w", pod.Name, err)
	}
	done := time.Since(stopped)
	if len(rec.dels) != 1 || len(rec.deletes) != 1 {
		return fmt.Errorf("the detach of pod %s ran %d DELs and %d record deletes, expected 1 and 1", pod.Name, len(rec.dels), len(rec.deletes))
	}
	s.detachHook = append(s.detachHook, milliseconds(took))
	s.detachDone = append(s.detachDone, milliseconds(done))
	s.del = append(s.del, milliseconds(rec.dels[0]))
	s.stateDelete = append(s.stateDelete, milliseconds(rec.deletes[0]))
	s.detachOther = append(s.detachOther, milliseconds(done-rec.dels[0]-rec.deletes[0]))

	// At RemovePodSandbox the CRI has removed the netns: the pod has no
	// network entry any more.
	removed := &api.PodSandbox{Id: pod.Id, Name: pod.Name, Uid: pod.Uid, Namespace: pod.Namespace}
	took, err = timeHook(cpu, childrenCPU, func() error { return p.RemovePodSandbox(ctx, removed) })
	if err != nil {
		return fmt.Errorf("failed to run RemovePodSandbox of pod %s: %w", pod.Name, err)
	}
	s.removeHook = append(s.removeHook, milliseconds(took))
	return nil
}

func (s *sampleSet) result(iterations int) *Result {
	return &Result{
		Iterations: iterations,
		AttachMode: config.AttachSync,
		Attach: Attach{
			Hook:       stats.Summarize(s.attachHook),
			CNIAdd:     stats.Summarize(s.add),
			IntentSave: stats.Summarize(s.intentSave),
			ResultSave: stats.Summarize(s.resultSave),
			Other:      stats.Summarize(s.attachOther),
		},
		Detach: Detach{
			Hook:        stats.Summarize(s.detachHook),
			Done:        stats.Summarize(s.detachDone),
			CNIDel:      stats.Summarize(s.del),
			StateDelete: stats.Summarize(s.stateDelete),
			Other:       stats.Summarize(s.detachOther),
		},
		RemoveHook: stats.Summarize(s.removeHook),
	}
}

// timeHook runs hook and returns its wall time, and adds the CPU time that
// this process and its waited-for children used meanwhile.
func timeHook(cpu, childrenCPU *time.Duration, hook func() error) (time.Duration, error) {
	selfBefore, childrenBefore := rusage(syscall.RUSAGE_SELF), rusage(syscall.RUSAGE_CHILDREN)
	start := time.Now()
	err := hook()
	took := time.Since(start)
	*cpu += rusage(syscall.RUSAGE_SELF) - selfBefore
	*childrenCPU += rusage(syscall.RUSAGE_CHILDREN) - childrenBefore
	return took, err
}

// rusage returns the user plus system time of who.
func rusage(who int) time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(who, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

func milliseconds(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
