package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containernetworking/cni/libcni"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/cni"
	"github.com/nri-cni/nri-cni/state"
)

// detachPod runs CNI DEL of every recorded attachment of a sandbox, newest
// first, from the config stored at ADD. Attachments whose DEL fails stay
// recorded; the record goes away once nothing is left. A sandbox with no
// record, such as a host network pod or a second stop, is a no-op.
func (p *Plugin) detachPod(ctx context.Context, id string, removed bool, log *zap.Logger) error {
	unlock := p.sandboxes.lock(id)
	defer unlock()
	return p.detachLocked(ctx, id, removed, log)
}

// detachLocked is detachPod for a caller that holds the sandbox's lock.
func (p *Plugin) detachLocked(ctx context.Context, id string, removed bool, log *zap.Logger) error {
	sb := p.sandboxes.get(id)
	if sb == nil {
		log.Debug("no attachments recorded")
		return nil
	}
	cfg, runner, store := p.deps()
	heldPath := p.sandboxes.heldPath(id)

	var remaining []state.Attachment
	var errs []error
	for i := len(sb.Attachments) - 1; i >= 0; i-- {
		att := sb.Attachments[i]
		start := time.Now()
		netns := heldPath
		if netns == "" {
			netns = existingNetNS(att.NetNS)
		}
		dctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.CNITimeout))
		err := deleteAttachment(dctx, runner, sb.ID, &att, netns)
		cancel()
		if err != nil {
			remaining = append([]state.Attachment{att}, remaining...)
			errs = append(errs, fmt.Errorf("failed to detach network %q (%s) from sandbox %s: %w",
				att.Network, att.IfName, shortID(id), err))
			continue
		}
		log.Info("detached network", zap.String("network", att.Network),
			zap.String("ifName", att.IfName), zap.String("netns", att.NetNS),
			zap.Bool("removed", removed), took(start))
	}

	if len(remaining) == 0 {
		p.sandboxes.remove(id)
		if err := store.Delete(id); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}

	next := *sb
	next.Attachments = remaining
	if err := store.Save(&next); err != nil {
		errs = append(errs, err)
	}
	p.sandboxes.put(&next)
	return errors.Join(errs...)
}

// deleteAttachment runs DEL of one attachment from its stored config in
// netns. An empty netns means that it is gone, which CNI plugins take as
// "already gone" while their IPAM still frees the lease.
func deleteAttachment(ctx context.Context, runner cni.Runner, sandboxID string, att *state.Attachment,
	netns string) error {
	list, err := libcni.ConfListFromBytes(att.Config)
	if err != nil {
		return fmt.Errorf("failed to parse the stored config of network %q: %w", att.Network, err)
	}
	rt := runtimeConf(sandboxID, att)
	rt.NetNS = netns
	return runner.Del(ctx, list, rt)
}

// stopPod holds the pod's network namespace and detaches its networks in the
// background, so that StopPodSandbox returns at once. The DEL then runs next
// to the CRI's own teardown and outside NRI's node-wide lock, in the
// namespace that the held file keeps alive after containerd unmounts its
// pin. RemovePodSandbox and repair wait for the sandbox's lock, so a removed
// pod has nothing left.
func (p *Plugin) stopPod(pod *api.PodSandbox, log *zap.Logger) {
	id := pod.GetId()
	path, _ := podNetNSPath(pod)
	if sb := p.sandboxes.get(id); sb != nil && sb.NetNS != "" {
		path = sb.NetNS
	}
	netns, err := p.holdNetNS(path, p.host)
	if err != nil {
		log.Warn("failed to hold network namespace; detaching without it", zap.Error(err))
	}
	if netns != nil && !p.sandboxes.hold(id, netns) {
		netns.close()
	}

	p.background.Add(1)
	go func() {
		defer p.background.Done()
		start := time.Now()
		unlock := p.sandboxes.lock(id)
		defer unlock()
		p.detachSlots <- struct{}{}
		defer func() { <-p.detachSlots }()

		err := p.detachLocked(context.Background(), id, false, log)
		p.sandboxes.release(id)
		if err != nil {
			log.Error("failed to detach pod networks; RemovePodSandbox tries again",
				zap.Error(err), took(start))
		}
	}()
}
