package hookpath

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/nri-cni/nri-cni/state"
)

// overlapStore is a proposed change of state.DiskStore, measured here next
// to the real one. It writes a record that is not complete, the intent saved
// before the ADD, to a temporary file and renames it into place at once, so a
// crash of the process cannot tear it. The fsyncs of the file and the folder
// then run in the background, during the ADD. The next save or delete
// of the same sandbox waits for them, so a record is durable before the hook
// returns, as with the real store. A power loss during the ADD can leave the
// intent missing or empty. That loses nothing, because the pod's netns is
// gone after a power loss anyway and garbage collection frees the lease.
type overlapStore struct {
	disk *state.DiskStore

	mu sync.Mutex
	// pending holds the background fsync of each sandbox's intent.
	pending map[string]chan error
}

func newOverlapStore(stateDir string) (*overlapStore, error) {
	disk, err := state.NewDiskStore(stateDir)
	if err != nil {
		return nil, err
	}
	return &overlapStore{disk: disk, pending: map[string]chan error{}}, nil
}

// wait returns the outcome of the background fsync of id's intent, if any.
func (s *overlapStore) wait(id string) error {
	s.mu.Lock()
	done := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if done == nil {
		return nil
	}
	return <-done
}

func (s *overlapStore) Save(sb *state.Sandbox) error {
	if err := s.wait(sb.ID); err != nil {
		return fmt.Errorf("failed to sync intent of sandbox %s: %w", sb.ID, err)
	}
	if sb.Complete() {
		return s.disk.Save(sb)
	}

	data, err := json.MarshalIndent(sb, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode state of sandbox %s: %w", sb.ID, err)
	}
	path := filepath.Join(s.disk.Dir(), sb.ID+".json")
	tmp, err := os.CreateTemp(s.disk.Dir(), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("failed to save state of sandbox %s: %w", sb.ID, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("failed to save state of sandbox %s: %w", sb.ID, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("failed to save state of sandbox %s: %w", sb.ID, err)
	}

	done := make(chan error, 1)
	s.mu.Lock()
	s.pending[sb.ID] = done
	s.mu.Unlock()
	go func() {
		err := tmp.Sync()
		if closeErr := tmp.Close(); err == nil {
			err = closeErr
		}
		if err == nil {
			err = syncDir(s.disk.Dir())
		}
		done <- err
	}()
	return nil
}

func (s *overlapStore) Delete(id string) error {
	if err := s.wait(id); err != nil {
		return fmt.Errorf("failed to sync intent of sandbox %s: %w", id, err)
	}
	return s.disk.Delete(id)
}

func (s *overlapStore) List() ([]*state.Sandbox, error) {
	return s.disk.List()
}
