package framework

import (
	"os"
	"testing"
	"time"
)

func TestStatTicksCommandWithSpaces(t *testing.T) {
	stat := []byte("4242 (a) b (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 12 3 20 0 8 0 123 456 789\n")
	ticks, err := statTicks(stat)
	if err != nil {
		t.Fatalf("statTicks: %v", err)
	}
	if ticks != [4]int64{250, 75, 12, 3} {
		t.Errorf("statTicks = %v, want [250 75 12 3]", ticks)
	}
}

func TestStatTicksShortLine(t *testing.T) {
	if _, err := statTicks([]byte("1 (init) S 0 1")); err == nil {
		t.Errorf("statTicks of a short line returned no error")
	}
}

func TestStatusBytes(t *testing.T) {
	status := []byte("Name:\tnri-cni\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n")
	rss, err := statusBytes(status, "VmRSS:")
	if err != nil {
		t.Fatalf("statusBytes: %v", err)
	}
	if rss != 10240*1024 {
		t.Errorf("VmRSS = %d bytes, want %d", rss, 10240*1024)
	}
	if _, err := statusBytes(status, "VmSwap:"); err == nil {
		t.Errorf("statusBytes of a missing line returned no error")
	}
}

func TestProcessUsageOfSelf(t *testing.T) {
	// Burn some CPU so that the 10ms ticks move.
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) {
	}
	usage, err := ProcessUsage(os.Getpid())
	if err != nil {
		t.Fatalf("ProcessUsage: %v", err)
	}
	if usage.RSS <= 0 {
		t.Errorf("RSS = %d, want more than 0", usage.RSS)
	}
	if usage.PeakRSS < usage.RSS {
		t.Errorf("PeakRSS %d is below RSS %d", usage.PeakRSS, usage.RSS)
	}
	if usage.CPU <= 0 {
		t.Errorf("CPU = %s after 50ms of work, want more than 0", usage.CPU)
	}
}
