package plugin

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// reloadDebounce is how long the conf dir must stay quiet before a reload,
// so that an editor's write-and-rename or a copied folder is read once.
const reloadDebounce = 250 * time.Millisecond

// folderPollInterval is how often a missing parent of the conf dir is
// looked for, since fsnotify cannot watch a folder that does not exist.
const folderPollInterval = 5 * time.Second

// waitForFolder returns once dir exists, or ctx's error when ctx ends first.
func (p *Plugin) waitForFolder(ctx context.Context, dir string) error {
	logged := false
	for {
		if info, err := os.Stat(dir); err == nil && info.IsDir() {
			if logged {
				p.ReloadNetworks()
			}
			return nil
		}
		if !logged {
			p.log.Warn("parent folder of the conf dir is missing; checking for it periodically",
				zap.String("folder", dir), zap.Duration("interval", folderPollInterval))
			logged = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(folderPollInterval):
		}
	}
}

// WatchNetworks reloads the networks whenever a file in the conf dir is
// created, written, renamed or removed, and when the conf dir itself is
// removed or created again. It watches the parent folder to see the latter.
// It returns when ctx is cancelled.
func (p *Plugin) WatchNetworks(ctx context.Context) error {
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer watcher.Close()

	dir := filepath.Clean(p.Config().CNIConfDir)
	parent := filepath.Dir(dir)
	if err := p.waitForFolder(ctx, parent); err != nil {
		return nil
	}
	if err := watcher.Add(parent); err != nil {
		return err
	}
	watching := watcher.Add(dir) == nil
	p.log.Info("watching network files", zap.String("confDir", dir), zap.Bool("exists", watching))

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-watcher.Errors:
			if !ok {
				return nil
			}
			p.log.Warn("network file watch failed; reloading", zap.Error(err))
			debounce.Reset(reloadDebounce)
		case ev, ok := <-watcher.Events:
			if !ok {
				return nil
			}
			if ev.Name != dir && filepath.Dir(ev.Name) != dir {
				continue
			}
			if ev.Name == dir && ev.Has(fsnotify.Create) {
				// The watch of a removed folder is gone: watch the new one.
				watching = watcher.Add(dir) == nil
			}
			p.log.Debug("network files changed", zap.String("path", ev.Name), zap.String("op", ev.Op.String()))
			debounce.Reset(reloadDebounce)
		case <-debounce.C:
			if !watching {
				watching = watcher.Add(dir) == nil
			}
			p.ReloadNetworks()
		}
	}
}
