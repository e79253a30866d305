// Package chart draws the latency distributions of a benchmark report as a
// PNG: one panel per sequential metric, with a box, every sample and the p95
// of each setup, and a panel of the burst wall times.
package chart

import (
	"fmt"
	"image/color"
	"math/rand/v2"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/nri-cni/nri-cni/bench/report"
	"github.com/nri-cni/nri-cni/bench/stats"
)

// Size of the whole image and its resolution.
const (
	width  = 16 * vg.Inch
	height = 12 * vg.Inch
	dpi    = 96
)

// clipPercentile sets the right end of a latency axis: samples above this
// percentile of any category, plus a margin, are drawn at the edge.
const clipPercentile = 99

// palette has one color per setup, in report order, and one for the floor.
var palette = []color.NRGBA{
	{R: 0x55, G: 0x55, B: 0x55, A: 0xff}, // baseline
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, // built-in
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // nri-cni sync
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}, // nri-cni async
	{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}, // nri-cni sync without the early attach
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, // nri-cni without a network
	{R: 0xaa, G: 0xaa, B: 0xaa, A: 0xff}, // baseline started last
	{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, // floor
}

// category is one row of a latency panel.
type category struct {
	label   string
	samples []float64
	color   color.NRGBA
}

// Write draws the chart of r into a PNG file at path.
func Write(r *report.Report, path string) error {
	floorColor := palette[len(palette)-1]
	panels := []struct {
		title string
		rows  func(s report.Sequential) report.Distribution
		floor *category
	}{
		{"crictl runp", func(s report.Sequential) report.Distribution { return s.Runp }, &category{"floor: libcni ADD", r.Floor.Add.SamplesMs, floorColor}},
		{"crictl runp + create + start of the first container", func(s report.Sequential) report.Distribution { return s.FirstContainer }, nil},
		{"crictl stopp + rmp", func(s report.Sequential) report.Distribution { return s.Teardown }, &category{"floor: libcni DEL", r.Floor.Del.SamplesMs, floorColor}},
	}

	plots := make([]*plot.Plot, 0, 4)
	for _, panel := range panels {
		var categories []category
		for i, s := range r.Setups {
			categories = append(categories, category{s.Label, panel.rows(s.Sequential).SamplesMs, palette[i%len(palette)]})
		}
		if panel.floor != nil {
			categories = append(categories, *panel.floor)
		}
		p, err := latencyPlot(fmt.Sprintf("%s, %d pods per setup, one at a time", panel.title, len(categories[0].samples)), categories)
		if err != nil {
			return err
		}
		plots = append(plots, p)
	}
	burst, err := burstPlot(r)
	if err != nil {
		return err
	}
	plots = append(plots, burst)

	canvas := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	tiles := draw.Tiles{Rows: 2, Cols: 2, PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8),
		PadRight: vg.Points(16), PadX: vg.Points(24), PadY: vg.Points(24)}
	grid := [][]*plot.Plot{{plots[0], plots[1]}, {plots[2], plots[3]}}
	canvases := plot.Align(grid, tiles, draw.New(canvas))
	for row := range grid {
		for col := range grid[row] {
			grid[row][col].Draw(canvases[row][col])
		}
	}

	file, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("failed to create chart file: %w", err)
	}
	defer file.Close()
	if _, err := (vgimg.PngCanvas{Canvas: canvas}).WriteTo(file); err != nil {
		return fmt.Errorf("failed to write chart %s: %w", path, err)
	}
	return file.Close()
}

// latencyPlot draws one horizontal row per category, the first on top: the
// box from p25 to p75 with the median, every sample as a jittered dot, and
// the p95 as a tick labelled with the median and the p95.
func latencyPlot(title string, categories []category) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.X.Label.Text = "milliseconds"
	p.X.Min = 0
	p.Add(plotter.NewGrid())

	limit := 0.0
	for _, c := range categories {
		sorted := slices.Clone(c.samples)
		slices.Sort(sorted)
		limit = max(limit, stats.Percentile(sorted, clipPercentile)*1.15)
	}
	p.X.Max = limit * 1.25 // room for the labels right of the boxes

	names := make([]string, len(categories))
	clipped := 0
	jitter := rand.New(rand.NewPCG(1, 2))
	for i, c := range categories {
		// Row 0 is at the bottom of a plot, so the first category gets the
		// highest row.
		row := float64(len(categories) - 1 - i)
		names[len(categories)-1-i] = c.label
		shown := make(plotter.Values, len(c.samples))
		dots := make(plotter.XYs, len(c.samples))
		for j, sample := range c.samples {
			if sample > limit {
				sample = limit
				clipped++
			}
			shown[j] = sample
			dots[j] = plotter.XY{X: sample, Y: row + (jitter.Float64()-0.5)*0.5}
		}
		if len(shown) == 0 {
			continue
		}

		box, err := plotter.NewBoxPlot(vg.Points(22), row, shown)
		if err != nil {
			return nil, fmt.Errorf("failed to draw box of %s: %w", c.label, err)
		}
		box.Horizontal = true
		box.FillColor = withAlpha(c.color, 0x40)
		box.BoxStyle.Color = c.color
		box.MedianStyle.Color = c.color
		box.MedianStyle.Width = vg.Points(2.5)
		box.WhiskerStyle.Color = c.color
		box.CapWidth = vg.Points(10)
		box.GlyphStyle.Radius = 0

		scatter, err := plotter.NewScatter(dots)
		if err != nil {
			return nil, fmt.Errorf("failed to draw samples of %s: %w", c.label, err)
		}
		scatter.GlyphStyle.Color = withAlpha(c.color, 0x90)
		scatter.GlyphStyle.Radius = vg.Points(1.6)
		scatter.GlyphStyle.Shape = draw.CircleGlyph{}

		summary := stats.Summarize(c.samples)
		p95, err := plotter.NewScatter(plotter.XYs{{X: min(summary.P95, limit), Y: row}})
		if err != nil {
			return nil, err
		}
		p95.GlyphStyle.Shape = draw.PyramidGlyph{}
		p95.GlyphStyle.Color = color.Black
		p95.GlyphStyle.Radius = vg.Points(4)

		labels, err := plotter.NewLabels(plotter.XYLabels{
			XYs:    []plotter.XY{{X: limit * 1.02, Y: row}},
			Labels: []string{fmt.Sprintf("median %.1f\np95 %.1f", summary.Median, summary.P95)},
		})
		if err != nil {
			return nil, err
		}
		for k := range labels.TextStyle {
			labels.TextStyle[k].Font.Size = vg.Points(9)
			labels.TextStyle[k].YAlign = draw.YCenter
		}
		p.Add(box, scatter, p95, labels)
	}
	p.NominalY(names...)
	p.Y.Tick.Label.Font.Size = vg.Points(10)
	p.X.Tick.Marker = wholeTicks{}
	if clipped > 0 {
		noun := "samples"
		if clipped == 1 {
			noun = "sample"
		}
		p.X.Label.Text = fmt.Sprintf("milliseconds (%d %s above %.0f ms drawn at %.0f ms; a triangle marks the p95)",
			clipped, noun, limit, limit)
	} else {
		p.X.Label.Text = "milliseconds (a triangle marks the p95)"
	}
	return p, nil
}

// burstPlot draws the median wall time of each kind of burst as a group of
// bars, one bar per setup.
func burstPlot(r *report.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("bursts of %d pods at once: wall time until all are done, median of %d rounds",
		r.Parameters.BurstPods, r.Parameters.BurstRounds)
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Y.Label.Text = "seconds"
	p.Y.Min = 0
	p.Add(plotter.NewGrid())
	kinds := []struct {
		name  string
		walls func(b report.Burst) []float64
	}{
		{"runp", func(b report.Burst) []float64 { return b.RunpS }},
		{"until attached", func(b report.Burst) []float64 { return b.AttachedS }},
		{"runp + first container", func(b report.Burst) []float64 { return b.RunpContainerS }},
		{"removal", func(b report.Burst) []float64 { return b.RemovalS }},
		{"removal with containers", func(b report.Burst) []float64 { return b.RemovalContainerS }},
	}
	barWidth := vg.Points(14)
	var setups []report.Setup
	for _, s := range r.Setups {
		if s.Burst.Pods > 0 {
			setups = append(setups, s)
		}
	}
	for i, s := range setups {
		values := make(plotter.Values, len(kinds))
		for k, kind := range kinds {
			if walls := kind.walls(s.Burst); len(walls) > 0 {
				values[k] = stats.Median(walls)
			}
		}
		bars, err := plotter.NewBarChart(values, barWidth)
		if err != nil {
			return nil, fmt.Errorf("failed to draw bursts of %s: %w", s.Label, err)
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = barWidth * vg.Length(float64(i)-float64(len(setups)-1)/2)
		p.Add(bars)
		p.Legend.Add(s.Label, bars)
	}
	names := make([]string, len(kinds))
	for k, kind := range kinds {
		names[k] = kind.name
	}
	p.NominalX(names...)
	highest := 0.0
	for _, s := range setups {
		for _, kind := range kinds {
			if walls := kind.walls(s.Burst); len(walls) > 0 {
				highest = max(highest, stats.Median(walls))
			}
		}
	}
	// Headroom above the bars for the legend.
	p.Y.Max = highest * 1.3
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(8)
	p.Legend.TextStyle.Font.Size = vg.Points(10)
	p.X.Tick.Label.Font.Size = vg.Points(10)
	return p, nil
}

func withAlpha(c color.NRGBA, alpha uint8) color.NRGBA {
	c.A = alpha
	return c
}

// wholeTicks are the default ticks of gonum plot labelled without decimals,
// for axes in milliseconds.
type wholeTicks struct{}

func (wholeTicks) Ticks(low, high float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(low, high)
	for i := range ticks {
		if ticks[i].Label != "" {
			ticks[i].Label = fmt.Sprintf("%.0f", ticks[i].Value)
		}
	}
	return ticks
}
