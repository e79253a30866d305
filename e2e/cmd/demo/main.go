// Command demo shows nri-cni on a private containerd. It starts containerd
// and bin/nri-cni with one bridge network and runs a pod with a busybox
// container. Then it prints the container's interfaces (eth0 from
// containerd's CRI, net1 from nri-cni), pings net1 from the host, and tears
// everything down. It uses the e2e framework, so it runs exactly what the e2e
// tests run. It needs root and the output of `make build tools images`, which
// `make demo` runs first.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// errStop unwinds the demo after a failure has been printed.
var errStop = errors.New("demo stopped")

// runner implements framework.T for a program. Errorf prints and marks the
// demo failed, Fatalf and Skipf also stop it, and cleanups run when it ends.
type runner struct {
	verbose     bool
	interrupted atomic.Bool
	failed      bool
	cleanups    []func()
}

func (r *runner) Helper() {}

// Logf prints framework messages with -v, and always after a failure, when
// they carry the process logs.
func (r *runner) Logf(format string, args ...any) {
	if r.verbose || r.failed {
		fmt.Printf("    "+format+"\n", args...)
	}
}

func (r *runner) Errorf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
	r.failed = true
}

func (r *runner) Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
	r.failed = true
	panic(errStop)
}

func (r *runner) Skipf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: cannot run: "+format+"\n", args...)
	panic(errStop)
}

// Failed reports whether Fatalf was called, so the framework prints the
// process logs before it removes them.
func (r *runner) Failed() bool {
	return r.failed
}

func (r *runner) Cleanup(f func()) {
	r.cleanups = append(r.cleanups, f)
}

// checkInterrupt stops the demo between steps after SIGINT or SIGTERM.
func (r *runner) checkInterrupt() {
	if r.interrupted.Load() {
		r.Fatalf("interrupted")
	}
}

func main() {
	verbose := flag.Bool("v", false, "print every crictl call and the framework's timings")
	flag.Parse()

	r := &runner{verbose: *verbose}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		fmt.Fprintln(os.Stderr, "demo: interrupted; cleaning up after the current step")
		r.interrupted.Store(true)
	}()

	code := run(r)
	fmt.Println("Tearing down: pods, nri-cni, containerd, mounts, cgroups, bridges and the folder")
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	if r.failed {
		code = 1
	}
	os.Exit(code)
}

// run executes the demo and returns the exit code.
func run(r *runner) (code int) {
	defer func() {
		if recovered := recover(); recovered != nil {
			if recovered != errStop {
				panic(recovered)
			}
			code = 1
		}
	}()

	start := time.Now()
	env := framework.New(r)
	fmt.Printf("containerd %s ready in %s, everything below %s\n",
		containerdVersion(env), env.ContainerdStartTime.Round(time.Millisecond), env.Dir)
	r.checkInterrupt()

	network := framework.Network{Name: "demo", Bridge: env.Bridge("demo"), Subnet: env.Subnet(1)}
	networkFile := env.WriteNetwork(network)
	fmt.Printf("nri-cni network %s: bridge %s, subnet %s (%s)\n", network.Name, network.Bridge, network.Subnet, networkFile)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())
	fmt.Printf("nri-cni connected (PID %d), log %s\n", nriCNI.PID(), nriCNI.LogPath)
	r.checkInterrupt()

	pod := env.MustRunPod(framework.PodConfig{Name: "demo"})
	container := env.MustRunContainer(pod, framework.ContainerConfig{Name: "shell", Command: []string{"sleep", "3600"}})
	status, err := env.InspectPod(pod.ID)
	if err != nil {
		r.Fatalf("%v", err)
	}
	fmt.Printf("pod default/demo running: sandbox %.12s, pause PID %d, container shell %.12s\n", pod.ID, status.PID, container)
	r.checkInterrupt()

	output, err := env.Exec(container, "ip", "addr", "show")
	if err != nil {
		r.Fatalf("%v", err)
	}
	fmt.Println("\n$ crictl exec shell ip addr show")
	for _, line := range strings.Split(strings.TrimRight(output, "\n"), "\n") {
		fmt.Println("  " + line)
	}
	fmt.Println()
	output, err = env.Exec(container, "ip", "-o", "-4", "addr", "show")
	if err != nil {
		r.Fatalf("%v", err)
	}
	addresses := parseAddresses(output)
	eth0, hasEth0 := addresses["eth0"]
	net1, hasNet1 := addresses["net1"]
	if !hasEth0 || !env.CRISubnet.Contains(eth0.Addr()) {
		r.Fatalf("container has no eth0 in the CRI subnet %s", env.CRISubnet)
	}
	if !hasNet1 || !network.Subnet.Contains(net1.Addr()) {
		r.Fatalf("container has no net1 in subnet %s of network %s; nri-cni log:\n%s", network.Subnet, network.Name, nriCNI.Log())
	}
	fmt.Printf("  eth0 %-18s from containerd's CRI (network %s, bridge %s)\n", eth0, framework.CRINetworkName, env.CRIBridge)
	fmt.Printf("  net1 %-18s from nri-cni (network %s, bridge %s)\n\n", net1, network.Name, network.Bridge)

	for _, entry := range framework.LogEntries(nriCNI.Log(), "attached network") {
		if entry.String("sandboxID") == pod.ID {
			fmt.Printf("nri-cni logged: attached network %s as %s in %s, took %s\n",
				entry.String("network"), entry.String("ifName"), entry.String("netns"), formatTook(entry["took"]))
		}
	}
	ping(r, net1.Addr(), network.Bridge)
	r.checkInterrupt()

	if err := env.StopPod(pod.ID); err != nil {
		r.Fatalf("%v", err)
	}
	if err := env.RemovePod(pod.ID); err != nil {
		r.Fatalf("%v", err)
	}
	residue, err := env.NetworkResidue(network.Name, network.Bridge)
	if err != nil {
		r.Fatalf("%v", err)
	}
	if !residue.Empty() {
		r.Fatalf("pod removed, but nri-cni left %s", residue)
	}
	fmt.Printf("pod stopped and removed: no lease, veth, state file or cache entry left (demo took %s)\n",
		time.Since(start).Round(time.Millisecond))
	return 0
}

// ping sends one ping from the host to address over the network's bridge.
func ping(r *runner, address netip.Addr, bridge string) {
	output, err := exec.Command("/bin/busybox", "ping", "-c", "1", "-W", "2", address.String()).CombinedOutput()
	if err != nil {
		r.Fatalf("host cannot ping net1 %s: %v: %s", address, err, output)
	}
	summary := ""
	for _, line := range strings.Split(string(output), "\n") {
		if strings.Contains(line, "time=") {
			summary = strings.TrimSpace(line[strings.Index(line, "time="):])
		}
	}
	fmt.Printf("host pinged net1 %s over bridge %s: %s\n", address, bridge, summary)
}

// parseAddresses returns the IPv4 address of each interface in
// `ip -o -4 addr show` output.
func parseAddresses(output string) map[string]netip.Prefix {
	addresses := map[string]netip.Prefix{}
	for _, line := range strings.Split(output, "\n") {
		fields := strings.Fields(line)
		if len(fields) < 4 || fields[2] != "inet" {
			continue
		}
		if prefix, err := netip.ParsePrefix(fields[3]); err == nil {
			addresses[fields[1]] = prefix
		}
	}
	return addresses
}

// formatTook formats the took field of a zap log entry, which zap's default
// duration encoder writes as float seconds.
func formatTook(value any) string {
	switch took := value.(type) {
	case float64:
		return time.Duration(took * float64(time.Second)).Round(time.Microsecond).String()
	case string:
		return took
	default:
		return fmt.Sprint(value)
	}
}

func containerdVersion(env *framework.Env) string {
	output, err := exec.Command(filepath.Join(env.Paths.ToolsBin, "containerd"), "--version").Output()
	if err != nil {
		return "(version unknown)"
	}
	fields := strings.Fields(string(output))
	if len(fields) >= 3 {
		return fields[2]
	}
	return strings.TrimSpace(string(output))
}
