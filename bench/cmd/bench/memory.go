package main

import (
	"sync"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// memoryParallelism is how many pods the memory phase starts or removes at
// a time: enough to keep containerd busy, few enough not to time out.
const memoryParallelism = 8

// settleTime lets nri-cni's heap settle after a change in the number of
// pods before its resident memory is read.
const settleTime = time.Second

// memoryResult is nri-cni's resident memory in one setup.
type memoryResult struct {
	// rss maps the number of attached pods to the resident memory in bytes.
	rss      map[int]int64
	peakRSS  int64
	rssAfter int64
}

// runMemory attaches pods to an nri-cni setup, reads the plugin's resident
// memory, and removes the pods again. rss0 is the memory before the first
// pod of the run.
func runMemory(r *runner, s *setup, pods int, rss0 int64) memoryResult {
	r.Progressf("memory: %d pods attached at once in %s", pods, s.label)
	result := memoryResult{rss: map[int]int64{0: rss0}}

	started := make([]*framework.Pod, pods)
	var mu sync.Mutex
	var errs []error
	inParallel(pods, func(i int) {
		pod, _, err := s.startPod(false)
		mu.Lock()
		defer mu.Unlock()
		started[i] = pod
		if err != nil {
			errs = append(errs, err)
		}
	})
	if len(errs) > 0 {
		r.Fatalf("memory phase of %s: %d of %d pods failed, first: %v", s.label, len(errs), pods, errs[0])
	}
	if _, err := s.waitAttached(pods, attachTimeout); err != nil {
		r.Fatalf("memory phase: %v", err)
	}
	if err := s.checkPods(pods); err != nil {
		r.Fatalf("memory phase: %v", err)
	}
	time.Sleep(settleTime)
	usage := readProcessUsage(r, s.nriCNI)
	result.rss[pods] = usage.RSS
	r.CheckInterrupt()

	inParallel(pods, func(i int) {
		if _, err := s.removePod(started[i]); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	})
	if len(errs) > 0 {
		r.Fatalf("memory phase of %s: %d of %d pods failed to stop, first: %v", s.label, len(errs), pods, errs[0])
	}
	if err := s.checkClean(); err != nil {
		r.Fatalf("after memory phase: %v", err)
	}
	time.Sleep(settleTime)
	usage = readProcessUsage(r, s.nriCNI)
	result.rssAfter, result.peakRSS = usage.RSS, usage.PeakRSS
	r.Progressf("  %s: %.1f MiB with %d pods, %.1f MiB after, peak %.1f MiB", s.label,
		mebibytes(result.rss[pods]), pods, mebibytes(result.rssAfter), mebibytes(result.peakRSS))
	return result
}

// inParallel runs work(0) to work(n-1) on memoryParallelism goroutines.
func inParallel(n int, work func(i int)) {
	next := make(chan int)
	var done sync.WaitGroup
	for range memoryParallelism {
		done.Add(1)
		go func() {
			defer done.Done()
			for i := range next {
				work(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	done.Wait()
}

func readProcessUsage(r *runner, process *framework.Process) framework.Usage {
	usage, err := process.Usage()
	if err != nil {
		r.Fatalf("%v", err)
	}
	return usage
}

func mebibytes(bytes int64) float64 {
	return float64(bytes) / (1 << 20)
}
