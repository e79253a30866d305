// Command demo shows nri-cni on a private containerd. It starts containerd
// and bin/nri-cni with one bridge network and runs a pod with a busybox
// container. Then it prints the container's interfaces (eth0 from
// containerd's CRI, net1 from nri-cni), pings net1 from the host, and tears
// everything down. It uses the e2e framework, so it runs exactly what the e2e
// tests run. It needs root and the output of `make build tools images`, which
// `make demo` runs first.
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// runner is the framework.T of the demo. It prints the framework's messages
// with -v, and always after a failure, when they carry the process logs.
type runner = framework.Program

func main() {
	verbose := flag.Bool("v", false, "print every crictl call and the framework's timings")
	flag.Parse()

	r := &runner{Name: "demo", Verbose: *verbose, LogsAfterFailure: true,
		CleanupMessage: "Tearing down: pods, nri-cni, containerd, mounts, cgroups, bridges and the folder"}
	r.StopOnSignal("interrupted; cleaning up after the current step")
	os.Exit(r.Run(func() int { return run(r) }))
}

// run executes the demo and returns the exit code.
func run(r *runner) (code int) {

	start := time.Now()
	env := framework.New(r)
	fmt.Printf("containerd %s ready in %s, everything below %s\n",
		containerdVersion(env), env.ContainerdStartTime.Round(time.Millisecond), env.Dir)
	r.CheckInterrupt()

	network := framework.Network{Name: "demo", Bridge: env.Bridge("demo"), Subnet: env.Subnet(1)}
	networkFile := env.WriteNetwork(network)
	fmt.Printf("nri-cni network %s: bridge %s, subnet %s (%s)\n", network.Name, network.Bridge, network.Subnet, networkFile)
	nriCNI := env.StartNRICNI(env.NRICNIConfig())
	fmt.Printf("nri-cni connected (PID %d), log %s\n", nriCNI.PID(), nriCNI.LogPath)
	r.CheckInterrupt()

	pod := env.MustRunPod(framework.PodConfig{Name: "demo"})
	container := env.MustRunContainer(pod, framework.ContainerConfig{Name: "shell", Command: []string{"sleep", "3600"}})
	status, err := env.InspectPod(pod.ID)
	if err != nil {
		r.Fatalf("%v", err)
	}
	fmt.Printf("pod default/demo running: sandbox %.12s, pause PID %d, container shell %.12s\n", pod.ID, status.PID, container)
	r.CheckInterrupt()

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
	r.CheckInterrupt()

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
