package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/state"
)

// call is one CNI operation seen by fakeRunner.
type call struct {
	op      string
	network string
	ifName  string
	netns   string
	config  string
	args    [][2]string
}

// fakeRunner records CNI calls and fails the networks named in failAdd or
// failDel.
type fakeRunner struct {
	mu      sync.Mutex
	calls   []call
	failAdd map[string]error
	failDel map[string]error
	// delGate, when set, holds every DEL until it is closed.
	delGate chan struct{}
}

func newFakeRunner() *fakeRunner {
	return &fakeRunner{failAdd: map[string]error{}, failDel: map[string]error{}}
}

func (r *fakeRunner) record(op string, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{op: op, network: list.Name, ifName: rt.IfName, netns: rt.NetNS,
		config: string(list.Bytes), args: rt.Args})
}

func (r *fakeRunner) Add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	r.record("ADD", list, rt)
	r.mu.Lock()
	err := r.failAdd[list.Name]
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return &current.Result{CNIVersion: "1.0.0", Interfaces: []*current.Interface{{Name: rt.IfName}}}, nil
}

func (r *fakeRunner) Del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	r.record("DEL", list, rt)
	if r.delGate != nil {
		<-r.delGate
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failDel[list.Name]
}

func (r *fakeRunner) GC(ctx context.Context, list *libcni.NetworkConfigList, valid []types.GCAttachment) error {
	return nil
}

func (r *fakeRunner) ops() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		out = append(out, c.op+" "+c.network+" "+c.ifName)
	}
	return out
}

func (r *fakeRunner) setFailDel(network string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.failDel, network)
		return
	}
	r.failDel[network] = err
}

// memStore is a state.Store in memory.
type memStore struct {
	mu      sync.Mutex
	records map[string][]byte
	failOn  error
}

func newMemStore() *memStore { return &memStore{records: map[string][]byte{}} }

func (s *memStore) Save(sb *state.Sandbox) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failOn != nil {
		return s.failOn
	}
	data, err := json.Marshal(sb)
	if err != nil {
		return err
	}
	s.records[sb.ID] = data
	return nil
}

func (s *memStore) Delete(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, id)
	return nil
}

func (s *memStore) List() ([]*state.Sandbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*state.Sandbox
	for _, data := range s.records {
		var sb state.Sandbox
		if err := json.Unmarshal(data, &sb); err != nil {
			return nil, err
		}
		out = append(out, &sb)
	}
	return out, nil
}

func (s *memStore) get(id string) *state.Sandbox {
	s.mu.Lock()
	defer s.mu.Unlock()
	data, ok := s.records[id]
	if !ok {
		return nil
	}
	var sb state.Sandbox
	if err := json.Unmarshal(data, &sb); err != nil {
		panic(err)
	}
	return &sb
}

func (s *memStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.records)
}

// testEnv is a plugin on fakes with a conf dir of bridge networks.
type testEnv struct {
	t      *testing.T
	plugin *Plugin
	runner *fakeRunner
	store  *memStore
	cfg    *config.Config
	netns  string
}

// newTestEnv writes one network file per name and starts a plugin on fakes.
// The pod's netns is a plain file, whose inode differs from the host netns.
func newTestEnv(t *testing.T, networks []string, mutate func(*config.Config)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	cfg := config.Default()
	cfg.CNIConfDir = filepath.Join(dir, "net.d")
	cfg.CNIBinDirs = []string{filepath.Join(dir, "bin")}
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.CNICacheDir = filepath.Join(dir, "cache")
	// The tests feed the sandbox events themselves.
	cfg.ContainerdSocket = ""
	for _, d := range []string{cfg.CNIConfDir, cfg.CNIBinDirs[0]} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cfg.CNIBinDirs[0], "bridge"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for i, name := range networks {
		writeNetwork(t, cfg.CNIConfDir, fmt.Sprintf("%02d-%s.conflist", i+10, name), name, "br-"+name)
	}
	if mutate != nil {
		mutate(cfg)
	}

	netns := filepath.Join(dir, "netns")
	if err := os.WriteFile(netns, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	env := &testEnv{t: t, runner: newFakeRunner(), store: newMemStore(), cfg: cfg, netns: netns}
	p, err := New(Options{Config: cfg, Logger: zap.NewNop(), Runner: env.runner, Store: env.store})
	if err != nil {
		t.Fatal(err)
	}
	// The plain file that stands for the pod's netns counts as existing.
	p.netnsExists = func(path string) bool { return path == netns }
	env.plugin = p
	return env
}

// stop runs StopPodSandbox and waits for the detach that it starts.
func (e *testEnv) stop(pod *api.PodSandbox) {
	e.t.Helper()
	if err := e.plugin.StopPodSandbox(context.Background(), pod); err != nil {
		e.t.Fatalf("StopPodSandbox: %v", err)
	}
	e.wait()
}

// wait waits for the plugin's background attaches and detaches.
func (e *testEnv) wait() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.plugin.Wait(ctx); err != nil {
		e.t.Fatalf("background work did not finish: %v", err)
	}
}

func writeNetwork(t *testing.T, dir, file, name, bridge string) {
	t.Helper()
	conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"plugins":[{"type":"bridge","bridge":%q}]}`,
		name, bridge)
	if err := os.WriteFile(filepath.Join(dir, file), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
}

var errPlugin = errors.New("plugin failed")
