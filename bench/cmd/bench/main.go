// Command bench measures pod start and teardown on private containerds in
// five setups, interleaved so that noise on the machine hits all of them
// alike. The setups are (a) the CRI's eth0 only, (b) the CRI attaching an
// extra network X itself, (c) nri-cni attaching X as net1 in sync and in
// async mode, and (d) nri-cni with no network, which isolates the cost of
// its NRI hooks. It also measures a raw libcni ADD and DEL of X, the floor
// that no runtime can beat, nri-cni's memory and CPU, and the split of its
// hook path. It writes the results as JSON, Markdown and a PNG chart, and the
// Markdown into the benchmarks page. It needs root and the output of
// `make build tools images`, which `make bench` runs first.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nri-cni/nri-cni/bench/chart"
	"github.com/nri-cni/nri-cni/bench/floor"
	"github.com/nri-cni/nri-cni/bench/hookpath"
	"github.com/nri-cni/nri-cni/bench/report"
	"github.com/nri-cni/nri-cni/bench/stats"
	"github.com/nri-cni/nri-cni/e2e/framework"
)

// options are the command-line flags.
type options struct {
	output         string
	page           string
	command        string
	pods           int
	rounds         int
	burstPods      int
	burstRounds    int
	memoryPods     int
	hookIterations int
	verbose        bool
	// from is a bench.json to write the outputs from, without measuring.
	from string
}

// Output files in the results folder.
const (
	jsonFile    = "bench.json"
	markdown    = "bench.md"
	chartFile   = "latency.png"
	profileText = "hookpath-cpu.txt"
	// profileDir is an ignored folder of the results for the binary profile.
	profileDir = "tmp"
)

func main() {
	var opts options
	flag.StringVar(&opts.output, "output", "results", "folder for bench.json, bench.md, latency.png and hookpath-cpu.txt")
	flag.StringVar(&opts.page, "page", "docs/benchmarks.md", "page whose generated section receives the Markdown; empty for none")
	flag.StringVar(&opts.command, "command", "make bench", "the command that the report names as its origin")
	flag.IntVar(&opts.pods, "pods", 50, "pods per setup in each sequential round")
	flag.IntVar(&opts.rounds, "rounds", 2, "sequential rounds")
	flag.IntVar(&opts.burstPods, "burst-pods", 50, "pods started at once in a burst")
	flag.IntVar(&opts.burstRounds, "burst-rounds", 3, "burst rounds")
	flag.IntVar(&opts.memoryPods, "memory-pods", 200, "pods attached at once when reading nri-cni's memory")
	flag.IntVar(&opts.hookIterations, "hook-iterations", 100, "pods of the in-process hook path profile")
	flag.BoolVar(&opts.verbose, "v", false, "print every crictl call")
	flag.StringVar(&opts.from, "from", "", "write the Markdown, chart and page again from this bench.json, without measuring")
	flag.Parse()

	r := &runner{Name: "bench", Verbose: opts.verbose,
		CleanupMessage: "cleaning up: pods, nri-cni, containerd, mounts, cgroups, bridges and folders"}
	r.StopOnSignal("interrupted; cleaning up after the current step")
	os.Exit(r.Run(func() int { return run(r, opts) }))
}

// run measures everything and writes the results. It returns the exit code.
func run(r *runner, opts options) int {
	started := time.Now()
	paths, err := framework.FindPaths()
	if err != nil {
		r.Fatalf("%v", err)
	}
	output := opts.output
	if !filepath.IsAbs(output) {
		output = filepath.Join(paths.Root, output)
	}
	if err := os.MkdirAll(filepath.Join(output, profileDir), 0o755); err != nil {
		r.Fatalf("failed to create results folder: %v", err)
	}
	if opts.from != "" {
		rewrite(r, opts.from, output, opts.page, paths.Root)
		return 0
	}
	machine := report.CollectMachine(report.Binaries{
		Containerd: filepath.Join(paths.ToolsBin, "containerd"),
		Runc:       filepath.Join(paths.ToolsBin, "runc"),
		Crictl:     filepath.Join(paths.ToolsBin, "crictl"),
		Bridge:     filepath.Join(paths.CNIBin, "bridge"),
		NRICNI:     paths.NRICNI,
		Repository: paths.Root,
	})

	r.Progressf("starting seven containerds: baseline, built-in, nri-cni sync, async, sync without early attach, with no network, and a second baseline")
	setups := newSetups(r)
	baseline := setups[0]
	rss0 := map[string]int64{}
	for _, s := range setups {
		if s.attachesWithNRICNI() {
			time.Sleep(settleTime)
			rss0[s.key] = readProcessUsage(r, s.nriCNI).RSS
		}
	}
	fl := newFloor(r, baseline.env)
	execCosts := measureExecCosts(r, fl)

	sequential := runSequential(r, setups, fl, opts.pods, opts.rounds)
	bursts := runBursts(r, burstSetups(setups), opts.burstPods, opts.burstRounds)
	memory := map[string]memoryResult{}
	for _, s := range setups {
		// The setup without the early attach runs the same binary.
		if s.attachesWithNRICNI() && s.key != keyHook {
			memory[s.key] = runMemory(r, s, opts.memoryPods, rss0[s.key])
		}
	}
	hook := runHookPath(r, baseline.env, opts.hookIterations, output)

	rep := &report.Report{
		Command: opts.command,
		Started: started,
		Machine: machine,
		Parameters: report.Parameters{
			Pods: opts.pods, Rounds: opts.rounds, BurstPods: opts.burstPods, BurstRounds: opts.burstRounds,
			MemoryPods: opts.memoryPods, HookIterations: opts.hookIterations, Network: networkName,
		},
		Floor: report.Floor{
			Add:    report.NewDistribution(sequential.floorAdd),
			Del:    report.NewDistribution(sequential.floorDel),
			ExecMs: execCosts,
		},
		HookPath: hook,
		Checks:   sequential.checks,
	}
	total := float64(opts.pods * opts.rounds)
	for _, s := range setups {
		samples := sequential.samples[s.key]
		rep.Setups = append(rep.Setups, report.Setup{
			Key:         s.key,
			Label:       s.label,
			Description: s.description,
			Sequential: report.Sequential{
				Runp:           report.NewDistribution(samples.runp),
				FirstContainer: report.NewDistribution(samples.firstContainer),
				CreateStart:    report.NewDistribution(stats.PairedDifferences(samples.firstContainer, samples.runp)),
				Teardown:       report.NewDistribution(samples.teardown),
			},
			Burst:                 bursts[s.key],
			ContainerdCPUPerPodMs: milliseconds(sequential.containerdCPU[s.key]) / total,
		})
		rep.Errors = append(rep.Errors, s.nriCNIErrors()...)
		if s.nriCNI == nil {
			continue
		}
		usage := sequential.nriCNIUsage[s.key]
		m := memory[s.key]
		rss := map[int]float64{}
		for count, bytes := range m.rss {
			rss[count] = mebibytes(bytes)
		}
		if samples := sequential.rss50[s.key]; len(samples) > 0 {
			rss[opts.pods] = mebibytes(maxInt64(samples))
		}
		rep.Usage = append(rep.Usage, report.Usage{
			Setup:               s.key,
			Mode:                strings.TrimPrefix(s.key, "nri-cni-"),
			RSSMiB:              rss,
			PeakRSSMiB:          mebibytes(m.peakRSS),
			RSSAfterMiB:         mebibytes(m.rssAfter),
			CPUPerPodMs:         milliseconds(usage.CPU) / total,
			ChildrenCPUPerPodMs: milliseconds(usage.ChildrenCPU) / total,
		})
	}
	rep.Checks = append(rep.Checks,
		"every burst: each started pod held its leases, ports, records and cache entries, and nothing was left after its removal",
		fmt.Sprintf("memory phase: %d pods attached at once in each nri-cni setup, and nothing left after their removal", opts.memoryPods))
	rep.Machine.LoadEnd = report.LoadAverage()
	rep.DurationS = time.Since(started).Seconds()
	if err := rep.Analyze(); err != nil {
		r.Fatalf("%v", err)
	}
	writeResults(r, rep, output, opts.page, paths.Root)
	return 0
}

// newFloor returns the floor of X: its own bridge and subnet in the
// baseline's environment, so that the environment's cleanup removes them.
func newFloor(r *runner, env *framework.Env) *floor.Floor {
	network := framework.Network{Name: networkName, Bridge: env.Bridge("floor"), Subnet: env.Subnet(2)}
	conflist, err := network.Conflist(env.IPAMDir)
	if err != nil {
		r.Fatalf("failed to encode floor network: %v", err)
	}
	fl, err := floor.New(conflist, []string{env.Paths.CNIBin}, filepath.Join(env.Dir, "floor", "cache"), filepath.Join(env.Dir, "floor", "netns"))
	if err != nil {
		r.Fatalf("%v", err)
	}
	return fl
}

// measureExecCosts returns the median time of one VERSION call of each
// plugin of X, in milliseconds, over 20 calls.
func measureExecCosts(r *runner, fl *floor.Floor) map[string]float64 {
	const calls = 20
	samples := map[string][]float64{}
	for range calls {
		costs, err := fl.ExecCost(context.Background())
		if err != nil {
			r.Fatalf("%v", err)
		}
		for name, took := range costs {
			samples[name] = append(samples[name], milliseconds(took))
		}
	}
	medians := map[string]float64{}
	for name, values := range samples {
		medians[name] = report.NewDistribution(values).Median
	}
	return medians
}

// runHookPath profiles the hook path in this process, on its own bridge and
// subnet of the baseline's environment, and writes the CPU profile and its
// top functions.
func runHookPath(r *runner, env *framework.Env, iterations int, output string) *hookpath.Result {
	r.Progressf("hook path: %d pods through the plugin's hooks in this process", iterations)
	network := framework.Network{Name: "hookpath", Bridge: env.Bridge("hook"), Subnet: env.Subnet(3)}
	conflist, err := network.Conflist(env.IPAMDir)
	if err != nil {
		r.Fatalf("failed to encode hook path network: %v", err)
	}
	dir := filepath.Join(env.Dir, "hookpath")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Fatalf("failed to create hook path folder: %v", err)
	}
	profile := filepath.Join(output, profileDir, "hookpath-cpu.pprof")
	result, err := hookpath.Run(context.Background(), hookpath.Options{
		NetworkName: network.Name,
		Conflist:    conflist,
		BinDirs:     []string{env.Paths.CNIBin},
		Dir:         dir,
		Iterations:  iterations,
		CPUProfile:  profile,
	})
	if err != nil {
		r.Fatalf("%v", err)
	}
	focus := "-tagfocus=" + hookpath.ProfileLabel + "=" + hookpath.CurrentPlugin
	top, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=30", focus, profile).CombinedOutput()
	if err != nil {
		r.Errorf("failed to print the top functions of %s with go tool pprof: %v: %s", profile, err, top)
	}
	if err := os.WriteFile(filepath.Join(output, profileText), top, 0o644); err != nil {
		r.Fatalf("failed to write profile summary: %v", err)
	}
	return result
}

// rewrite writes the outputs again from the report in a bench.json.
func rewrite(r *runner, from, output, page, root string) {
	rep, err := report.Load(from)
	if err != nil {
		r.Fatalf("%v", err)
	}
	if err := rep.Analyze(); err != nil {
		r.Fatalf("%v", err)
	}
	writeResults(r, rep, output, page, root)
}

func writeResults(r *runner, rep *report.Report, output, page, root string) {
	if err := rep.Save(filepath.Join(output, jsonFile)); err != nil {
		r.Fatalf("%v", err)
	}
	if err := chart.Write(rep, filepath.Join(output, chartFile)); err != nil {
		r.Fatalf("%v", err)
	}
	if err := os.WriteFile(filepath.Join(output, markdown), []byte("# nri-cni benchmark results\n\n"+rep.Markdown(chartFile)), 0o644); err != nil {
		r.Fatalf("failed to write %s: %v", markdown, err)
	}
	r.Progressf("wrote %s, %s and %s in %s", jsonFile, markdown, chartFile, output)
	if page == "" {
		return
	}
	if !filepath.IsAbs(page) {
		page = filepath.Join(root, page)
	}
	chartPath, err := filepath.Rel(filepath.Dir(page), filepath.Join(output, chartFile))
	if err != nil {
		chartPath = filepath.Join(output, chartFile)
	}
	if err := report.UpdatePage(page, rep.Markdown(chartPath)); err != nil {
		r.Errorf("%v", err)
		return
	}
	r.Progressf("updated the results in %s", page)
}

func maxInt64(values []int64) int64 {
	var highest int64
	for _, value := range values {
		highest = max(highest, value)
	}
	return highest
}
