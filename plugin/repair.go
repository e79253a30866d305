package plugin

import (
	"context"
	"sync"
	"time"

	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/sandboxwatch"
)

// Retry timing of background repair: a failed teardown is tried again after
// retryMin, doubling up to retryMax.
const (
	retryMin = time.Second
	retryMax = time.Minute
)

// netnsCheckInterval is how often recorded sandboxes are checked for a netns
// that is gone.
const netnsCheckInterval = 5 * time.Second

// repairQueue holds the work that runs outside NRI hooks: sandboxes whose pod
// is gone but whose attachments are still recorded, and running pods that
// missed their attach.
type repairQueue struct {
	mu      sync.Mutex
	gone    map[string]*retry
	missing map[string]*api.PodSandbox
	// collect requests a garbage collection after the queued repairs.
	collect bool
	wake    chan struct{}
}

type retry struct {
	next  time.Time
	delay time.Duration
}

func newRepairQueue() *repairQueue {
	return &repairQueue{
		gone:    make(map[string]*retry),
		missing: make(map[string]*api.PodSandbox),
		wake:    make(chan struct{}, 1),
	}
}

func (q *repairQueue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// addGone queues the teardown of a sandbox whose pod no longer exists and
// reports whether it was not queued before.
func (q *repairQueue) addGone(id string) bool {
	q.mu.Lock()
	_, queued := q.gone[id]
	if !queued {
		q.gone[id] = &retry{delay: retryMin}
	}
	q.mu.Unlock()
	q.kick()
	return !queued
}

func (q *repairQueue) addMissing(pod *api.PodSandbox) {
	q.mu.Lock()
	q.missing[pod.GetId()] = pod
	q.mu.Unlock()
	q.kick()
}

// due returns the gone sandboxes whose retry time has come and takes the
// missing pods out of the queue.
func (q *repairQueue) due(now time.Time) ([]string, []*api.PodSandbox) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var ids []string
	for id, r := range q.gone {
		if !r.next.After(now) {
			ids = append(ids, id)
		}
	}
	pods := make([]*api.PodSandbox, 0, len(q.missing))
	for id, pod := range q.missing {
		pods = append(pods, pod)
		delete(q.missing, id)
	}
	return ids, pods
}

// nextRetry returns the earliest scheduled retry, or zero when none is.
func (q *repairQueue) nextRetry() time.Time {
	q.mu.Lock()
	defer q.mu.Unlock()
	var next time.Time
	for _, r := range q.gone {
		if next.IsZero() || r.next.Before(next) {
			next = r.next
		}
	}
	return next
}

// done records the outcome of a teardown: success removes the sandbox from
// the queue, a failure schedules the next try and returns its delay.
func (q *repairQueue) done(id string, failed bool, now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	r, ok := q.gone[id]
	if !ok {
		return 0
	}
	if !failed {
		delete(q.gone, id)
		return 0
	}
	r.next = now.Add(r.delay)
	delay := r.delay
	r.delay = min(2*r.delay, retryMax)
	return delay
}

func (q *repairQueue) requestCollect() {
	q.mu.Lock()
	q.collect = true
	q.mu.Unlock()
	q.kick()
}

func (q *repairQueue) takeCollect() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := q.collect
	q.collect = false
	return c
}

// isGone reports whether the teardown of a sandbox is queued.
func (q *repairQueue) isGone(id string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, queued := q.gone[id]
	return queued
}

func (q *repairQueue) forget(id string) {
	q.mu.Lock()
	delete(q.gone, id)
	delete(q.missing, id)
	q.mu.Unlock()
}

// Synchronize compares the running pods with the recorded attachments. The
// repair itself runs in the background after Synchronize returns, because
// containerd gives the whole call a single short deadline.
func (p *Plugin) Synchronize(ctx context.Context, pods []*api.PodSandbox, _ []*api.Container) (
	[]*api.ContainerUpdate, error) {
	running := make(map[string]bool, len(pods))
	missing := 0
	for _, pod := range pods {
		running[pod.GetId()] = true
		sb := p.sandboxes.get(pod.GetId())
		if _, hasNetNS := podNetNSPath(pod); hasNetNS && (sb == nil || !sb.Complete()) {
			p.repairs.addMissing(pod)
			missing++
		}
	}
	gone := 0
	for _, id := range p.sandboxes.ids() {
		// A pod attached early is not running yet; its RunPodSandbox or
		// the delete of its pause container comes later.
		if !running[id] && !p.sandboxes.isEarly(id) {
			p.repairs.addGone(id)
			gone++
		}
	}
	p.repairs.requestCollect()
	p.log.Info("synchronized", zap.Int("pods", len(pods)), zap.Int("recorded", p.sandboxes.len()),
		zap.Int("gone", gone), zap.Int("unattached", missing))
	return nil, nil
}

// Run does the background work until ctx is cancelled. It reloads the
// networks when their files change, follows the sandboxes that containerd's
// CRI creates to attach them early, and tears down sandboxes whose pod or
// netns is gone, retried with backoff. It also attaches running pods that
// missed their attach and collects garbage after each Synchronize.
func (p *Plugin) Run(ctx context.Context) {
	select {
	case <-ctx.Done():
		return
	case <-p.readyC:
	}
	go func() {
		if err := p.WatchNetworks(ctx); err != nil {
			p.log.Error("failed to watch network files; changes need a restart", zap.Error(err))
		}
	}()
	if socket := p.Config().ContainerdSocket; socket != "" {
		go sandboxwatch.New(socket, p, p.log).Run(ctx)
	}

	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.repairs.wake:
		case <-timer.C:
			p.checkNetNS()
		}
		next := p.repairOnce(ctx)
		if p.repairs.takeCollect() {
			p.collectGarbage(ctx)
		}
		wait := netnsCheckInterval
		if !next.IsZero() {
			wait = min(wait, max(time.Until(next), 10*time.Millisecond))
		}
		timer.Reset(wait)
	}
}

func (p *Plugin) repairOnce(ctx context.Context) time.Time {
	ids, pods := p.repairs.due(time.Now())
	for _, pod := range pods {
		log := podLogger(p.log, pod)
		if err := p.attachPod(ctx, pod, log); err != nil {
			log.Error("failed to attach networks of running pod that missed its attach", zap.Error(err))
		}
	}
	for _, id := range ids {
		log := p.log.With(zap.String("sandboxID", id))
		if sb := p.sandboxes.get(id); sb != nil {
			log = log.With(zap.String("pod", sb.Namespace+"/"+sb.Name), zap.String("podUID", sb.UID))
		}
		err := p.detachGone(ctx, id, log)
		if delay := p.repairs.done(id, err != nil, time.Now()); err != nil {
			log.Warn("failed to detach networks of gone pod; retrying", zap.Duration("delay", delay),
				zap.Error(err))
		}
	}
	return p.repairs.nextRetry()
}

// detachGone detaches a sandbox whose teardown is queued, unless a
// RunPodSandbox of the sandbox took it out of the queue meanwhile.
func (p *Plugin) detachGone(ctx context.Context, id string, log *zap.Logger) error {
	unlock := p.sandboxes.lock(id)
	defer unlock()
	if !p.repairs.isGone(id) {
		return nil
	}
	return p.detachLocked(ctx, id, true, log)
}
