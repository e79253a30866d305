package report

import (
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/nri-cni/nri-cni/bench/stats"
)

// Markdown returns the report as Markdown tables, with the chart at
// chartPath (relative to the Markdown file).
func (r *Report) Markdown(chartPath string) string {
	var b strings.Builder
	r.writeHeader(&b)
	r.writeSequential(&b, chartPath)
	r.writeRatios(&b)
	r.writeBursts(&b)
	r.writeUsage(&b)
	r.writeHookPath(&b)
	r.writeTargets(&b)
	r.writeChecks(&b)
	return b.String()
}

func (r *Report) writeHeader(b *strings.Builder) {
	m := r.Machine
	fmt.Fprintf(b, "Made by `%s` on %s in %.0f s.\n\n", r.Command, r.Started.UTC().Format("2006-01-02 15:04 MST"), r.DurationS)
	fmt.Fprintf(b, "Machine: %d cores (%s), %.1f GiB, kernel %s, %s, %s. ", m.Cores, m.CPUModel, m.MemoryGiB, m.Kernel, m.OS, m.Go)
	fmt.Fprintf(b, "1-minute load average %.2f at the start and %.2f at the end (other work on the machine raises it).\n\n", m.LoadStart, m.LoadEnd)
	names := make([]string, 0, len(m.Versions))
	for name := range m.Versions {
		names = append(names, name)
	}
	slices.Sort(names)
	versions := make([]string, 0, len(names))
	for _, name := range names {
		versions = append(versions, fmt.Sprintf("%s %s", name, m.Versions[name]))
	}
	fmt.Fprintf(b, "Versions: %s.\n\n", strings.Join(versions, ", "))
	p := r.Parameters
	fmt.Fprintf(b, "Network X (`%s`): bridge plus host-local, its own bridge and /24, `ipMasq: false`, the same config in (b), (c) and the floor. "+
		"Sequential: %d rounds of %d pods per setup, interleaved pod by pod; bursts: %d rounds of %d pods at once; memory: %d pods; hook path: %d pods.\n\n",
		p.Network, p.Rounds, p.Pods, p.BurstRounds, p.BurstPods, p.MemoryPods, p.HookIterations)
	b.WriteString("| setup | what attaches the networks |\n| --- | --- |\n")
	for _, s := range r.Setups {
		fmt.Fprintf(b, "| %s | %s |\n", s.Label, s.Description)
	}
	b.WriteString("| floor | raw libcni ADD and DEL of X into a fresh netns, no runtime |\n\n")
}

func (r *Report) writeSequential(b *strings.Builder, chartPath string) {
	b.WriteString("### Sequential pods\n\n")
	b.WriteString("Latency in ms of each pod, one pod at a time. runp + first container is from the start of `crictl runp` until `crictl start` " +
		"of a busybox sleep has returned; create + start is that minus runp.\n\n")
	b.WriteString("| setup | runp median | runp p95 | create + start median | runp + first container median | p95 | stopp + rmp median | p95 |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Setups {
		q := s.Sequential
		fmt.Fprintf(b, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", s.Label, q.Runp.Median, q.Runp.P95,
			q.CreateStart.Median, q.FirstContainer.Median, q.FirstContainer.P95, q.Teardown.Median, q.Teardown.P95)
	}
	fmt.Fprintf(b, "| floor: libcni ADD / DEL | %.1f | %.1f | | | | %.1f | %.1f |\n\n",
		r.Floor.Add.Median, r.Floor.Add.P95, r.Floor.Del.Median, r.Floor.Del.P95)
	if chartPath != "" {
		fmt.Fprintf(b, "![Latency distributions of the setups](%s)\n\n", chartPath)
	}
}

func (r *Report) writeRatios(b *strings.Builder) {
	b.WriteString("### Extra cost per pod, sequential\n\n")
	b.WriteString("(c) - (a) is nri-cni's extra cost per pod over the baseline and (b) - (a) the built-in's, as differences of medians. " +
		"The paired columns take the median of the differences between pods of the same interleaved step instead, which cancels the noise that a step shares. " +
		"Intervals are 90% bootstrap intervals; an open end means that resampling left the built-in with no extra cost.\n\n")
	b.WriteString("| setup | metric | (c) - (a) ms | (b) - (a) ms | ratio to built-in | 90% interval | paired (c) - (a) | paired (b) - (a) | paired ratio | 90% interval | floor ms | ratio to floor | 90% interval |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | --- |\n")
	for _, ratio := range r.Ratios {
		if ratio.Burst {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %.1f | %.1f | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Setup(ratio.Setup).Label, ratio.Metric,
			ratio.ExtraMs, ratio.BuiltinExtraMs, formatRatio(ratio.VsBuiltin), formatInterval(ratio.VsBuiltinInterval),
			formatOptionalMs(ratio.PairedExtraMs), formatOptionalMs(ratio.PairedBuiltinExtraMs), formatRatio(ratio.PairedVsBuiltin),
			formatInterval(ratio.PairedInterval), formatOptionalMs(ratio.FloorMs), formatOptionalRatio(ratio.VsFloor, ratio.FloorMs),
			formatInterval(ratio.VsFloorInterval))
	}
	b.WriteString("\n")
	r.writeSplits(b)

	b.WriteString("### Extra cost per pod, bursts\n\n")
	b.WriteString("Wall time differences of the median bursts divided by the pods of a burst. " +
		"The paired columns take the median over the rounds of each round's differences, because the setups of a round ran within a minute or two of each other.\n\n")
	b.WriteString("| setup | metric | (c) - (a) ms per pod | (b) - (a) ms per pod | ratio to built-in | paired (c) - (a) | paired (b) - (a) | paired ratio |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, ratio := range r.Ratios {
		if !ratio.Burst {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %.1f | %.1f | %s | %s | %s | %s |\n", r.Setup(ratio.Setup).Label, ratio.Metric,
			ratio.ExtraMs, ratio.BuiltinExtraMs, formatRatio(ratio.VsBuiltin), formatOptionalMs(ratio.PairedExtraMs),
			formatOptionalMs(ratio.PairedBuiltinExtraMs), formatRatio(ratio.PairedVsBuiltin))
	}
	b.WriteString("\n")
}

func (r *Report) writeSplits(b *strings.Builder) {
	if len(r.Splits) == 0 {
		return
	}
	b.WriteString("Where nri-cni's extra cost goes, from paired medians in ms. (d) - (a) is the cost of its hooks with no network to attach " +
		"(NRI round trips, netns checks, selection). (a') - (a) is the same difference between two baselines, the second started last, " +
		"which no plugin explains. (c) - (d) is the attach or detach of X on top.\n\n")
	b.WriteString("| metric | (d) - (a): hooks, no network | with < half of a round's pods running | with > half running | (a') - (a): order alone | (c-sync) - (d) | (c-async) - (d) | (c-hook) - (d) | floor ms |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, split := range r.Splits {
		floor := ""
		if split.FloorMs > 0 {
			floor = fmt.Sprintf("%.1f", split.FloorMs)
		}
		fmt.Fprintf(b, "| %s | %.1f | %.1f | %.1f | %s | %.1f | %.1f | %s | %s |\n", split.Metric, split.NRIMs, split.NRIFewPodsMs,
			split.NRIManyPodsMs, formatOptionalMs(split.ControlMs), split.SyncMs, split.AsyncMs, formatOptionalMs(split.HookMs), floor)
	}
	b.WriteString("\n")
}

func (r *Report) writeBursts(b *strings.Builder) {
	pods := r.Parameters.BurstPods
	fmt.Fprintf(b, "### Bursts of %d pods\n\n", pods)
	fmt.Fprintf(b, "Wall time in s from releasing %d goroutines, each running one pod, until the last returned; median of %d rounds, with every round's value in brackets. "+
		"Attached is until X was attached to every pod, which in async mode comes after runp.\n\n", pods, r.Parameters.BurstRounds)
	b.WriteString("| setup | runp | attached | removal | runp + first container | removal | pod runp median ms | pod runp p95 ms | failures |\n")
	b.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, s := range r.Setups {
		q := s.Burst
		if q.Pods == 0 {
			continue
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.0f | %.0f | %d |\n", s.Label,
			formatWalls(q.RunpS), formatWalls(q.AttachedS), formatWalls(q.RemovalS), formatWalls(q.RunpContainerS),
			formatWalls(q.RemovalContainerS), q.PodRunp.Median, q.PodRunp.P95, q.Failures)
	}
	b.WriteString("\n")
	for _, s := range r.Setups {
		for _, message := range s.Burst.FailureMessages {
			fmt.Fprintf(b, "- %s: `%s`\n", s.Label, message)
		}
	}
}

func (r *Report) writeUsage(b *strings.Builder) {
	b.WriteString("### nri-cni memory and CPU\n\n")
	b.WriteString("Resident memory (VmRSS) of the nri-cni process with 0 pods (after start), with the pods of a sequential round attached, with the memory phase's pods attached, " +
		"and after they are gone. CPU per pod is user plus system time over the sequential phase (attach, first container, detach), 10 ms ticks.\n\n")
	counts := map[int]bool{}
	for _, usage := range r.Usage {
		for count := range usage.RSSMiB {
			counts[count] = true
		}
	}
	sorted := make([]int, 0, len(counts))
	for count := range counts {
		sorted = append(sorted, count)
	}
	slices.Sort(sorted)
	b.WriteString("| setup |")
	for _, count := range sorted {
		fmt.Fprintf(b, " RSS, %d pods |", count)
	}
	b.WriteString(" RSS after | peak RSS | nri-cni CPU per pod | its CNI plugins per pod |\n|")
	for range len(sorted) + 5 {
		b.WriteString(" ---: |")
	}
	b.WriteString("\n")
	for _, usage := range r.Usage {
		label := usage.Mode
		if setup := r.Setup(usage.Setup); setup != nil {
			label = setup.Label
		}
		fmt.Fprintf(b, "| %s |", label)
		for _, count := range sorted {
			if rss, ok := usage.RSSMiB[count]; ok {
				fmt.Fprintf(b, " %.1f MiB |", rss)
			} else {
				b.WriteString(" |")
			}
		}
		after, peak := "", ""
		if usage.PeakRSSMiB > 0 {
			after, peak = fmt.Sprintf("%.1f MiB", usage.RSSAfterMiB), fmt.Sprintf("%.1f MiB", usage.PeakRSSMiB)
		}
		fmt.Fprintf(b, " %s | %s | %.2f ms | %.2f ms |\n", after, peak, usage.CPUPerPodMs, usage.ChildrenCPUPerPodMs)
	}
	b.WriteString("\ncontainerd's own CPU per pod in the same phase, with the CNI plugins it ran: ")
	parts := make([]string, 0, len(r.Setups))
	for _, s := range r.Setups {
		parts = append(parts, fmt.Sprintf("%s %.1f ms", s.Label, s.ContainerdCPUPerPodMs))
	}
	b.WriteString(strings.Join(parts, ", ") + ".\n\n")
}

func (r *Report) writeHookPath(b *strings.Builder) {
	h := r.HookPath
	if h == nil {
		return
	}
	fmt.Fprintf(b, "### Hook path, in-process (%s mode, %d pods)\n\n", h.AttachMode, h.Iterations)
	b.WriteString("plugin.New with the libcni runner and the disk store, each wrapped in a timer, and a pinned netns with a process in it per pod. " +
		"The proposed rows come from a second plugin, run in turn with the first, whose store writes and renames the intent at once and syncs it during the ADD. Milliseconds.\n\n")
	b.WriteString("| step | median | p95 |\n| --- | ---: | ---: |\n")
	rows := []struct {
		name    string
		summary stats.Summary
	}{
		{"RunPodSandbox hook", h.Attach.Hook},
		{"- libcni ADD (bridge + host-local)", h.Attach.CNIAdd},
		{"- state save of the intent", h.Attach.IntentSave},
		{"- state save of the result", h.Attach.ResultSave},
		{"- rest: netns checks, selection, encoding, logs", h.Attach.Other},
		{"StopPodSandbox hook (holds the netns, starts the detach)", h.Detach.Hook},
		{"detach done, from the start of the hook", h.Detach.Done},
		{"- libcni DEL, after the pin is unmounted", h.Detach.CNIDel},
		{"- state delete", h.Detach.StateDelete},
		{"- rest", h.Detach.Other},
		{"RemovePodSandbox hook (nothing left)", h.RemoveHook},
		{"proposed: RunPodSandbox hook, intent synced during the ADD", h.OverlappedAttach.Hook},
		{"- its state save of the intent", h.OverlappedAttach.IntentSave},
		{"- its state save of the result, after waiting for the intent", h.OverlappedAttach.ResultSave},
		{"one save: encode", h.Save.Encode},
		{"one save: write temporary file", h.Save.WriteTemp},
		{"one save: fsync file", h.Save.FsyncFile},
		{"one save: close and rename", h.Save.Rename},
		{"one save: fsync folder", h.Save.FsyncDir},
		{"one save: total", h.Save.Save},
		{"one delete: remove", h.Save.Remove},
		{"one delete: fsync folder", h.Save.DeleteFsyncDir},
	}
	for _, row := range rows {
		fmt.Fprintf(b, "| %s | %.2f | %.2f |\n", row.name, row.summary.Median, row.summary.P95)
	}
	plugins := make([]string, 0, len(r.Floor.ExecMs))
	for name := range r.Floor.ExecMs {
		plugins = append(plugins, name)
	}
	slices.Sort(plugins)
	for _, name := range plugins {
		fmt.Fprintf(b, "| exec of `%s` with CNI_COMMAND=VERSION | %.2f | |\n", name, r.Floor.ExecMs[name])
	}
	fmt.Fprintf(b, "\nRecord size %d bytes. CPU per pod in the process: %.2f ms own, %.2f ms in the CNI plugins.\n\n",
		h.RecordBytes, h.CPUPerPodMs, h.ChildrenCPUPerPodMs)
}

func (r *Report) writeTargets(b *strings.Builder) {
	b.WriteString("### Targets\n\n")
	b.WriteString("Met is the verdict from the ratio of medians; paired is the verdict from the paired ratio, which cancels the noise that pods of one step share.\n\n")
	b.WriteString("| target | setup | goal | measured | met | paired |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, target := range r.Targets {
		met := yesNo(target.Met)
		paired := ""
		if target.MetPaired != nil {
			paired = yesNo(*target.MetPaired)
		}
		name := target.Name
		if target.Note != "" {
			name += " (" + target.Note + ")"
		}
		label := target.Setup
		if s := r.Setup(target.Setup); s != nil {
			label = s.Label
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", name, label, target.Goal, target.Measured, met, paired)
	}
	b.WriteString("\n")
}

func (r *Report) writeChecks(b *strings.Builder) {
	b.WriteString("### Checks during the run\n\n")
	for _, check := range r.Checks {
		fmt.Fprintf(b, "- %s\n", check)
	}
	if len(r.Errors) == 0 {
		b.WriteString("- nri-cni logged no error.\n")
	}
	for _, line := range r.Errors {
		fmt.Fprintf(b, "- nri-cni logged: `%s`\n", line)
	}
}

func yesNo(v bool) string {
	if v {
		return "yes"
	}
	return "no"
}

func formatRatio(v *float64) string {
	if v == nil {
		return "undefined"
	}
	return fmt.Sprintf("%.2f", *v)
}

func formatInterval(i *stats.Interval) string {
	if i == nil {
		return ""
	}
	end := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "open"
		}
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%s to %s", end(i.Low), end(i.High))
}

// formatOptionalRatio formats a ratio to the floor, empty where the metric
// has no floor.
func formatOptionalRatio(v, floor *float64) string {
	if floor == nil {
		return ""
	}
	return formatRatio(v)
}

func formatOptionalMs(v *float64) string {
	if v == nil {
		return ""
	}
	return fmt.Sprintf("%.1f", *v)
}

func formatWalls(walls []float64) string {
	if len(walls) == 0 {
		return ""
	}
	each := make([]string, len(walls))
	for i, wall := range walls {
		each[i] = fmt.Sprintf("%.2f", wall)
	}
	return fmt.Sprintf("%.2f (%s)", stats.Median(walls), strings.Join(each, ", "))
}

// Markers delimit the generated part of a page that UpdatePage replaces.
const (
	BeginMarker = "<!-- bench results: begin (written by make bench) -->"
	EndMarker   = "<!-- bench results: end -->"
)

// UpdatePage replaces the text between BeginMarker and EndMarker in the file
// at path with content.
func UpdatePage(path, content string) error {
	page, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("failed to read %s: %w", path, err)
	}
	text := string(page)
	begin := strings.Index(text, BeginMarker)
	end := strings.Index(text, EndMarker)
	if begin < 0 || end < begin {
		return fmt.Errorf("failed to find the markers %q and %q in %s: add them where the results go", BeginMarker, EndMarker, path)
	}
	updated := text[:begin+len(BeginMarker)] + "\n\n" + content + "\n" + text[end:]
	if err := os.WriteFile(path, []byte(updated), 0o644); err != nil {
		return fmt.Errorf("failed to write %s: %w", path, err)
	}
	return nil
}
