package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

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

	var remaining []state.Attachment
	var errs []error
	for i := len(sb.Attachments) - 1; i >= 0; i-- {
		att := sb.Attachments[i]
		start := time.Now()
		dctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.CNITimeout))
		err := deleteAttachment(dctx, runner, sb.ID, &att)
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

// deleteAttachment runs DEL of one attachment from its stored config. A netns
// that is gone is passed as empty, which CNI plugins take as "already gone"
// while their IPAM still frees the lease.
func deleteAttachment(ctx context.Context, runner cni.Runner, sandboxID string, att *state.Attachment) error {
	list, err := libcni.ConfListFromBytes(att.Config)
	if err != nil {
		return fmt.Errorf("failed to parse the stored config of network %q: %w", att.Network, err)
	}
	rt := runtimeConf(sandboxID, att)
	rt.NetNS = existingNetNS(att.NetNS)
	return runner.Del(ctx, list, rt)
}
