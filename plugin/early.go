package plugin

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/containerd/nri/pkg/api"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/state"
)

// SandboxCreated starts the attach of a pod whose pause container the CRI
// has just created. Its netns and eth0 exist by then, and the pause task
// starts while the ADDs run, so RunPodSandbox finds the pod attached. That
// hook checks the attach against the pod that NRI passes, and attaches again
// when they differ, so nothing depends on this early start. A failed early
// attach is rolled back, and RunPodSandbox returns its error.
func (p *Plugin) SandboxCreated(pod *api.PodSandbox) {
	if !p.isReady() {
		return
	}
	// A host network pod counts for the gate too: its RunPodSandbox shows
	// that the watched containerd is NRI's just as well.
	id := pod.GetId()
	if !p.gate.created(id) {
		return
	}
	if _, ok := podNetNSPath(pod); !ok || !p.sandboxes.markEarly(id) {
		return
	}
	log := podLogger(p.log, pod).With(zap.Bool("early", true))

	p.background.Add(1)
	go func() {
		defer p.background.Done()
		unlock := p.sandboxes.lock(id)
		defer unlock()
		if !p.sandboxes.isEarly(id) || p.sandboxes.get(id) != nil {
			// RunPodSandbox came first.
			return
		}
		p.attachSlots <- struct{}{}
		defer func() { <-p.attachSlots }()

		ctx := context.Background()
		plan, err := p.prepareAttach(ctx, pod, false, log)
		if err == nil && plan != nil {
			err = p.runAttach(ctx, plan, log)
		}
		switch {
		case err != nil:
			// RunPodSandbox, or in async mode the first CreateContainer,
			// returns the error, as for an attach in the hook. One ADD
			// that fails is enough: the kubelet retries the sandbox.
			p.sandboxes.setFailure(id, err)
			log.Warn("failed to attach pod networks early; RunPodSandbox reports it", zap.Error(err))
		case plan == nil:
			p.sandboxes.takeEarly(id)
		}
	}()
}

// SandboxDeleted detaches a sandbox whose pause container is deleted. For a
// pod that RunPodSandbox never reached, such as one whose pause task failed
// to start, this is the only sign that it is gone.
func (p *Plugin) SandboxDeleted(id string) {
	p.gate.deleted(id)
	early := p.sandboxes.takeEarly(id)
	p.sandboxes.takeFailure(id)
	sb := p.sandboxes.get(id)
	if sb == nil && !early {
		return
	}
	// The netns check may have queued the pod already, after the CRI
	// removed its netns at the stop. The delete is logged either way.
	p.repairs.addGone(id)
	if sb != nil {
		p.log.Info("pause container of recorded pod is deleted; detaching", zap.String("sandboxID", id),
			zap.String("pod", sb.Namespace+"/"+sb.Name), zap.Bool("early", early))
	}
}

// checkEarly returns an error when an early attach differs from the attach
// that the pod would get now: its netns, networks, interface names, configs
// or CNI_ARGS.
func (p *Plugin) checkEarly(pod *api.PodSandbox, sb *state.Sandbox) error {
	netns, targets, err := p.checkPod(pod)
	if err != nil {
		return err
	}
	if netns != sb.NetNS {
		return fmt.Errorf("pod has netns %s, attached early in %s", netns, sb.NetNS)
	}
	if len(targets) != len(sb.Attachments) {
		return fmt.Errorf("pod selects %d networks, %d attached early", len(targets), len(sb.Attachments))
	}
	args := cniArgs(pod)
	for i, t := range targets {
		att := &sb.Attachments[i]
		if t.network.Name != att.Network || t.ifName != att.IfName {
			return fmt.Errorf("pod selects network %q as %s, attached early: %q as %s",
				t.network.Name, t.ifName, att.Network, att.IfName)
		}
		if !bytes.Equal(t.network.List.Bytes, att.Config) {
			return fmt.Errorf("config of network %q changed since the early attach", t.network.Name)
		}
		if !slices.Equal(args, att.Args) {
			return fmt.Errorf("pod has CNI_ARGS %v, attached early with %v", args, att.Args)
		}
	}
	return nil
}

// Subscribed starts a new check of the containerd behind containerdSocket,
// which after a restart of containerd may be another one.
func (p *Plugin) Subscribed() {
	p.gate.reset()
}

// unseenLimit is how many pods of NRI the watched containerd may miss in a
// row before nri-cni warns that containerdSocket names another containerd.
const unseenLimit = 3

// earlyGate keeps the early attach off until the containerd behind
// containerdSocket has shown that it is the runtime that sends the NRI
// events: until the RunPodSandbox of a pod whose pause container it
// reported. A containerdSocket of another containerd, such as the host's
// next to a second one whose NRI socket nri-cni dials, would otherwise give
// networks to pods that no NRI event ever names.
type earlyGate struct {
	mu         sync.Mutex
	subscribed bool
	verified   bool
	// seen holds the sandboxes reported while not verified.
	seen   map[string]bool
	unseen int
}

func (g *earlyGate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.subscribed, g.verified = true, false
	g.seen = make(map[string]bool)
	g.unseen = 0
}

// created reports whether a new sandbox may attach early, and otherwise
// remembers it for the check.
func (g *earlyGate) created(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.verified {
		return true
	}
	if g.seen == nil {
		g.seen = make(map[string]bool)
	}
	g.seen[id] = true
	return false
}

func (g *earlyGate) deleted(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.seen, id)
}

// ran checks the watched containerd against a pod that NRI reports at
// RunPodSandbox. It returns whether this pod verified it, and whether this
// pod is the unseenLimit-th in a row that it did not report.
func (g *earlyGate) ran(id string) (verified, mismatch bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.verified || !g.subscribed {
		return false, false
	}
	if g.seen[id] {
		g.verified, g.seen = true, nil
		return true, false
	}
	g.unseen++
	return false, g.unseen == unseenLimit
}

// checkRuntime lets the RunPodSandbox of pod verify the containerd behind
// containerdSocket, and logs the outcome once.
func (p *Plugin) checkRuntime(pod *api.PodSandbox) {
	verified, mismatch := p.gate.ran(pod.GetId())
	switch {
	case verified:
		p.log.Info("containerd at containerdSocket runs the pods of NRI; attaching pods early",
			zap.String("containerdSocket", p.Config().ContainerdSocket), zap.String("sandboxID", pod.GetId()))
	case mismatch:
		p.log.Warn("containerd at containerdSocket reported none of the last pods of NRI, so pods attach "+
			"in RunPodSandbox: set containerdSocket to the socket of the containerd whose NRI socket is nriSocket",
			zap.String("containerdSocket", p.Config().ContainerdSocket),
			zap.String("nriSocket", p.Config().NRISocket), zap.Int("pods", unseenLimit))
	}
}

// checkPod returns the netns and the networks of a pod, or the error that
// its attach would fail with before any CNI call.
func (p *Plugin) checkPod(pod *api.PodSandbox) (string, []target, error) {
	entry, _ := podNetNSPath(pod)
	netns, err := resolveNetNS(pod, entry, p.host)
	if err != nil {
		return "", nil, fmt.Errorf("failed to find network namespace: %w", err)
	}
	targets, _, err := selectNetworks(pod, p.Config(), p.networks.Load())
	if err != nil {
		return "", nil, fmt.Errorf("failed to select networks: %w", err)
	}
	return netns, targets, nil
}
