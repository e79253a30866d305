package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// fakePluginScript is a CNI plugin that touches no network. It reads its
// config from stdin, appends "<name> <command> <container> <ifname>
// <prev-result|no-prev-result>" to the log file, prints a result on ADD and
// the version on VERSION. With failDel set it fails DEL with a CNI error.
const fakePluginScript = `#!/bin/sh
input=$(cat)
prev=no-prev-result
case "$input" in
*'"prevResult"'*) prev=prev-result ;;
esac
echo "%[1]s $CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME $prev" >> '%[2]s'
case "$CNI_COMMAND" in
ADD)
	printf '{"cniVersion":"%[3]s","interfaces":[{"name":"%%s","sandbox":"%%s"}],"ips":[{"address":"203.0.113.5/24","interface":0}]}' "$CNI_IFNAME" "$CNI_NETNS"
	;;
DEL)
	if [ '%[4]t' = true ]; then
		printf '{"cniVersion":"%[3]s","code":11,"msg":"fake DEL failure","details":"from %[1]s"}'
		exit 1
	fi
	;;
VERSION)
	printf '{"cniVersion":"%[3]s","supportedVersions":["0.4.0","1.0.0","1.1.0"]}'
	;;
esac
exit 0
`

// fakePlugin describes one fake plugin binary.
type fakePlugin struct {
	name    string
	failDel bool
}

// runnerEnv is a bin dir of fake plugins, their shared log and a cache dir.
type runnerEnv struct {
	binDir   string
	cacheDir string
	logPath  string
	netns    string
	runner   *LibCNI
}

func newRunnerEnv(t *testing.T, cniVersion string, plugins ...fakePlugin) *runnerEnv {
	t.Helper()
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skipf("the fake CNI plugins need /bin/sh: %v", err)
	}
	dir := t.TempDir()
	env := &runnerEnv{
		binDir:   filepath.Join(dir, "bin"),
		cacheDir: filepath.Join(dir, "cache"),
		logPath:  filepath.Join(dir, "calls.log"),
		// Only passed to the plugins as CNI_NETNS: nothing opens it.
		netns: filepath.Join(dir, "netns"),
	}
	if err := os.Mkdir(env.binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range plugins {
		script := fmt.Sprintf(fakePluginScript, p.name, env.logPath, cniVersion, p.failDel)
		if err := os.WriteFile(filepath.Join(env.binDir, p.name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env.runner = NewLibCNI([]string{env.binDir}, env.cacheDir)
	return env
}

// list builds a config list of the plugins, in order, as LoadNetworks would.
func (env *runnerEnv) list(t *testing.T, name, cniVersion string, pluginNames ...string) *libcni.NetworkConfigList {
	t.Helper()
	plugins := make([]map[string]any, len(pluginNames))
	for i, p := range pluginNames {
		plugins[i] = map[string]any{"type": p}
	}
	data, err := json.Marshal(map[string]any{"cniVersion": cniVersion, "name": name, "plugins": plugins})
	if err != nil {
		t.Fatal(err)
	}
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		t.Fatalf("failed to parse config list %s: %v", data, err)
	}
	return list
}

func (env *runnerEnv) runtimeConf(containerID, ifName string) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: containerID,
		NetNS:       env.netns,
		IfName:      ifName,
		Args:        [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "test"}},
	}
}

// calls returns the logged plugin calls and empties the log.
func (env *runnerEnv) calls(t *testing.T) []string {
	t.Helper()
	data, err := os.ReadFile(env.logPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(env.logPath); err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

func (env *runnerEnv) cachePath(network, containerID, ifName string) string {
	return filepath.Join(env.cacheDir, "results", network+"-"+containerID+"-"+ifName)
}

func TestLibCNIAddCachesResult(t *testing.T) {
	env := newRunnerEnv(t, "1.0.0", fakePlugin{name: "fake-a"}, fakePlugin{name: "fake-b"})
	list := env.list(t, "testnet", "1.0.0", "fake-a", "fake-b")

	result, err := env.runner.Add(context.Background(), list, env.runtimeConf("c1", "net1"))
	if err != nil {
		t.Fatalf("Add failed: %v", err)
	}

	// ADD runs in list order, and the second plugin gets the first one's result.
	want := []string{
		"fake-a ADD c1 net1 no-prev-result",
		"fake-b ADD c1 net1 prev-result",
	}
	if got := env.calls(t); !reflect.DeepEqual(got, want) {
		t.Errorf("plugin calls = %q, want %q", got, want)
	}

	current, err := types100.NewResultFromResult(result)
	if err != nil {
		t.Fatalf("result %v is not convertible to CNI 1.0.0: %v", result, err)
	}
	if len(current.IPs) != 1 || current.IPs[0].Address.String() != "203.0.113.5/24" {
		t.Errorf("result IPs = %v, want [203.0.113.5/24]", current.IPs)
	}
	if len(current.Interfaces) != 1 || current.Interfaces[0].Name != "net1" ||
		current.Interfaces[0].Sandbox != env.netns {
		t.Errorf("result interfaces = %v, want net1 in %s", current.Interfaces, env.netns)
	}

	path := env.cachePath("testnet", "c1", "net1")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("Add did not cache the result in %s: %v", path, err)
	}
	var cached struct {
		Kind        string          `json:"kind"`
		ContainerID string          `json:"containerId"`
		IfName      string          `json:"ifName"`
		NetworkName string          `json:"networkName"`
		NetNS       string          `json:"netns"`
		Config      []byte          `json:"config"`
		Result      json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(data, &cached); err != nil {
		t.Fatalf("cache file %s is not JSON: %v", path, err)
	}
	if cached.Kind != "cniCacheV1" {
		t.Errorf("cache kind = %q, want cniCacheV1", cached.Kind)
	}
	if cached.ContainerID != "c1" || cached.IfName != "net1" || cached.NetworkName != "testnet" {
		t.Errorf("cache entry is for %s/%s/%s, want c1/net1/testnet",
			cached.ContainerID, cached.IfName, cached.NetworkName)
	}
	if cached.NetNS != env.netns {
		t.Errorf("cache netns = %q, want %q", cached.NetNS, env.netns)
	}
	if string(cached.Config) != string(list.Bytes) {
		t.Errorf("cached config = %s, want the list bytes %s", cached.Config, list.Bytes)
	}
	if !strings.Contains(string(cached.Result), "203.0.113.5/24") {
		t.Errorf("cached result %s does not contain the address", cached.Result)
	}
}

func TestLibCNIAddFailure(t *testing.T) {
	env := newRunnerEnv(t, "1.0.0", fakePlugin{name: "fake-a"})
	list := env.list(t, "testnet", "1.0.0", "fake-a", "fake-missing")

	_, err := env.runner.Add(context.Background(), list, env.runtimeConf("c1", "net1"))
	if err == nil {
		t.Fatal("Add with a missing second plugin returned no error")
	}
	if !strings.Contains(err.Error(), "fake-missing") {
		t.Errorf("error %q does not name the missing plugin", err)
	}
	if _, err := os.Stat(env.cachePath("testnet", "c1", "net1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed Add left a cache entry: %v", err)
	}
}

func TestLibCNIDelAllPluginsSucceed(t *testing.T) {
	env := newRunnerEnv(t, "1.0.0",
		fakePlugin{name: "fake-a"}, fakePlugin{name: "fake-b"}, fakePlugin{name: "fake-c"})
	list := env.list(t, "testnet", "1.0.0", "fake-a", "fake-b", "fake-c")
	rt := env.runtimeConf("c1", "net1")
	if _, err := env.runner.Add(context.Background(), list, rt); err != nil {
		t.Fatalf("Add failed: %v", err)
	}
	env.calls(t)

	if err := env.runner.Del(context.Background(), list, rt); err != nil {
		t.Fatalf("Del failed: %v", err)
	}

	// DEL runs once per plugin in reverse order, each with the cached result.
	want := []string{
		"fake-c DEL c1 net1 prev-result",
		"fake-b DEL c1 net1 prev-result",
		"fake-a DEL c1 net1 prev-result",
	}
	if got := env.calls(t); !reflect.DeepEqual(got, want) {
		t.Errorf("plugin calls = %q, want %q", got, want)
	}
	if _, err := os.Stat(env.cachePath("testnet", "c1", "net1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cache entry still exists after a successful Del: %v", err)
	}
}

func TestLibCNIDelRunsPastFailingPlugin(t *testing.T) {
	env := newRunnerEnv(t, "1.0.0",
		fakePlugin{name: "fake-ipam"}, fakePlugin{name: "fake-fail", failDel: true},
		fakePlugin{name: "fake-tuning"})
	list := env.list(t, "testnet", "1.0.0", "fake-ipam", "fake-fail", "fake-tuning")
	rt := env.runtimeConf("c1", "net1")
	if _, err := env.runner.Add(context.Background(), list, rt); err != nil {
		t.Fatalf("Add failed: %v", err)
	}
	env.calls(t)

	err := env.runner.Del(context.Background(), list, rt)
	if err == nil {
		t.Fatal("Del with a failing plugin returned no error")
	}

	// DEL order is fake-tuning, fake-fail, fake-ipam: the plugin after the
	// failing one still runs.
	calls := env.calls(t)
	failAt, ipamAt := -1, -1
	for i, call := range calls {
		fields := strings.Fields(call)
		if len(fields) < 2 || fields[1] != "DEL" {
			t.Errorf("unexpected plugin call %q during Del", call)
			continue
		}
		switch fields[0] {
		case "fake-fail":
			failAt = i
		case "fake-ipam":
			if ipamAt < 0 {
				ipamAt = i
			}
		}
	}
	if failAt < 0 {
		t.Errorf("failing plugin was not run: calls %q", calls)
	}
	if ipamAt < 0 {
		t.Fatalf("plugin after the failing one was not run: calls %q", calls)
	}
	if ipamAt < failAt {
		t.Errorf("fake-ipam ran before the failing plugin: calls %q", calls)
	}
	for _, name := range []string{"fake-tuning", "fake-fail", "fake-ipam"} {
		if !containsCall(calls, name+" DEL c1 net1") {
			t.Errorf("no DEL of %s in calls %q", name, calls)
		}
	}

	if !strings.Contains(err.Error(), `"testnet"`) {
		t.Errorf("error %q does not name the network", err)
	}
	var cniErr *types.Error
	if !errors.As(err, &cniErr) {
		t.Fatalf("error %q does not wrap the plugin's CNI error", err)
	}
	if cniErr.Code != 11 || cniErr.Msg != "fake DEL failure" || cniErr.Details != "from fake-fail" {
		t.Errorf("CNI error = %+v, want code 11 from fake-fail", cniErr)
	}
}

func containsCall(calls []string, prefix string) bool {
	for _, call := range calls {
		if strings.HasPrefix(call, prefix) {
			return true
		}
	}
	return false
}

func TestLibCNIDelFallbackKeepsPrevResult(t *testing.T) {
	env := newRunnerEnv(t, "1.0.0",
		fakePlugin{name: "fake-ipam"}, fakePlugin{name: "fake-fail", failDel: true},
		fakePlugin{name: "fake-tuning"})
	list := env.list(t, "testnet", "1.0.0", "fake-ipam", "fake-fail", "fake-tuning")
	rt := env.runtimeConf("c1", "net1")
	if _, err := env.runner.Add(context.Background(), list, rt); err != nil {
		t.Fatalf("Add failed: %v", err)
	}
	env.calls(t)

	if err := env.runner.Del(context.Background(), list, rt); err == nil {
		t.Fatal("Del with a failing plugin returned no error")
	}

	for _, call := range env.calls(t) {
		if !strings.HasSuffix(call, " prev-result") {
			t.Errorf("plugin call %q got no prevResult", call)
		}
	}
	if _, err := os.Stat(env.cachePath("testnet", "c1", "net1")); err != nil {
		t.Errorf("cache entry is gone after a failed Del: %v", err)
	}
}

func TestLibCNIDelSinglePluginFailure(t *testing.T) {
	env := newRunnerEnv(t, "1.0.0", fakePlugin{name: "fake-fail", failDel: true})
	list := env.list(t, "testnet", "1.0.0", "fake-fail")
	rt := env.runtimeConf("c1", "net1")

	err := env.runner.Del(context.Background(), list, rt)
	if err == nil {
		t.Fatal("Del of a failing single plugin returned no error")
	}
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != 11 {
		t.Errorf("error %q does not wrap the plugin's CNI error with code 11", err)
	}
	// With one plugin there is nothing to go on to, so DEL runs once.
	if got, want := env.calls(t), []string{"fake-fail DEL c1 net1 no-prev-result"}; !reflect.DeepEqual(got, want) {
		t.Errorf("plugin calls = %q, want %q", got, want)
	}
}

func TestLibCNIDelWithoutCache(t *testing.T) {
	// DEL after a lost cache, as after a wiped cache dir, still runs every plugin.
	env := newRunnerEnv(t, "1.0.0", fakePlugin{name: "fake-a"}, fakePlugin{name: "fake-b"})
	list := env.list(t, "testnet", "1.0.0", "fake-a", "fake-b")

	if err := env.runner.Del(context.Background(), list, env.runtimeConf("c9", "net2")); err != nil {
		t.Fatalf("Del without a cached result failed: %v", err)
	}
	want := []string{
		"fake-b DEL c9 net2 no-prev-result",
		"fake-a DEL c9 net2 no-prev-result",
	}
	if got := env.calls(t); !reflect.DeepEqual(got, want) {
		t.Errorf("plugin calls = %q, want %q", got, want)
	}
}

func TestLibCNIDelCanceledContext(t *testing.T) {
	env := newRunnerEnv(t, "1.0.0",
		fakePlugin{name: "fake-a"}, fakePlugin{name: "fake-fail", failDel: true})
	list := env.list(t, "testnet", "1.0.0", "fake-a", "fake-fail")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	if err := env.runner.Del(ctx, list, env.runtimeConf("c1", "net1")); err == nil {
		t.Fatal("Del with a canceled context returned no error")
	}
	// A canceled context starts no plugin, and the fallback does not retry.
	if got := env.calls(t); len(got) != 0 {
		t.Errorf("plugin calls with a canceled context = %q, want none", got)
	}
}

func TestLibCNIGCDeletesStaleAttachments(t *testing.T) {
	env := newRunnerEnv(t, "1.1.0", fakePlugin{name: "fake-a"}, fakePlugin{name: "fake-b"})
	list := env.list(t, "testnet", "1.1.0", "fake-a", "fake-b")
	for _, id := range []string{"c-live", "c-stale"} {
		if _, err := env.runner.Add(context.Background(), list, env.runtimeConf(id, "net1")); err != nil {
			t.Fatalf("Add of %s failed: %v", id, err)
		}
	}
	env.calls(t)

	valid := []types.GCAttachment{{ContainerID: "c-live", IfName: "net1"}}
	if err := env.runner.GC(context.Background(), list, valid); err != nil {
		t.Fatalf("GC failed: %v", err)
	}

	calls := env.calls(t)
	for _, want := range []string{"fake-b DEL c-stale net1", "fake-a DEL c-stale net1"} {
		if !containsCall(calls, want) {
			t.Errorf("no %q in calls %q", want, calls)
		}
	}
	if containsCall(calls, "fake-a DEL c-live") || containsCall(calls, "fake-b DEL c-live") {
		t.Errorf("GC deleted the valid attachment: calls %q", calls)
	}
	// CNI 1.1 plugins get a GC call of their own.
	for _, want := range []string{"fake-a GC", "fake-b GC"} {
		if !containsCall(calls, want) {
			t.Errorf("no %q in calls %q", want, calls)
		}
	}
	if _, err := os.Stat(env.cachePath("testnet", "c-stale", "net1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cache entry of the stale attachment still exists: %v", err)
	}
	if _, err := os.Stat(env.cachePath("testnet", "c-live", "net1")); err != nil {
		t.Errorf("cache entry of the valid attachment is gone: %v", err)
	}
}
