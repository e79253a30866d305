package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/cni"
	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/state"
)

// rollbackTimeout bounds the DEL of each network after a failed ADD. It is
// its own deadline because the request's context may be what expired.
const rollbackTimeout = 10 * time.Second

// attachPlan is the work of one attach, prepared under the sandbox's lock.
type attachPlan struct {
	pod     *api.PodSandbox
	netns   string
	targets []target
	cfg     *config.Config
	runner  cni.Runner
	store   state.Store
}

// attachPod runs CNI ADD of every selected network of a pod and returns when
// it is done. In async mode it first returns the error of the pod's
// background attach, once, so that CreateContainer reports it.
func (p *Plugin) attachPod(ctx context.Context, pod *api.PodSandbox, log *zap.Logger) error {
	if _, ok := podNetNSPath(pod); !ok {
		log.Debug("skipped host network pod")
		return nil
	}
	unlock := p.sandboxes.lock(pod.GetId())
	defer unlock()

	early := p.sandboxes.takeEarly(pod.GetId())
	if err := p.sandboxes.takeFailure(pod.GetId()); err != nil {
		return err
	}
	plan, err := p.prepareAttach(ctx, pod, early, log)
	if err != nil || plan == nil {
		return err
	}
	return p.runAttach(ctx, plan, log)
}

// startAttach checks the pod's netns and network selection, and then runs
// the ADDs in the background, holding the sandbox's lock, so that the NRI
// request returns at once. The pod's first CreateContainer, its
// StopPodSandbox and background repair wait for the lock; CreateContainer
// then returns the error of a failed attach.
func (p *Plugin) startAttach(ctx context.Context, pod *api.PodSandbox, log *zap.Logger) error {
	if _, ok := podNetNSPath(pod); !ok {
		log.Debug("skipped host network pod")
		return nil
	}
	if p.sandboxes.isEarly(pod.GetId()) {
		// The early attach holds the lock, and the first CreateContainer
		// checks it against this pod. An invalid selection still fails
		// the sandbox here.
		if _, _, err := p.checkPod(pod); err != nil {
			return podErrorf(pod, "%w", err)
		}
		log.Debug("pod networks are attached early")
		return nil
	}
	unlock := p.sandboxes.lock(pod.GetId())
	early := p.sandboxes.takeEarly(pod.GetId())
	plan, err := p.prepareAttach(ctx, pod, early, log)
	if err != nil || plan == nil {
		unlock()
		return err
	}

	p.background.Add(1)
	go func() {
		defer p.background.Done()
		defer unlock()
		p.attachSlots <- struct{}{}
		defer func() { <-p.attachSlots }()

		start := time.Now()
		if err := p.runAttach(context.Background(), plan, log); err != nil {
			log.Error("failed to attach pod networks", zap.Error(err), took(start))
			p.sandboxes.setFailure(pod.GetId(), err)
		}
	}()
	return nil
}

// prepareAttach returns the plan of a pod's attach, or nil when the pod is
// attached already or selects no network. An attach made early, before the
// pod's RunPodSandbox, is kept when it matches the pod and is deleted when it
// does not. The caller holds the sandbox's lock.
func (p *Plugin) prepareAttach(ctx context.Context, pod *api.PodSandbox, early bool,
	log *zap.Logger) (*attachPlan, error) {
	entry, _ := podNetNSPath(pod)
	if sb := p.sandboxes.get(pod.GetId()); sb != nil {
		switch {
		case sb.Complete() && !early:
			log.Debug("pod networks already attached", zap.Int("attachments", len(sb.Attachments)))
			return nil, nil
		case sb.Complete():
			err := p.checkEarly(pod, sb)
			if err == nil {
				log.Debug("pod networks attached early", zap.Int("attachments", len(sb.Attachments)))
				return nil, nil
			}
			log.Info("early attach does not match the pod; attaching again", zap.Error(err))
		default:
			// The plugin stopped during an earlier attach.
			log.Warn("found interrupted attach; deleting it before attaching again")
		}
		if err := p.detachLocked(ctx, pod.GetId(), false, log); err != nil {
			return nil, podErrorf(pod, "failed to delete earlier attach: %w", err)
		}
	}

	cfg, runner, store := p.deps()
	netns, err := resolveNetNS(pod, entry, p.host)
	if err != nil {
		return nil, podErrorf(pod, "failed to find network namespace: %w", err)
	}
	nets := p.networks.Load()
	targets, sel, err := selectNetworks(pod, cfg, nets)
	if err != nil {
		return nil, podErrorf(pod, "failed to select networks: %w", err)
	}
	if sel.allFiles && len(nets.Errors) > 0 {
		log.Warn("network files failed to load; the pod gets the other networks",
			zap.Int("failedFiles", len(nets.Errors)), zap.String("confDir", cfg.CNIConfDir))
	}
	if len(targets) == 0 {
		log.Debug("pod selects no network")
		return nil, nil
	}
	// A binary removed since the networks were loaded would fail the ADD
	// and the DEL of its rollback, which leaves a record behind.
	for _, t := range targets {
		if err := cni.CheckBinaries(t.network.List, cfg.CNIBinDirs); err != nil {
			return nil, podErrorf(pod, "failed to attach network %q as %s: %w", t.network.Name, t.ifName, err)
		}
	}
	return &attachPlan{pod: pod, netns: netns, targets: targets, cfg: cfg, runner: runner, store: store}, nil
}

// runAttach saves the record before the first ADD, so a crash in between
// leaves an intent that the next start deletes, runs the ADDs in order, and
// saves the record again with the results. On any failure every attempted
// network is deleted and the record removed. The caller holds the lock.
func (p *Plugin) runAttach(ctx context.Context, plan *attachPlan, log *zap.Logger) error {
	p.gcMu.RLock()
	defer p.gcMu.RUnlock()

	pod, runner, store := plan.pod, plan.runner, plan.store
	sb := newRecord(pod, plan.netns, plan.targets)
	if err := store.Save(sb); err != nil {
		return podErrorf(pod, "failed to record attach intent: %w", err)
	}

	for i, t := range plan.targets {
		att := &sb.Attachments[i]
		start := time.Now()
		result, err := p.addOne(ctx, runner, plan.cfg, t.network.List, runtimeConf(sb.ID, att))
		if err != nil {
			p.rollback(sb, i+1, runner, store, log)
			return podErrorf(pod, "failed to attach network %q as %s: %w", t.network.Name, t.ifName, err)
		}
		att.Result, err = json.Marshal(result)
		if err != nil {
			p.rollback(sb, i+1, runner, store, log)
			return podErrorf(pod, "failed to encode CNI result of network %q: %w", t.network.Name, err)
		}
		att.Phase = state.PhaseAdded
		log.Info("attached network", zap.String("network", t.network.Name),
			zap.String("ifName", t.ifName), zap.String("netns", plan.netns), took(start))
	}

	if err := store.Save(sb); err != nil {
		p.rollback(sb, len(plan.targets), runner, store, log)
		return podErrorf(pod, "failed to record attachments: %w", err)
	}
	p.sandboxes.put(sb)
	return nil
}

// addOne runs one ADD under the config's cniTimeout.
func (p *Plugin) addOne(ctx context.Context, runner cni.Runner, cfg *config.Config,
	list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	timeout := time.Duration(cfg.CNITimeout)
	addCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	start := time.Now()
	result, err := runner.Add(addCtx, list, rt)
	if err != nil {
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("cancelled after %s because the NRI request ended "+
				"(raise plugin_request_timeout in containerd's NRI config): %w",
				time.Since(start).Round(time.Millisecond), err)
		case errors.Is(addCtx.Err(), context.DeadlineExceeded):
			return nil, fmt.Errorf("timed out after cniTimeout %s: %w", timeout, err)
		}
		return nil, err
	}
	return result, nil
}

// rollback deletes the first n attachments of a record, newest first, each
// under its own deadline, and removes the record. An attachment whose DEL
// fails stays recorded, so that teardown and repair try it again.
func (p *Plugin) rollback(sb *state.Sandbox, n int, runner cni.Runner,
	store state.Store, log *zap.Logger) {
	var remaining []state.Attachment
	for i := n - 1; i >= 0; i-- {
		att := sb.Attachments[i]
		ctx, cancel := context.WithTimeout(context.Background(), rollbackTimeout)
		err := deleteAttachment(ctx, runner, sb.ID, &att, existingNetNS(att.NetNS))
		cancel()
		if err != nil {
			log.Warn("failed to roll back network", zap.String("network", att.Network),
				zap.String("ifName", att.IfName), zap.Error(err))
			remaining = append(remaining, att)
			continue
		}
		log.Info("rolled back network", zap.String("network", att.Network),
			zap.String("ifName", att.IfName))
	}

	if len(remaining) > 0 {
		sb.Attachments = remaining
		if err := store.Save(sb); err != nil {
			log.Error("failed to record attachments left by rollback", zap.Error(err))
		}
		p.sandboxes.put(sb)
		return
	}
	if err := store.Delete(sb.ID); err != nil {
		log.Error("failed to delete state after rollback", zap.Error(err))
	}
}

func newRecord(pod *api.PodSandbox, netns string, targets []target) *state.Sandbox {
	sb := &state.Sandbox{
		ID:        pod.GetId(),
		Namespace: pod.GetNamespace(),
		Name:      pod.GetName(),
		UID:       pod.GetUid(),
		NetNS:     netns,
		Created:   time.Now().UTC(),
	}
	for _, t := range targets {
		sb.Attachments = append(sb.Attachments, state.Attachment{
			Network: t.network.Name,
			IfName:  t.ifName,
			NetNS:   netns,
			Phase:   state.PhaseAdding,
			Config:  t.network.List.Bytes,
			Args:    cniArgs(pod),
		})
	}
	return sb
}

// cniArgs are the CNI_ARGS that Kubernetes runtimes pass, so that plugins
// such as host-local with per-pod ranges or static IPAM can read them.
func cniArgs(pod *api.PodSandbox) [][2]string {
	return [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", pod.GetNamespace()},
		{"K8S_POD_NAME", pod.GetName()},
		{"K8S_POD_INFRA_CONTAINER_ID", pod.GetId()},
		{"K8S_POD_UID", pod.GetUid()},
	}
}

func runtimeConf(sandboxID string, att *state.Attachment) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: sandboxID,
		NetNS:       att.NetNS,
		IfName:      att.IfName,
		Args:        att.Args,
	}
}
