package report

import (
	"fmt"
	"math"

	"github.com/nri-cni/nri-cni/bench/stats"
)

// Targets of the benchmark.
const (
	// maxSequentialRatio is the highest allowed ratio of nri-cni's extra
	// cost per pod to the built-in's, for the sequential medians.
	maxSequentialRatio = 1.0
	// maxFloorRatio is the highest allowed ratio of nri-cni's extra cost per
	// pod to the raw libcni floor: within 10%.
	maxFloorRatio = 1.10
	// maxBurstRatio is the highest allowed ratio for the bursts.
	maxBurstRatio = 1.1
	// maxRSSMiB is the highest allowed resident memory with MemoryPods pods.
	maxRSSMiB = 30.0
)

// bootstrapIterations is the number of resamples of each bootstrap interval.
const bootstrapIterations = 2000

// Ratio compares the extra cost per pod of an nri-cni setup over the
// baseline, (c) - (a), with the built-in's, (b) - (a), and with the floor.
type Ratio struct {
	Setup  string `json:"setup"`
	Metric string `json:"metric"`
	// Burst marks the ratios of the bursts.
	Burst bool `json:"burst"`
	// ExtraMs is (c) - (a) per pod and BuiltinExtraMs (b) - (a) per pod,
	// from medians. For a burst they are the wall time differences divided
	// by the number of pods.
	ExtraMs        float64 `json:"extraMs"`
	BuiltinExtraMs float64 `json:"builtinExtraMs"`
	// VsBuiltin is ExtraMs / BuiltinExtraMs, null when the built-in costs
	// nothing extra. The interval is a 90% bootstrap interval, for the
	// sequential metrics only.
	VsBuiltin         *float64        `json:"vsBuiltin"`
	VsBuiltinInterval *stats.Interval `json:"vsBuiltinInterval,omitempty"`
	// FloorMs is the floor's median that the metric includes: the raw ADD
	// for a start, the raw DEL for a teardown. VsFloor is ExtraMs / FloorMs.
	FloorMs         *float64        `json:"floorMs,omitempty"`
	VsFloor         *float64        `json:"vsFloor,omitempty"`
	VsFloorInterval *stats.Interval `json:"vsFloorInterval,omitempty"`
	// Paired figures take the median of the per-step differences,
	// c[i] - a[i] and b[i] - a[i], of pods started in the same interleaved
	// step, which cancels the noise that a step shares. For a burst a step
	// is a round, and the differences are divided by the pods of a burst.
	PairedExtraMs        *float64        `json:"pairedExtraMs,omitempty"`
	PairedBuiltinExtraMs *float64        `json:"pairedBuiltinExtraMs,omitempty"`
	PairedVsBuiltin      *float64        `json:"pairedVsBuiltin,omitempty"`
	PairedInterval       *stats.Interval `json:"pairedInterval,omitempty"`
}

// Split attributes the extra cost per pod of the nri-cni setups, from paired
// medians: NRIMs is (d) - (a), what nri-cni's hooks cost with no network to
// attach, and SyncMs, AsyncMs and HookMs are (c) - (d), the attach or
// detach of X.
type Split struct {
	Metric string  `json:"metric"`
	NRIMs  float64 `json:"nriMs"`
	// NRIFewPodsMs and NRIManyPodsMs are NRIMs of the steps with fewer and
	// with more than half of a round's pods running: the first and second
	// half of the starts, the second and first half of the removals.
	NRIFewPodsMs  float64 `json:"nriFewPodsMs"`
	NRIManyPodsMs float64 `json:"nriManyPodsMs"`
	SyncMs        float64 `json:"syncMs"`
	AsyncMs       float64 `json:"asyncMs"`
	// HookMs is that of the setup without the early attach, when the run
	// has one.
	HookMs *float64 `json:"hookMs,omitempty"`
	// ControlMs is (a') - (a), the second baseline started last minus the
	// first, when the run has it: the part of NRIMs that the order of the
	// environments alone explains.
	ControlMs *float64 `json:"controlMs,omitempty"`
	// FloorMs is the raw libcni ADD or DEL that the metric includes, or 0.
	FloorMs float64 `json:"floorMs"`
}

// Target is one goal of the benchmark and whether the run met it.
type Target struct {
	Name     string `json:"name"`
	Setup    string `json:"setup"`
	Goal     string `json:"goal"`
	Measured string `json:"measured"`
	// Met is the verdict from the ratio of medians, which the goal names.
	// MetPaired is the verdict from the paired ratio, where there is one:
	// the same ratio from differences of samples taken in the same step.
	Met       bool  `json:"met"`
	MetPaired *bool `json:"metPaired,omitempty"`
	// Note names what the figure leaves out, when that matters.
	Note string `json:"note,omitempty"`
}

// Metric names of the ratios.
const (
	MetricRunp             = "sequential runp"
	MetricFirstContainer   = "sequential runp + first container"
	MetricCreateStart      = "sequential create + start"
	MetricTeardown         = "sequential stopp + rmp"
	MetricBurstRunp        = "burst runp"
	MetricBurstAttached    = "burst until attached"
	MetricBurstRemoval     = "burst removal"
	MetricBurstContainer   = "burst runp + first container"
	MetricBurstRemovalCont = "burst removal (with containers)"
)

// Analyze computes the ratios, splits and targets of r from its results. The
// setups must have the keys baseline, builtin, nri-cni-sync and
// nri-cni-async; nri-cni-none is optional.
func (r *Report) Analyze() error {
	baseline, builtin := r.Setup("baseline"), r.Setup("builtin")
	if baseline == nil || builtin == nil {
		return fmt.Errorf("report has no baseline or builtin setup")
	}
	r.Ratios, r.Splits, r.Targets = nil, nil, nil
	for _, key := range []string{"nri-cni-sync", "nri-cni-async", "nri-cni-hook"} {
		c := r.Setup(key)
		if c == nil && key == "nri-cni-hook" {
			continue
		}
		if c == nil {
			return fmt.Errorf("report has no setup %s", key)
		}
		r.addSequentialRatios(baseline, builtin, c)
		r.addBurstRatios(baseline, builtin, c)
	}
	if none := r.Setup("nri-cni-none"); none != nil {
		r.addSplits(baseline, none, r.Setup("nri-cni-sync"), r.Setup("nri-cni-async"), r.Setup("nri-cni-hook"),
			r.Setup("baseline-last"))
	}
	r.addTargets()
	return nil
}

// sequentialMetric is one sequential figure of every setup, with the floor
// operation it includes.
type sequentialMetric struct {
	name    string
	samples func(*Setup) []float64
	floor   []float64
}

func (r *Report) sequentialMetrics() []sequentialMetric {
	return []sequentialMetric{
		{MetricRunp, func(s *Setup) []float64 { return s.Sequential.Runp.SamplesMs }, r.Floor.Add.SamplesMs},
		{MetricCreateStart, func(s *Setup) []float64 { return s.Sequential.CreateStart.SamplesMs }, nil},
		{MetricFirstContainer, func(s *Setup) []float64 { return s.Sequential.FirstContainer.SamplesMs }, r.Floor.Add.SamplesMs},
		{MetricTeardown, func(s *Setup) []float64 { return s.Sequential.Teardown.SamplesMs }, r.Floor.Del.SamplesMs},
	}
}

func (r *Report) addSplits(a, d, sync, async, hook, control *Setup) {
	for _, metric := range r.sequentialMetrics() {
		sa, sd := metric.samples(a), metric.samples(d)
		floor := 0.0
		if len(metric.floor) > 0 {
			floor = stats.Median(metric.floor)
		}
		nri := stats.PairedDifferences(sd, sa)
		early, late := r.splitByRoundHalf(nri)
		few, many := early, late
		if metric.name == MetricTeardown {
			// A round removes its pods in the order it started them.
			few, many = late, early
		}
		var hookMs, controlMs *float64
		if hook != nil {
			hookMs = stats.Finite(stats.Median(stats.PairedDifferences(metric.samples(hook), sd)))
		}
		if control != nil {
			controlMs = stats.Finite(stats.Median(stats.PairedDifferences(metric.samples(control), sa)))
		}
		r.Splits = append(r.Splits, Split{
			Metric:        metric.name,
			HookMs:        hookMs,
			ControlMs:     controlMs,
			NRIMs:         stats.Median(nri),
			NRIFewPodsMs:  stats.Median(few),
			NRIManyPodsMs: stats.Median(many),
			SyncMs:        stats.Median(stats.PairedDifferences(metric.samples(sync), sd)),
			AsyncMs:       stats.Median(stats.PairedDifferences(metric.samples(async), sd)),
			FloorMs:       floor,
		})
	}
}

// splitByRoundHalf returns the samples of the first and of the second half
// of each sequential round. Sample j is step j % Pods of its round.
func (r *Report) splitByRoundHalf(samples []float64) (first, second []float64) {
	pods := max(r.Parameters.Pods, 1)
	for j, sample := range samples {
		if j%pods < pods/2 {
			first = append(first, sample)
		} else {
			second = append(second, sample)
		}
	}
	return first, second
}

func (r *Report) addSequentialRatios(a, b, c *Setup) {
	for i, metric := range r.sequentialMetrics() {
		sa, sb, sc := metric.samples(a), metric.samples(b), metric.samples(c)
		ma, mb, mc := stats.Median(sa), stats.Median(sb), stats.Median(sc)
		seed := uint64(i + 1)
		vsBuiltin := stats.BootstrapExtraCostRatio(sa, sb, sc, bootstrapIterations, seed)
		paired := stats.BootstrapPairedExtraCostRatio(sa, sb, sc, bootstrapIterations, seed)
		ratio := Ratio{
			Setup:                c.Key,
			Metric:               metric.name,
			ExtraMs:              mc - ma,
			BuiltinExtraMs:       mb - ma,
			VsBuiltin:            stats.Finite(stats.ExtraCostRatio(ma, mb, mc)),
			VsBuiltinInterval:    &vsBuiltin,
			PairedExtraMs:        stats.Finite(stats.Median(stats.PairedDifferences(sc, sa))),
			PairedBuiltinExtraMs: stats.Finite(stats.Median(stats.PairedDifferences(sb, sa))),
			PairedVsBuiltin:      stats.Finite(stats.PairedExtraCostRatio(sa, sb, sc)),
			PairedInterval:       &paired,
		}
		if len(metric.floor) > 0 {
			floor := stats.Median(metric.floor)
			vsFloor := stats.BootstrapFloorRatio(sa, sc, metric.floor, bootstrapIterations, seed)
			ratio.FloorMs = stats.Finite(floor)
			ratio.VsFloor = stats.Finite((mc - ma) / floor)
			ratio.VsFloorInterval = &vsFloor
		}
		r.Ratios = append(r.Ratios, ratio)
	}
}

func (r *Report) addBurstRatios(a, b, c *Setup) {
	metrics := []struct {
		name  string
		walls func(*Setup) []float64
	}{
		{MetricBurstRunp, func(s *Setup) []float64 { return s.Burst.RunpS }},
		{MetricBurstAttached, func(s *Setup) []float64 { return s.Burst.AttachedS }},
		{MetricBurstRemoval, func(s *Setup) []float64 { return s.Burst.RemovalS }},
		{MetricBurstContainer, func(s *Setup) []float64 { return s.Burst.RunpContainerS }},
		{MetricBurstRemovalCont, func(s *Setup) []float64 { return s.Burst.RemovalContainerS }},
	}
	pods := float64(max(c.Burst.Pods, 1))
	for _, metric := range metrics {
		wa, wb, wc := metric.walls(a), metric.walls(b), metric.walls(c)
		ma, mb, mc := stats.Median(wa), stats.Median(wb), stats.Median(wc)
		r.Ratios = append(r.Ratios, Ratio{
			Setup:                c.Key,
			Metric:               metric.name,
			Burst:                true,
			ExtraMs:              (mc - ma) * 1000 / pods,
			BuiltinExtraMs:       (mb - ma) * 1000 / pods,
			VsBuiltin:            stats.Finite(stats.ExtraCostRatio(ma, mb, mc)),
			PairedExtraMs:        stats.Finite(stats.Median(stats.PairedDifferences(wc, wa)) * 1000 / pods),
			PairedBuiltinExtraMs: stats.Finite(stats.Median(stats.PairedDifferences(wb, wa)) * 1000 / pods),
			PairedVsBuiltin:      stats.Finite(stats.PairedExtraCostRatio(wa, wb, wc)),
		})
	}
}

// ratio returns the ratio of setup and metric, or nil.
func (r *Report) ratio(setup, metric string) *Ratio {
	for i := range r.Ratios {
		if r.Ratios[i].Setup == setup && r.Ratios[i].Metric == metric {
			return &r.Ratios[i]
		}
	}
	return nil
}

func (r *Report) addTargets() {
	runpNote := map[string]string{
		"nri-cni-async": "runp returns before the ADD; runp + first container includes it",
	}
	for _, key := range []string{"nri-cni-sync", "nri-cni-async"} {
		for _, metric := range []string{MetricRunp, MetricFirstContainer, MetricTeardown} {
			ratio := r.ratio(key, metric)
			note := ""
			if metric == MetricRunp {
				note = runpNote[key]
			}
			r.Targets = append(r.Targets, Target{
				Name:  metric + ": extra cost vs built-in",
				Setup: key,
				Goal:  fmt.Sprintf("(c-a)/(b-a) <= %.1f", maxSequentialRatio),
				Measured: describeRatio(ratio.VsBuiltin, ratio.ExtraMs, ratio.BuiltinExtraMs, "b-a") +
					"; paired " + formatRatio(ratio.PairedVsBuiltin),
				Met:       ratio.VsBuiltin != nil && *ratio.VsBuiltin <= maxSequentialRatio,
				MetPaired: atMost(ratio.PairedVsBuiltin, maxSequentialRatio, true),
				Note:      note,
			})
			r.Targets = append(r.Targets, Target{
				Name:     metric + ": extra cost vs libcni floor",
				Setup:    key,
				Goal:     fmt.Sprintf("(c-a)/floor <= %.2f", maxFloorRatio),
				Measured: describeRatio(ratio.VsFloor, ratio.ExtraMs, deref(ratio.FloorMs), "floor"),
				Met:      ratio.VsFloor != nil && *ratio.VsFloor <= maxFloorRatio,
				Note:     note,
			})
		}
		failures := r.Setup(key).Burst.Failures
		for _, metric := range []string{MetricBurstRunp, MetricBurstAttached, MetricBurstContainer, MetricBurstRemoval, MetricBurstRemovalCont} {
			ratio := r.ratio(key, metric)
			note := ""
			if metric == MetricBurstRunp {
				note = runpNote[key]
			}
			r.Targets = append(r.Targets, Target{
				Name:  metric + ": all pods succeed, extra cost vs built-in",
				Setup: key,
				Goal:  fmt.Sprintf("0 failures, (c-a)/(b-a) <= %.1f", maxBurstRatio),
				Measured: fmt.Sprintf("%d failures, %s; paired by round %s", failures,
					describeRatio(ratio.VsBuiltin, ratio.ExtraMs, ratio.BuiltinExtraMs, "b-a"), formatRatio(ratio.PairedVsBuiltin)),
				Met:       failures == 0 && ratio.VsBuiltin != nil && *ratio.VsBuiltin <= maxBurstRatio,
				MetPaired: atMost(ratio.PairedVsBuiltin, maxBurstRatio, failures == 0),
				Note:      note,
			})
		}
	}
	for _, usage := range r.Usage {
		if usage.Mode != "sync" && usage.Mode != "async" {
			continue
		}
		rss, ok := usage.RSSMiB[r.Parameters.MemoryPods]
		r.Targets = append(r.Targets, Target{
			Name:     fmt.Sprintf("resident memory with %d pods attached", r.Parameters.MemoryPods),
			Setup:    "nri-cni-" + usage.Mode,
			Goal:     fmt.Sprintf("< %.0f MiB", maxRSSMiB),
			Measured: fmt.Sprintf("%.1f MiB", rss),
			Met:      ok && rss < maxRSSMiB,
		})
	}
}

// atMost returns whether ratio is defined and at most limit, and also, a
// condition such as no failures.
func atMost(ratio *float64, limit float64, also bool) *bool {
	met := also && ratio != nil && *ratio <= limit
	return &met
}

// describeRatio writes a ratio with the two figures it comes from, per pod.
func describeRatio(ratio *float64, extra, reference float64, referenceName string) string {
	value := "undefined"
	if ratio != nil {
		value = fmt.Sprintf("%.2f", *ratio)
	}
	return fmt.Sprintf("%s (c-a %s ms, %s %s ms)", value, formatMs(extra), referenceName, formatMs(reference))
}

func formatMs(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}

func deref(v *float64) float64 {
	if v == nil {
		return math.NaN()
	}
	return *v
}
