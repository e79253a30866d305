package hookpath

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nri-cni/nri-cni/e2e/framework"
)

// BenchmarkHookPath attaches and detaches b.N pods through the plugin's
// hooks. It needs root and `make tools`, and takes its bridge, subnet and
// cleanup from an e2e environment. For a CPU profile of the hooks, run
//
//	go test -run '^$' -bench HookPath -benchtime 100x -cpuprofile cpu.out ./bench/hookpath
func BenchmarkHookPath(b *testing.B) {
	env := framework.New(b)
	network := framework.Network{Name: "hookpath", Bridge: env.Bridge("hook"), Subnet: env.Subnet(3)}
	conflist, err := network.Conflist(env.IPAMDir)
	if err != nil {
		b.Fatal(err)
	}
	dir := filepath.Join(env.Dir, "hookpath")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}

	b.ResetTimer()
	result, err := Run(context.Background(), Options{
		NetworkName: network.Name,
		Conflist:    conflist,
		BinDirs:     []string{env.Paths.CNIBin},
		Dir:         dir,
		Iterations:  b.N,
	})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(result.Attach.Hook.Median, "attach-ms")
	b.ReportMetric(result.Attach.CNIAdd.Median, "add-ms")
	b.ReportMetric(result.Attach.IntentSave.Median+result.Attach.ResultSave.Median, "saves-ms")
	b.ReportMetric(result.Detach.Hook.Median, "detach-ms")
	b.ReportMetric(result.Detach.CNIDel.Median, "del-ms")
	b.ReportMetric(result.CPUPerPodMs, "cpu-ms/pod")
}
