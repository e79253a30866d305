// Command soak creates and removes pods on a private containerd with
// nri-cni. Meanwhile it kills nri-cni with SIGKILL at random moments, also in
// the middle of a CRI call, and restarts containerd once. At the end it
// prints what leaked: leases, veths, netns mounts, state files and libcni
// cache entries. It uses the e2e framework, so it runs exactly what the e2e
// tests run. It needs root and the output of `make build tools images`,
// which `make soak` runs first.
//
// A few pods are alive at any time, so kills and the restart hit running
// pods, and pods start and go away while nri-cni is down. At the end every
// running pod must have its network (the repair of missed attaches), and
// after the last removal nothing may be left. The exit code is 0 only then.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// runner is the framework.T of the soak.
type runner = framework.Program

// options are the soak's command line flags.
type options struct {
	count   int
	kills   int
	window  int
	seed    uint64
	verbose bool
}

func main() {
	var opts options
	flag.IntVar(&opts.count, "count", 500, "number of pods to create and remove")
	flag.IntVar(&opts.kills, "kills", -1, "number of SIGKILLs of nri-cni at random pods; -1 means one per 50 pods")
	flag.IntVar(&opts.window, "window", 4, "number of pods alive at once")
	flag.Uint64Var(&opts.seed, "seed", 0, "seed of the random schedule; 0 picks one from the clock")
	flag.BoolVar(&opts.verbose, "v", false, "print every crictl call and every kill")
	flag.Parse()
	if opts.count < 10 || opts.window < 1 {
		fmt.Fprintln(os.Stderr, "soak: -count must be at least 10 and -window at least 1")
		os.Exit(2)
	}
	if opts.kills < 0 {
		opts.kills = max(1, opts.count/50)
	}
	if opts.seed == 0 {
		opts.seed = uint64(time.Now().UnixNano())
	}

	r := &runner{Name: "soak", Verbose: opts.verbose}
	r.StopOnSignal("interrupted; cleaning up after the current pod")
	os.Exit(r.Run(func() int { return run(r, opts) }))
}

// run executes the soak and returns the exit code.
func run(r *runner, opts options) (code int) {

	start := time.Now()
	env := framework.New(r)
	network := framework.Network{Name: "soak", Bridge: env.Bridge("soak"), Subnet: env.Subnet(1)}
	env.WriteNetwork(network)
	config := env.NRICNIConfig()
	config.LogLevel = "info"
	s := &soak{r: r, env: env, network: network, config: config, opts: opts,
		random: rand.New(rand.NewPCG(opts.seed, opts.seed^0x9e3779b97f4a7c15))}
	s.plan()
	s.nriCNI = env.StartNRICNI(config)
	fmt.Printf("soak: %d pods, %d nri-cni kills, 1 containerd restart (before pod %d), %d pods alive at once, seed %d\n",
		opts.count, len(s.kills), s.restartAt, opts.window, opts.seed)

	for i := 0; i < opts.count; i++ {
		if r.Interrupted() {
			r.Fatalf("interrupted at pod %d", i)
		}
		s.step(i)
		if (i+1)%100 == 0 {
			fmt.Printf("soak: %d pods done in %s\n", i+1, time.Since(start).Round(time.Second))
		}
	}
	if s.nriCNI == nil {
		s.startNRICNI()
	}

	unattached := s.checkAttached(20 * time.Second)
	s.removeAll()
	leftovers, waited, err := env.WaitForNoLeftovers(30*time.Second, network)
	if err != nil {
		r.Fatalf("%v", err)
	}
	criLeases, err := env.Leases(framework.CRINetworkName)
	if err != nil {
		r.Fatalf("%v", err)
	}

	fmt.Printf("soak: %d pods created and removed in %s, %d nri-cni kills (%d during a CRI call), 1 containerd restart\n",
		opts.count, time.Since(start).Round(time.Second), len(s.kills), s.killsInCall)
	fmt.Printf("soak: failed CRI calls: %d; running pods without their network after the repair: %d\n", s.failures, unattached)
	fmt.Printf("soak: leaked %s (waited %s for background teardown)\n", leftovers.Counts(), waited.Round(time.Millisecond))
	fmt.Printf("soak: eth0 leases of containerd's own network: %d\n", len(criLeases))
	if !leftovers.Empty() {
		fmt.Printf("soak: left: %s\n", leftovers)
	}
	if !leftovers.Empty() || s.failures > 0 || unattached > 0 {
		return 1
	}
	return 0
}

// soak is the state of one run.
type soak struct {
	r       *runner
	env     *framework.Env
	network framework.Network
	config  framework.NRICNIConfig
	opts    options
	random  *rand.Rand

	// kills contains the pods during whose iteration nri-cni is killed, and
	// restartAt is the pod before which containerd restarts.
	kills     map[int]bool
	restartAt int
	// nriCNI is nil while nri-cni is down, until pod downUntil.
	nriCNI    *framework.Process
	downUntil int

	live        []*framework.Pod
	failures    int
	killsInCall int
}

// plan picks the pods at which nri-cni is killed and containerd restarts,
// away from the first and last tenth of the run.
func (s *soak) plan() {
	low, high := s.opts.count/10, s.opts.count*9/10
	s.restartAt = low + s.random.IntN(high-low)
	s.kills = map[int]bool{}
	for len(s.kills) < min(s.opts.kills, high-low-1) {
		if at := low + s.random.IntN(high-low); at != s.restartAt {
			s.kills[at] = true
		}
	}
}

// step runs one iteration: the scheduled fault, one new pod, and the removal
// of a random pod once more than the window are alive.
func (s *soak) step(i int) {
	if s.nriCNI == nil && i >= s.downUntil {
		s.startNRICNI()
	}
	if i == s.restartAt {
		s.r.Logf("restarting containerd before pod %d", i)
		s.env.RestartContainerd()
	}

	var killed chan kill
	if s.kills[i] && s.nriCNI != nil {
		// The kill lands at a random moment of this iteration's CRI calls,
		// often inside a RunPodSandbox or a StopPodSandbox of nri-cni.
		killed = make(chan kill, 1)
		process, delay := s.nriCNI, time.Duration(s.random.IntN(300))*time.Millisecond
		go func() {
			time.Sleep(delay)
			killed <- kill{at: time.Now(), err: process.Kill()}
		}()
		s.nriCNI = nil
		s.downUntil = i + 1 + s.random.IntN(4)
		s.r.Logf("killing nri-cni %s into pod %d; it starts again before pod %d", delay, i, s.downUntil)
	}

	if pod, err := s.env.RunPod(framework.PodConfig{Name: fmt.Sprintf("soak-%d", i)}); err != nil {
		s.fail("run pod %d: %v", i, err)
	} else {
		s.live = append(s.live, pod)
		if s.random.IntN(4) == 0 {
			s.runContainer(pod)
		}
	}
	if len(s.live) > s.opts.window {
		victim := s.random.IntN(len(s.live))
		s.remove(s.live[victim])
		s.live = append(s.live[:victim], s.live[victim+1:]...)
	}
	callsDone := time.Now()

	if killed != nil {
		result := <-killed
		if result.err != nil {
			s.r.Fatalf("%v", result.err)
		}
		if result.at.Before(callsDone) {
			s.killsInCall++
		}
	}
}

// kill is the outcome of one SIGKILL of nri-cni.
type kill struct {
	at  time.Time
	err error
}

func (s *soak) startNRICNI() {
	s.nriCNI = s.env.StartNRICNI(s.config)
}

func (s *soak) runContainer(pod *framework.Pod) {
	container, err := s.env.CreateContainer(pod, framework.ContainerConfig{Command: []string{"sleep", "3600"}})
	if err != nil {
		s.fail("create container in pod %s: %v", pod.Config.Name, err)
		return
	}
	if err := s.env.StartContainer(container); err != nil {
		s.fail("start container in pod %s: %v", pod.Config.Name, err)
	}
}

func (s *soak) remove(pod *framework.Pod) {
	if err := s.env.StopPod(pod.ID); err != nil {
		s.fail("stop pod %s: %v", pod.Config.Name, err)
	}
	if err := s.env.RemovePod(pod.ID); err != nil {
		s.fail("remove pod %s: %v", pod.Config.Name, err)
	}
}

// removeAll removes the pods that are still alive, and any sandbox that
// containerd kept after a failed call.
func (s *soak) removeAll() {
	for _, pod := range s.live {
		s.remove(pod)
	}
	s.live = nil
	output, err := s.env.Crictl("pods", "--quiet")
	if err != nil {
		s.r.Fatalf("%v", err)
	}
	for _, id := range strings.Fields(output) {
		fmt.Printf("soak: removing sandbox %s that containerd kept\n", id)
		s.remove(&framework.Pod{ID: id, Config: framework.PodConfig{Name: id}})
	}
}

// checkAttached waits up to timeout for every live pod to have a complete
// state record and returns the number of pods that have none: nri-cni
// attaches pods that started while it was down when it connects again.
func (s *soak) checkAttached(timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		var missing []string
		for _, pod := range s.live {
			if !attached(s.env, pod.ID) {
				missing = append(missing, pod.Config.Name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			for _, name := range missing {
				fmt.Printf("soak: pod %s has no recorded attachment %s after the end of the run\n", name, timeout)
			}
			return len(missing)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *soak) fail(format string, args ...any) {
	s.failures++
	fmt.Fprintf(os.Stderr, "soak: failed to "+format+"\n", args...)
}

// attached reports whether nri-cni recorded a finished attach of a sandbox:
// a state file whose attachments are all in phase added.
func attached(env *framework.Env, sandboxID string) bool {
	content, err := os.ReadFile(filepath.Join(env.StateDir, "sandboxes", sandboxID+".json"))
	if err != nil {
		return false
	}
	var record struct {
		Attachments []struct {
			Phase string `json:"phase"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(content, &record); err != nil || len(record.Attachments) == 0 {
		return false
	}
	for _, attachment := range record.Attachments {
		if attachment.Phase != "added" {
			return false
		}
	}
	return true
}
