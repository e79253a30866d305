package plugin

import (
	"sync"

	"github.com/nri-cni/nri-cni/state"
)

// sandboxTable holds the state record of every attached sandbox in memory and
// serializes the work on each sandbox, so that a hook and background repair
// never run CNI for the same pod at once.
type sandboxTable struct {
	mu      sync.Mutex
	records map[string]*state.Sandbox
	locks   map[string]*sandboxLock
	// failures holds the error of each failed background attach until the
	// pod's next CreateContainer reports it.
	failures map[string]error
}

type sandboxLock struct {
	sync.Mutex
	users int
}

func newSandboxTable() *sandboxTable {
	return &sandboxTable{
		records: make(map[string]*state.Sandbox),
		locks:   make(map[string]*sandboxLock),

		failures: make(map[string]error),
	}
}

// reset replaces the records, as read from the store at start.
func (t *sandboxTable) reset(records []*state.Sandbox) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.records = make(map[string]*state.Sandbox, len(records))
	for _, sb := range records {
		t.records[sb.ID] = sb
	}
}

// lock takes the lock of one sandbox and returns its release.
func (t *sandboxTable) lock(id string) func() {
	t.mu.Lock()
	l := t.locks[id]
	if l == nil {
		l = &sandboxLock{}
		t.locks[id] = l
	}
	l.users++
	t.mu.Unlock()

	l.Lock()
	return func() {
		l.Unlock()
		t.mu.Lock()
		l.users--
		if l.users == 0 {
			delete(t.locks, id)
		}
		t.mu.Unlock()
	}
}

func (t *sandboxTable) get(id string) *state.Sandbox {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.records[id]
}

func (t *sandboxTable) put(sb *state.Sandbox) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.records[sb.ID] = sb
}

func (t *sandboxTable) remove(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.records, id)
	delete(t.failures, id)
}

func (t *sandboxTable) setFailure(id string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failures[id] = err
}

// takeFailure returns the stored error of a sandbox's background attach and
// clears it, so that the next CreateContainer attaches again.
func (t *sandboxTable) takeFailure(id string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.failures[id]
	delete(t.failures, id)
	return err
}

// ids returns the ids of every recorded sandbox.
func (t *sandboxTable) ids() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]string, 0, len(t.records))
	for id := range t.records {
		ids = append(ids, id)
	}
	return ids
}

func (t *sandboxTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.records)
}
