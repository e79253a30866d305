package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nri-cni/nri-cni/bench/floor"
	"github.com/nri-cni/nri-cni/e2e/framework"
)

// sequentialSamples are the latencies of one setup, in milliseconds.
type sequentialSamples struct {
	runp, firstContainer, teardown []float64
}

// sequentialResult is the outcome of the sequential phase.
type sequentialResult struct {
	samples            map[string]*sequentialSamples
	floorAdd, floorDel []float64
	// rss50 maps an nri-cni setup key to its resident memory in bytes with
	// the pods of a round attached, one value per round.
	rss50 map[string][]int64
	// cpu maps a setup key to the CPU time that its containerd, and its
	// nri-cni, used during the phase.
	containerdCPU map[string]time.Duration
	nriCNIUsage   map[string]framework.Usage
	checks        []string
}

// subject is one thing that the sequential phase starts and stops once per
// pod index: a setup's pod or an attachment of the floor.
type subject struct {
	start func() error
	stop  func() error
}

// runSequential starts pods one after another in every setup, interleaved:
// pod i of each setup, in an order that rotates with i, then pod i+1. Each
// pod gets its first container. Once a round's pods run in every setup, they
// are removed in the same interleaved way. The floor's ADDs and DELs of X
// take turns with the setups' pods.
func runSequential(r *runner, setups []*setup, fl *floor.Floor, pods, rounds int) *sequentialResult {
	result := &sequentialResult{
		samples:       map[string]*sequentialSamples{},
		rss50:         map[string][]int64{},
		containerdCPU: map[string]time.Duration{},
		nriCNIUsage:   map[string]framework.Usage{},
	}
	for _, s := range setups {
		result.samples[s.key] = &sequentialSamples{}
	}
	before := readUsage(r, setups)

	for round := range rounds {
		r.Progressf("sequential round %d of %d: %d pods in each setup, one after another", round+1, rounds, pods)
		subjects := make([][]subject, pods)
		for i := range pods {
			subjects[i] = sequentialSubjects(setups, fl, result, fmt.Sprintf("r%d-%d", round, i))
		}
		for i := range pods {
			for _, subject := range rotate(subjects[i], i+round) {
				if err := subject.start(); err != nil {
					r.Fatalf("sequential round %d, pod %d: %v", round+1, i+1, err)
				}
			}
			r.CheckInterrupt()
		}

		for _, s := range setups {
			if err := s.checkPods(pods); err != nil {
				r.Fatalf("after sequential round %d: %v", round+1, err)
			}
			if s.attachesWithNRICNI() {
				usage, err := s.nriCNI.Usage()
				if err != nil {
					r.Fatalf("%v", err)
				}
				result.rss50[s.key] = append(result.rss50[s.key], usage.RSS)
			}
		}
		result.checks = appendCheck(result.checks, fmt.Sprintf(
			"every sequential round: %d pods in each setup held an eth0 lease; in (b) and (c) also an X lease and a port on X's bridge; in (c) also a record and a libcni cache entry", pods))

		for i := range pods {
			for _, subject := range rotate(subjects[i], i+round) {
				if err := subject.stop(); err != nil {
					r.Fatalf("sequential round %d, removal of pod %d: %v", round+1, i+1, err)
				}
			}
			r.CheckInterrupt()
		}
		for _, s := range setups {
			if err := s.checkClean(); err != nil {
				r.Fatalf("after removing sequential round %d: %v", round+1, err)
			}
		}
		result.checks = appendCheck(result.checks,
			"after every sequential round: no lease, bridge port, record, libcni cache entry or netns left in any setup")
	}

	after := readUsage(r, setups)
	total := pods * rounds
	for _, s := range setups {
		result.containerdCPU[s.key] = after[s.key].containerd.CPU + after[s.key].containerd.ChildrenCPU -
			before[s.key].containerd.CPU - before[s.key].containerd.ChildrenCPU
		if s.nriCNI != nil {
			result.nriCNIUsage[s.key] = framework.Usage{
				RSS:         after[s.key].nriCNI.RSS,
				PeakRSS:     after[s.key].nriCNI.PeakRSS,
				CPU:         after[s.key].nriCNI.CPU - before[s.key].nriCNI.CPU,
				ChildrenCPU: after[s.key].nriCNI.ChildrenCPU - before[s.key].nriCNI.ChildrenCPU,
			}
		}
	}
	r.Progressf("sequential phase done: %d pods per setup", total)
	return result
}

// sequentialSubjects returns the subjects of one pod index: a pod in each
// setup and an attachment of the floor.
func sequentialSubjects(setups []*setup, fl *floor.Floor, result *sequentialResult, id string) []subject {
	subjects := make([]subject, 0, len(setups)+1)
	for _, s := range setups {
		samples := result.samples[s.key]
		var pod *framework.Pod
		subjects = append(subjects, subject{
			start: func() error {
				started, times, err := s.startPod(true)
				if err != nil {
					return fmt.Errorf("%s: %w", s.label, err)
				}
				pod = started
				samples.runp = append(samples.runp, milliseconds(times.runp))
				samples.firstContainer = append(samples.firstContainer, milliseconds(times.firstContainer))
				return nil
			},
			stop: func() error {
				took, err := s.removePod(pod)
				if err != nil {
					return fmt.Errorf("%s: %w", s.label, err)
				}
				samples.teardown = append(samples.teardown, milliseconds(took))
				return nil
			},
		})
	}

	var attachment *floor.Attachment
	subjects = append(subjects, subject{
		start: func() error {
			added, took, err := fl.Add(context.Background(), "floor-"+id)
			if err != nil {
				return err
			}
			attachment = added
			result.floorAdd = append(result.floorAdd, milliseconds(took))
			return nil
		},
		stop: func() error {
			took, err := fl.Del(context.Background(), attachment)
			if err != nil {
				return err
			}
			result.floorDel = append(result.floorDel, milliseconds(took))
			return nil
		},
	})
	return subjects
}

// rotate returns items rotated left by n, so that each item goes first in
// turn.
func rotate[T any](items []T, n int) []T {
	if len(items) == 0 {
		return items
	}
	n %= len(items)
	return append(append([]T{}, items[n:]...), items[:n]...)
}

// processUsage is the usage so far of a setup's processes.
type processUsage struct {
	containerd framework.Usage
	nriCNI     framework.Usage
}

func readUsage(r *runner, setups []*setup) map[string]processUsage {
	usage := map[string]processUsage{}
	for _, s := range setups {
		var u processUsage
		var err error
		if u.containerd, err = s.env.ContainerdUsage(); err != nil {
			r.Fatalf("%v", err)
		}
		if s.nriCNI != nil {
			if u.nriCNI, err = s.nriCNI.Usage(); err != nil {
				r.Fatalf("%v", err)
			}
		}
		usage[s.key] = u
	}
	return usage
}

// appendCheck adds check once.
func appendCheck(checks []string, check string) []string {
	for _, existing := range checks {
		if existing == check {
			return checks
		}
	}
	return append(checks, check)
}

func milliseconds(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
