package stats

import (
	"encoding/json"
	"math"
	"testing"
)

func TestPercentileInterpolates(t *testing.T) {
	sorted := []float64{10, 20, 30, 40, 50}
	cases := map[float64]float64{0: 10, 25: 20, 50: 30, 90: 46, 95: 48, 100: 50}
	for p, want := range cases {
		if got := Percentile(sorted, p); math.Abs(got-want) > 1e-9 {
			t.Errorf("Percentile(%v, %v) = %v, want %v", sorted, p, got, want)
		}
	}
}

func TestPercentileEmptyIsNaN(t *testing.T) {
	if got := Percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("Percentile(nil, 50) = %v, want NaN", got)
	}
}

func TestSummarizeUnsorted(t *testing.T) {
	summary := Summarize([]float64{5, 1, 4, 2, 3})
	if summary.N != 5 || summary.Min != 1 || summary.Max != 5 {
		t.Errorf("Summarize n/min/max = %d/%v/%v, want 5/1/5", summary.N, summary.Min, summary.Max)
	}
	if summary.Median != 3 {
		t.Errorf("Summarize median = %v, want 3", summary.Median)
	}
	if summary.Mean != 3 {
		t.Errorf("Summarize mean = %v, want 3", summary.Mean)
	}
	if math.Abs(summary.P95-4.8) > 1e-9 {
		t.Errorf("Summarize p95 = %v, want 4.8", summary.P95)
	}
}

func TestExtraCostRatio(t *testing.T) {
	if got := ExtraCostRatio(100, 110, 105); got != 0.5 {
		t.Errorf("ExtraCostRatio(100, 110, 105) = %v, want 0.5", got)
	}
	if got := ExtraCostRatio(100, 100, 105); !math.IsNaN(got) {
		t.Errorf("ExtraCostRatio with b = a = %v, want NaN", got)
	}
}

func TestBootstrapExtraCostRatioHoldsTrueRatio(t *testing.T) {
	var a, b, c []float64
	for i := range 100 {
		noise := float64(i%10) - 4.5
		a = append(a, 100+noise)
		b = append(b, 120+noise)
		c = append(c, 130+noise)
	}
	interval := BootstrapExtraCostRatio(a, b, c, 500, 1)
	if interval.Low > 1.5 || interval.High < 1.5 {
		t.Errorf("interval %+v does not hold the true ratio 1.5", interval)
	}
	if interval.High-interval.Low > 0.5 {
		t.Errorf("interval %+v is wider than 0.5 for low-noise samples", interval)
	}
}

func TestBootstrapUndefinedRatiosWiden(t *testing.T) {
	a := []float64{100, 101, 102}
	b := []float64{100, 101, 102}
	c := []float64{110, 111, 112}
	interval := BootstrapExtraCostRatio(a, b, c, 200, 1)
	if !math.IsInf(interval.Low, -1) || !math.IsInf(interval.High, 1) {
		t.Errorf("interval %+v with b equal to a, want unbounded at both ends", interval)
	}
}

func TestIntervalJSONUsesNullForUnbounded(t *testing.T) {
	data, err := json.Marshal(Interval{Low: 0.5, High: math.Inf(1)})
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"low":0.5,"high":null}` {
		t.Errorf("JSON = %s, want {\"low\":0.5,\"high\":null}", data)
	}
}

func TestPairedExtraCostRatioCancelsSharedNoise(t *testing.T) {
	// Each step adds the same large noise to every setup.
	var a, b, c []float64
	for i := range 60 {
		noise := float64((i * 37) % 200)
		a = append(a, 100+noise)
		b = append(b, 110+noise)
		c = append(c, 105+noise)
	}
	if got := PairedExtraCostRatio(a, b, c); math.Abs(got-0.5) > 1e-9 {
		t.Errorf("PairedExtraCostRatio = %v, want 0.5", got)
	}
	interval := BootstrapPairedExtraCostRatio(a, b, c, 300, 1)
	if interval.Low != 0.5 || interval.High != 0.5 {
		t.Errorf("interval = %+v, want exactly 0.5 at both ends", interval)
	}
}

func TestPairedDifferencesUsesShorterLength(t *testing.T) {
	got := PairedDifferences([]float64{5, 7, 9}, []float64{1, 2})
	if len(got) != 2 || got[0] != 4 || got[1] != 5 {
		t.Errorf("PairedDifferences = %v, want [4 5]", got)
	}
}
