package main

import (
	"fmt"
	"sync"
	"time"

	"github.com/nri-cni/nri-cni/bench/report"
	"github.com/nri-cni/nri-cni/e2e/framework"
)

// attachTimeout bounds the wait for the background attaches of a burst in
// async mode.
const attachTimeout = 2 * time.Minute

// maxFailureMessages is how many failure messages a burst keeps.
const maxFailureMessages = 5

// burstSamples collects the bursts of one setup.
type burstSamples struct {
	burst   report.Burst
	podRunp []float64
}

// burstSetups returns the setups that the bursts compare: all but the one
// without a network and the second baseline, which only explain the
// sequential figures.
func burstSetups(setups []*setup) []*setup {
	var selected []*setup
	for _, s := range setups {
		if s.key != keyNoNet && s.key != keyControl {
			selected = append(selected, s)
		}
	}
	return selected
}

// runBursts runs, in each round, a burst of pods started at once with
// `crictl runp` alone and their removal at once in every setup, and then a
// burst of pods started with their first container and their removal in
// every setup. The order of the setups rotates with the round.
func runBursts(r *runner, setups []*setup, pods, rounds int) map[string]report.Burst {
	samples := map[string]*burstSamples{}
	for _, s := range setups {
		samples[s.key] = &burstSamples{burst: report.Burst{Pods: pods}}
	}
	for round := range rounds {
		r.Progressf("burst round %d of %d: %d pods at once in each setup", round+1, rounds, pods)
		for _, withContainer := range []bool{false, true} {
			for _, s := range rotate(setups, round) {
				runBurst(r, s, samples[s.key], pods, withContainer)
				r.CheckInterrupt()
			}
		}
	}

	bursts := map[string]report.Burst{}
	for key, sample := range samples {
		sample.burst.PodRunp = report.NewDistribution(sample.podRunp)
		bursts[key] = sample.burst
	}
	return bursts
}

// runBurst starts pods at once in s, with or without their first
// container, checks them, removes them at once and checks that nothing is
// left.
func runBurst(r *runner, s *setup, samples *burstSamples, pods int, withContainer bool) {
	b := &samples.burst
	started, burstStart, wall, podRunp, failures := startBurst(s, pods, withContainer)
	recordFailures(b, failures)
	if withContainer {
		b.RunpContainerS = append(b.RunpContainerS, wall.Seconds())
	} else {
		samples.podRunp = append(samples.podRunp, podRunp...)
		b.RunpS = append(b.RunpS, wall.Seconds())
		attachedAt, err := s.waitAttached(len(started), attachTimeout)
		if err != nil {
			r.Fatalf("runp burst: %v", err)
		}
		b.AttachedS = append(b.AttachedS, attachedAt.Sub(burstStart).Seconds())
	}
	if err := s.checkPods(len(started)); err != nil {
		r.Fatalf("burst: %v", err)
	}

	removalWall, failures := removeBurst(s, started)
	recordFailures(b, failures)
	if withContainer {
		b.RemovalContainerS = append(b.RemovalContainerS, removalWall.Seconds())
	} else {
		b.RemovalS = append(b.RemovalS, removalWall.Seconds())
	}
	if err := s.checkClean(); err != nil {
		r.Fatalf("after burst: %v", err)
	}

	if withContainer {
		r.Progressf("  %-24s with container %6.2fs, removal %6.2fs", s.label, wall.Seconds(), removalWall.Seconds())
	} else {
		r.Progressf("  %-24s runp %6.2fs, attached %6.2fs, removal %6.2fs", s.label, wall.Seconds(),
			b.AttachedS[len(b.AttachedS)-1], removalWall.Seconds())
	}
}

// startBurst starts pods goroutines at once, each running one pod and,
// withContainer, its first container. It returns the pods that started, the
// start of the burst, the wall time until the last goroutine returned, each
// pod's runp latency in milliseconds, and the errors.
func startBurst(s *setup, pods int, withContainer bool) ([]*framework.Pod, time.Time, time.Duration, []float64, []error) {
	var mu sync.Mutex
	var started []*framework.Pod
	var runp []float64
	var errs []error
	start, wall := atOnce(pods, func(int) {
		pod, times, err := s.startPod(withContainer)
		mu.Lock()
		defer mu.Unlock()
		if pod != nil {
			started = append(started, pod)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.label, err))
			return
		}
		runp = append(runp, milliseconds(times.runp))
	})
	return started, start, wall, runp, errs
}

// removeBurst stops and removes pods at once and returns the wall time until
// the last is gone.
func removeBurst(s *setup, pods []*framework.Pod) (time.Duration, []error) {
	var mu sync.Mutex
	var errs []error
	_, wall := atOnce(len(pods), func(i int) {
		if _, err := s.removePod(pods[i]); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", s.label, err))
			mu.Unlock()
		}
	})
	return wall, errs
}

// atOnce runs work(0) to work(n-1) in n goroutines released together and
// returns the release time and the wall time until the last returned.
func atOnce(n int, work func(i int)) (time.Time, time.Duration) {
	release := make(chan struct{})
	var ready, done sync.WaitGroup
	ready.Add(n)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-release
			work(i)
		}()
	}
	ready.Wait()
	start := time.Now()
	close(release)
	done.Wait()
	return start, time.Since(start)
}

func recordFailures(b *report.Burst, failures []error) {
	b.Failures += len(failures)
	for _, err := range failures {
		if len(b.FailureMessages) < maxFailureMessages {
			b.FailureMessages = append(b.FailureMessages, err.Error())
		}
	}
}
