// Package plugin implements the NRI hooks of nri-cni: CNI ADD at
// RunPodSandbox, the network namespace of member containers at
// CreateContainer, and CNI DEL at StopPodSandbox and RemovePodSandbox.
package plugin

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/cni"
	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/state"
)

// Events are the NRI events the plugin subscribes to.
var Events = api.MustParseEventMask(
	"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "CreateContainer",
)

// maxBackground is how many pods attach at once in async mode, and how many
// stopped pods detach at once. CNI plugins spend most of their time waiting
// for the kernel, so more than the core count helps a burst of pods.
const maxBackground = 16

// Options are the dependencies of a Plugin. Runner and Store default to
// libcni and the state folder of the config.
type Options struct {
	Config *config.Config
	Logger *zap.Logger
	Runner cni.Runner
	Store  state.Store
	// DeferSetup delays loading networks and state until Configure, where a
	// pre-installed plugin receives its config from containerd.
	DeferSetup bool
	// OnConfig is called with every config the plugin applies.
	OnConfig func(*config.Config)
}

// Plugin is the nri-cni NRI plugin.
type Plugin struct {
	log      *zap.Logger
	initial  *config.Config
	onConfig func(*config.Config)

	// requestTimeout returns the runtime's deadline for one NRI request.
	requestTimeout atomic.Pointer[func() time.Duration]

	// mu guards cfg, runner and store, which Configure may replace before
	// the first pod event.
	mu     sync.RWMutex
	cfg    *config.Config
	runner cni.Runner
	store  state.Store
	custom bool
	ready  bool

	networks atomic.Pointer[cni.Networks]
	host     nsID
	// netnsExists reports whether a recorded netns is still there.
	netnsExists func(path string) bool
	// holdNetNS opens a stopped pod's netns for its DEL.
	holdNetNS func(path string, host nsID) (*heldNetNS, error)

	sandboxes *sandboxTable
	repairs   *repairQueue
	// gate turns the early attach on once containerd proves to be NRI's.
	gate earlyGate

	// gcMu is held for reading by attaches and for writing by garbage
	// collection, which must not see a lease without its record.
	gcMu sync.RWMutex
	// attachSlots and detachSlots bound the background attaches and
	// detaches that run at once.
	attachSlots chan struct{}
	detachSlots chan struct{}
	// background counts the attaches and detaches in progress.
	background sync.WaitGroup
	// readyC is closed when the first config has been applied.
	readyC    chan struct{}
	readyOnce sync.Once
}

// New returns a Plugin with the networks of the config loaded and the
// attachments of earlier runs read from the state folder.
func New(opts Options) (*Plugin, error) {
	host, err := hostNetNS()
	if err != nil {
		return nil, err
	}
	p := &Plugin{
		log:       opts.Logger,
		initial:   opts.Config,
		onConfig:  opts.OnConfig,
		host:      host,
		sandboxes: newSandboxTable(),
		repairs:   newRepairQueue(),
		readyC:    make(chan struct{}),

		attachSlots: make(chan struct{}, maxBackground),
		detachSlots: make(chan struct{}, maxBackground),

		netnsExists: isNetNS,
		holdNetNS:   holdNetNS,
		runner:      opts.Runner,
		store:       opts.Store,
		custom:      opts.Runner != nil || opts.Store != nil,
	}
	if p.log == nil {
		p.log = zap.NewNop()
	}
	if !opts.DeferSetup {
		if err := p.apply(opts.Config); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// SetRequestTimeout sets the source of the runtime's NRI request deadline,
// which the stub learns at Configure.
func (p *Plugin) SetRequestTimeout(timeout func() time.Duration) {
	p.requestTimeout.Store(&timeout)
}

// apply installs a config: the CNI runner, the state store and the networks.
func (p *Plugin) apply(cfg *config.Config) error {
	runner, store := p.runner, p.store
	if !p.custom {
		disk, err := state.NewDiskStore(cfg.StateDir)
		if err != nil {
			return err
		}
		runner, store = cni.NewLibCNI(cfg.CNIBinDirs, cfg.CNICacheDir), disk
	}
	records, err := store.List()
	if err != nil {
		// Unreadable records are already moved aside; the rest still count.
		p.log.Error("failed to read some state records", zap.Error(err))
	}

	p.mu.Lock()
	p.cfg, p.runner, p.store, p.ready = cfg, runner, store, true
	p.mu.Unlock()

	p.sandboxes.reset(records)
	p.ReloadNetworks()
	if p.onConfig != nil {
		p.onConfig(cfg)
	}
	p.readyOnce.Do(func() { close(p.readyC) })
	return nil
}

func (p *Plugin) isReady() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.ready
}

// Config returns the config in use.
func (p *Plugin) Config() *config.Config {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg
}

func (p *Plugin) deps() (*config.Config, cni.Runner, state.Store) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cfg, p.runner, p.store
}

// ReloadNetworks reads the conf dir again. Pods attached before keep the
// config they were added with.
func (p *Plugin) ReloadNetworks() {
	cfg := p.Config()
	nets, err := cni.LoadNetworks(cfg.CNIConfDir, cfg.CNIBinDirs)
	if err != nil {
		p.log.Error("failed to load networks", zap.String("confDir", cfg.CNIConfDir), zap.Error(err))
		nets, _ = cni.LoadNetworks("", nil)
	}
	for _, fe := range nets.Errors {
		p.log.Error("network file is unavailable", zap.String("path", fe.Path),
			zap.String("network", fe.Network), zap.Error(fe.Err))
	}
	p.networks.Store(nets)
	if len(nets.All()) == 0 {
		p.log.Warn("no valid network in the conf dir; pods get no extra network",
			zap.String("confDir", cfg.CNIConfDir))
	}
	p.log.Info("loaded networks", zap.String("confDir", cfg.CNIConfDir),
		zap.Strings("networks", nets.Names()), zap.Int("invalid", len(nets.Errors)))
}

// Configure applies the config that containerd passes to a pre-installed
// plugin, if any, and subscribes to the pod and container events.
func (p *Plugin) Configure(ctx context.Context, cfgText, runtime, version string) (api.EventMask, error) {
	log := p.log.With(zap.String("runtime", runtime), zap.String("runtimeVersion", version))
	cfg := p.initial
	if cfgText != "" {
		parsed, err := config.Parse([]byte(cfgText), "passed by the runtime at Configure")
		if err != nil {
			log.Error("failed to configure", zap.Error(err))
			return 0, err
		}
		cfg = parsed
	}
	if cfgText != "" || !p.isReady() {
		if err := p.apply(cfg); err != nil {
			log.Error("failed to configure", zap.Error(err))
			return 0, err
		}
		log.Info("applied config", zap.Bool("fromRuntime", cfgText != ""), zap.Any("config", cfg))
	}
	p.checkTimeouts(log)
	log.Info("connected", zap.Int("sandboxes", p.sandboxes.len()))
	return Events, nil
}

// checkTimeouts warns when the CNI calls of one pod may outlast the runtime's
// request deadline, after which containerd drops the plugin for that request.
func (p *Plugin) checkTimeouts(log *zap.Logger) {
	source := p.requestTimeout.Load()
	if source == nil {
		return
	}
	cfg := p.Config()
	limit := (*source)()
	maxNetworks := max(len(p.networks.Load().All()), len(cfg.DefaultNetworks), 1)
	budget := time.Duration(cfg.CNITimeout) * time.Duration(maxNetworks)
	if budget > limit {
		log.Warn("CNI work of one pod may outlast the NRI request timeout: raise "+
			"plugin_request_timeout in containerd's NRI config or lower cniTimeout",
			zap.Duration("cniTimeout", time.Duration(cfg.CNITimeout)),
			zap.Int("maxNetworksPerPod", maxNetworks),
			zap.Duration("cniBudget", budget),
			zap.Duration("requestTimeout", limit))
	}
}

// RunPodSandbox attaches the pod's networks into the pause task's namespace.
func (p *Plugin) RunPodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	log := podLogger(p.log, pod)
	start := time.Now()
	// A pod that runs is not gone, whatever an earlier Synchronize saw.
	p.repairs.forget(pod.GetId())
	p.checkRuntime(pod)
	attach := p.attachPod
	if p.Config().AttachMode == config.AttachAsync {
		attach = p.startAttach
	}
	if err := attach(ctx, pod, log); err != nil {
		log.Error("failed to attach pod networks", zap.Error(err), took(start))
		p.sandboxes.takeFailure(pod.GetId())
		p.sandboxes.takeEarly(pod.GetId())
		return err
	}
	return nil
}

// StopPodSandbox opens the pod's netns while it still exists and detaches
// the pod's networks in the background.
func (p *Plugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	// An early attach that has not started yet must not start now.
	early := p.sandboxes.takeEarly(pod.GetId())
	if early || p.sandboxes.busy(pod.GetId()) {
		p.stopPod(pod, podLogger(p.log, pod))
	}
	return nil
}

// RemovePodSandbox waits for the detach that StopPodSandbox started, detaches
// what is still attached and deletes the pod's state.
func (p *Plugin) RemovePodSandbox(ctx context.Context, pod *api.PodSandbox) error {
	log := podLogger(p.log, pod)
	start := time.Now()
	err := p.detachPod(ctx, pod.GetId(), true, log)
	p.sandboxes.release(pod.GetId())
	if err != nil {
		log.Error("failed to detach pod networks; retrying in the background",
			zap.Error(err), took(start))
		p.repairs.addGone(pod.GetId())
		return err
	}
	p.repairs.forget(pod.GetId())
	p.sandboxes.takeFailure(pod.GetId())
	p.sandboxes.takeEarly(pod.GetId())
	return nil
}

// Wait waits until the background attaches and detaches are done or ctx
// ends. What is cut short stays recorded, and the next start repairs it.
func (p *Plugin) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		p.background.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CreateContainer puts a member container into its pod's network namespace.
func (p *Plugin) CreateContainer(ctx context.Context, pod *api.PodSandbox, ctr *api.Container) (
	*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	log := podLogger(p.log, pod).With(zap.String("containerID", ctr.GetId()),
		zap.String("container", ctr.GetName()))
	adjust, err := p.adjustContainer(ctx, pod, ctr, log)
	if err != nil {
		log.Error("failed to prepare container network", zap.Error(err))
		return nil, nil, err
	}
	return adjust, nil, nil
}

func podLogger(log *zap.Logger, pod *api.PodSandbox) *zap.Logger {
	return log.With(
		zap.String("pod", pod.GetNamespace()+"/"+pod.GetName()),
		zap.String("podUID", pod.GetUid()),
		zap.String("sandboxID", pod.GetId()),
	)
}

func took(start time.Time) zap.Field {
	return zap.Duration("took", time.Since(start))
}

// errorf is fmt.Errorf with the pod's identity in front.
func podErrorf(pod *api.PodSandbox, format string, args ...any) error {
	return fmt.Errorf("pod %s/%s (sandbox %s): %w", pod.GetNamespace(), pod.GetName(),
		shortID(pod.GetId()), fmt.Errorf(format, args...))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
