package plugin

import (
	"bytes"
	"context"
	"fmt"
	"slices"

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
	if _, ok := podNetNSPath(pod); !ok {
		return
	}
	id := pod.GetId()
	if !p.sandboxes.markEarly(id) {
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
	early := p.sandboxes.takeEarly(id)
	p.sandboxes.takeFailure(id)
	sb := p.sandboxes.get(id)
	if sb == nil && !early {
		return
	}
	if p.repairs.addGone(id) && sb != nil {
		p.log.Info("pause container of recorded pod is deleted; detaching", zap.String("sandboxID", id),
			zap.String("pod", sb.Namespace+"/"+sb.Name), zap.Bool("early", early))
	}
}

// checkEarly returns an error when an early attach differs from the attach
// that the pod would get now: its netns, networks, interface names, configs
// or CNI_ARGS.
func (p *Plugin) checkEarly(pod *api.PodSandbox, sb *state.Sandbox) error {
	entry, _ := podNetNSPath(pod)
	netns, err := resolveNetNS(pod, entry, p.host)
	if err != nil {
		return err
	}
	if netns != sb.NetNS {
		return fmt.Errorf("pod has netns %s, attached early in %s", netns, sb.NetNS)
	}
	targets, _, err := selectNetworks(pod, p.Config(), p.networks.Load())
	if err != nil {
		return err
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
