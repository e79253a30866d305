// Package stats summarizes latency samples and computes the cost ratios of
// the benchmark, with bootstrap intervals that show how much of a ratio is
// noise.
package stats

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
)

// Summary describes a set of samples, in the unit of the samples.
type Summary struct {
	N      int     `json:"n"`
	Min    float64 `json:"min"`
	P25    float64 `json:"p25"`
	Median float64 `json:"median"`
	P75    float64 `json:"p75"`
	P95    float64 `json:"p95"`
	Max    float64 `json:"max"`
	Mean   float64 `json:"mean"`
}

// Summarize returns the summary of samples. An empty slice gives a zero
// Summary.
func Summarize(samples []float64) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	sum := 0.0
	for _, sample := range sorted {
		sum += sample
	}
	return Summary{
		N:      len(sorted),
		Min:    sorted[0],
		P25:    Percentile(sorted, 25),
		Median: Percentile(sorted, 50),
		P75:    Percentile(sorted, 75),
		P95:    Percentile(sorted, 95),
		Max:    sorted[len(sorted)-1],
		Mean:   sum / float64(len(sorted)),
	}
}

// Percentile returns the p-th percentile (0 to 100) of sorted samples, with
// linear interpolation between the two closest ranks (the default method of
// numpy and R). It returns NaN for no samples.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := p / 100 * float64(len(sorted)-1)
	lower := int(math.Floor(rank))
	upper := int(math.Ceil(rank))
	if lower == upper {
		return sorted[lower]
	}
	fraction := rank - float64(lower)
	return sorted[lower] + fraction*(sorted[upper]-sorted[lower])
}

// Median returns the median of samples, which need not be sorted.
func Median(samples []float64) float64 {
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	return Percentile(sorted, 50)
}

// ExtraCostRatio returns (c - a) / (b - a): the extra cost of setup c over
// baseline a, as a multiple of the extra cost of setup b. It is NaN when b
// costs no more than a.
func ExtraCostRatio(a, b, c float64) float64 {
	if b <= a {
		return math.NaN()
	}
	return (c - a) / (b - a)
}

// Interval is a range that holds a statistic with a given confidence.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// BootstrapExtraCostRatio returns a 90% percentile-bootstrap interval of
// ExtraCostRatio of the medians of a, b and c: each of the iterations
// resamples every set with replacement. Resamples in which b's median is not
// above a's have no ratio and count as unbounded at both ends, so a noisy b
// widens the interval instead of hiding. seed makes the interval repeatable.
func BootstrapExtraCostRatio(a, b, c []float64, iterations int, seed uint64) Interval {
	return bootstrap(iterations, seed, func(r *rand.Rand) float64 {
		return ExtraCostRatio(resampledMedian(r, a), resampledMedian(r, b), resampledMedian(r, c))
	})
}

// BootstrapFloorRatio returns a 90% percentile-bootstrap interval of
// (median(c) - median(a)) / median(floor).
func BootstrapFloorRatio(a, c, floor []float64, iterations int, seed uint64) Interval {
	return bootstrap(iterations, seed, func(r *rand.Rand) float64 {
		return (resampledMedian(r, c) - resampledMedian(r, a)) / resampledMedian(r, floor)
	})
}

func bootstrap(iterations int, seed uint64, statistic func(*rand.Rand) float64) Interval {
	if iterations <= 0 {
		return Interval{Low: math.NaN(), High: math.NaN()}
	}
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	values := make([]float64, 0, iterations)
	undefined := 0
	for range iterations {
		value := statistic(r)
		if math.IsNaN(value) || math.IsInf(value, 0) {
			undefined++
			continue
		}
		values = append(values, value)
	}
	// An undefined resample is placed below and above every value, half
	// each, so that it pushes both ends of the interval outwards.
	slices.Sort(values)
	lowIndex := int(0.05*float64(iterations)) - undefined/2
	highIndex := int(0.95*float64(iterations)) - undefined/2
	interval := Interval{Low: math.Inf(-1), High: math.Inf(1)}
	if lowIndex >= 0 && lowIndex < len(values) {
		interval.Low = values[lowIndex]
	}
	if highIndex >= 0 && highIndex < len(values) {
		interval.High = values[highIndex]
	}
	return interval
}

func resampledMedian(r *rand.Rand, samples []float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	resample := make([]float64, len(samples))
	for i := range resample {
		resample[i] = samples[r.IntN(len(samples))]
	}
	slices.Sort(resample)
	return Percentile(resample, 50)
}

// MarshalJSON writes the interval with null for an unbounded end, which
// JSON numbers cannot express.
func (i Interval) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Low  *float64 `json:"low"`
		High *float64 `json:"high"`
	}{Finite(i.Low), Finite(i.High)})
}

// Finite returns a pointer to v, or nil when v is NaN or infinite, for JSON.
func Finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// PairedDifferences returns x[i] - y[i] for every index that both have.
// Samples taken in the same interleaved step share that step's machine
// noise, so their differences vary less than the samples themselves.
func PairedDifferences(x, y []float64) []float64 {
	n := min(len(x), len(y))
	differences := make([]float64, n)
	for i := range n {
		differences[i] = x[i] - y[i]
	}
	return differences
}

// PairedExtraCostRatio returns median(c[i] - a[i]) / median(b[i] - a[i]), or
// NaN when the median of b - a is not above zero.
func PairedExtraCostRatio(a, b, c []float64) float64 {
	extra := Median(PairedDifferences(b, a))
	if !(extra > 0) {
		return math.NaN()
	}
	return Median(PairedDifferences(c, a)) / extra
}

// BootstrapPairedExtraCostRatio returns a 90% percentile-bootstrap interval
// of PairedExtraCostRatio, resampling the steps: index i of a, b and c
// together.
func BootstrapPairedExtraCostRatio(a, b, c []float64, iterations int, seed uint64) Interval {
	n := min(len(a), len(b), len(c))
	return bootstrap(iterations, seed, func(r *rand.Rand) float64 {
		if n == 0 {
			return math.NaN()
		}
		ra, rb, rc := make([]float64, n), make([]float64, n), make([]float64, n)
		for j := range n {
			i := r.IntN(n)
			ra[j], rb[j], rc[j] = a[i], b[i], c[i]
		}
		return PairedExtraCostRatio(ra, rb, rc)
	})
}
