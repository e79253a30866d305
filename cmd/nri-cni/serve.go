package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/containerd/nri/pkg/stub"
	"go.uber.org/zap"

	"github.com/nri-cni/nri-cni/config"
	"github.com/nri-cni/nri-cni/plugin"
)

// Reconnect backoff: the delay doubles from minBackoff up to maxBackoff and
// returns to minBackoff once a connection has lasted stablePeriod.
// The short maximum keeps the gap after a containerd restart small: pods
// started in the gap are attached late, at their first container.
const (
	minBackoff   = 500 * time.Millisecond
	maxBackoff   = 5 * time.Second
	stablePeriod = 30 * time.Second
)

// exitGrace is how long a pre-installed plugin waits before it exits after
// its connection ended.
const exitGrace = time.Second

// drainTimeout bounds how long a plugin that receives SIGTERM or SIGINT
// waits for the detaches of stopped pods that are still running.
const drainTimeout = 10 * time.Second

// serve connects the plugin to NRI and reconnects whenever the connection
// closes, until ctx is cancelled. A pre-installed plugin cannot reconnect,
// because its connection was handed over once, so it returns instead.
func serve(ctx context.Context, cfg *config.Config, logs logSettings, log *zap.Logger,
	preinstalled bool) error {
	p, err := plugin.New(plugin.Options{
		Config:     cfg,
		Logger:     log,
		DeferSetup: preinstalled,
		OnConfig:   logs.apply(log),
	})
	if err != nil {
		return err
	}

	opts := []stub.Option{stub.WithLogger(nriLogger{log.Named("nri").Sugar()})}
	if !preinstalled {
		opts = append(opts,
			stub.WithPluginName(cfg.PluginName),
			stub.WithPluginIdx(cfg.PluginIndex),
			stub.WithSocketPath(cfg.NRISocket))
	}
	s, err := stub.New(p, opts...)
	if err != nil {
		return fmt.Errorf("failed to create NRI stub: %w", err)
	}
	p.SetRequestTimeout(s.RequestTimeout)
	go p.Run(ctx)
	defer drain(p, log)

	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		started := time.Now()
		err := s.Run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if preinstalled {
			// The reply to a failed Configure, which names the invalid key,
			// is sent while Run returns: give it time to reach containerd,
			// which logs it, before the process exits.
			time.Sleep(exitGrace)
			return fmt.Errorf("lost the connection that containerd passed to the pre-installed "+
				"plugin, which containerd does not restart: %w", err)
		}
		if time.Since(started) >= stablePeriod {
			backoff, attempt = minBackoff, 1
		}
		delay := jitter(backoff)
		log.Warn("not connected to NRI; retrying", zap.String("socket", cfg.NRISocket),
			zap.Int("attempt", attempt), zap.Duration("delay", delay), zap.Error(err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// drain waits for the plugin's background work, so that pods stopped just
// before the plugin are detached now and not at its next start.
func drain(p *plugin.Plugin, log *zap.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := p.Wait(ctx); err != nil {
		log.Warn("stopped before the background work was done; the next start finishes it",
			zap.Duration("waited", drainTimeout))
	}
}

// logSettings are the parts of the logger that a config applied at
// Configure can change.
type logSettings struct {
	level zap.AtomicLevel
	out   *logOutput
}

// apply returns the callback that sets the level and the file of the log.
func (s logSettings) apply(log *zap.Logger) func(*config.Config) {
	return func(c *config.Config) {
		_ = s.level.UnmarshalText([]byte(c.LogLevel))
		if err := s.out.setFile(c.LogFile); err != nil {
			log.Error("failed to open log file; logging to stderr", zap.String("logFile", c.LogFile),
				zap.Error(err))
		}
	}
}

// jitter spreads a delay over [d/2, d) so that plugins on many nodes do not
// reconnect in step after a containerd upgrade.
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2)
}

// ensurePath gives CNI plugins, which run iptables and nft, a PATH when the
// plugin was started without one, as containerd starts pre-installed plugins.
func ensurePath(log *zap.Logger) {
	if os.Getenv("PATH") != "" {
		return
	}
	const path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	_ = os.Setenv("PATH", path)
	log.Info("PATH was empty; set it for CNI plugins", zap.String("path", path))
}
