package plugin

import (
	"context"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"go.uber.org/zap"
)

// gcTimeout bounds the garbage collection of one network.
const gcTimeout = 30 * time.Second

// collectGarbage has libcni delete every cached attachment of an nri-cni
// network that no record owns, and runs GC of plugins of CNI 1.1 or newer,
// such as host-local, which frees what they hold for attachments outside the recorded
// set. Attaches wait while it runs, so that no new lease is taken for a
// record it has not seen.
func (p *Plugin) collectGarbage(ctx context.Context) {
	p.gcMu.Lock()
	defer p.gcMu.Unlock()

	_, runner, store := p.deps()
	records, err := store.List()
	if err != nil {
		p.log.Error("failed to read some state records", zap.Error(err))
	}

	valid := make(map[string][]types.GCAttachment)
	lists := make(map[string]*libcni.NetworkConfigList)
	for _, nw := range p.networks.Load().All() {
		lists[nw.Name] = nw.List
		valid[nw.Name] = []types.GCAttachment{}
	}
	for _, sb := range records {
		for _, att := range sb.Attachments {
			valid[att.Network] = append(valid[att.Network],
				types.GCAttachment{ContainerID: sb.ID, IfName: att.IfName})
			if _, known := lists[att.Network]; !known {
				// A network gone from the conf dir is collected with the
				// config one of its attachments was added with.
				if list, err := libcni.ConfListFromBytes(att.Config); err == nil {
					lists[att.Network] = list
				}
			}
		}
	}

	for name, list := range lists {
		start := time.Now()
		gctx, cancel := context.WithTimeout(ctx, gcTimeout)
		err := runner.GC(gctx, list, valid[name])
		cancel()
		log := p.log.With(zap.String("network", name), zap.Int("valid", len(valid[name])), took(start))
		if err != nil {
			log.Warn("failed to collect garbage of network", zap.Error(err))
			continue
		}
		log.Debug("collected garbage of network")
	}
}

// checkNetNS queues the teardown of every recorded sandbox whose network
// namespace is gone. containerd removes a pod's netns when the pod stops, and
// after a containerd restart or a reboot that is the only sign of pods whose
// stop and remove events were never delivered.
func (p *Plugin) checkNetNS() {
	for _, id := range p.sandboxes.ids() {
		sb := p.sandboxes.get(id)
		if sb == nil || p.netnsExists(sb.NetNS) || !p.repairs.addGone(id) {
			continue
		}
		p.log.Info("network namespace of recorded pod is gone; detaching",
			zap.String("sandboxID", id), zap.String("pod", sb.Namespace+"/"+sb.Name),
			zap.String("netns", sb.NetNS))
	}
}
