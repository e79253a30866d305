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
	// openNetNS contains the open network namespace of each stopped sandbox
	// until its DEL is done.
	openNetNS map[string]*heldNetNS
	// early holds the sandboxes attached, or being attached, before their
	// RunPodSandbox, which checks the attach against the pod that NRI passes.
	early map[string]bool
}

type sandboxLock struct {
	sync.Mutex
	users int
}

func newSandboxTable() *sandboxTable {
	return &sandboxTable{
		records: make(map[string]*state.Sandbox),
		locks:   make(map[string]*sandboxLock),

		failures:  make(map[string]error),
		openNetNS: make(map[string]*heldNetNS),
		early:     make(map[string]bool),
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

// busy reports whether a sandbox has a record or work in progress, which is
// when its stop has something to detach.
func (t *sandboxTable) busy(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.records[id] != nil || t.locks[id] != nil
}

// hold keeps a stopped sandbox's network namespace open and reports whether
// it was not held before.
func (t *sandboxTable) hold(id string, ns *heldNetNS) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.openNetNS[id] != nil {
		return false
	}
	t.openNetNS[id] = ns
	return true
}

// heldPath returns the path of a sandbox's held network namespace, or "".
func (t *sandboxTable) heldPath(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ns := t.openNetNS[id]; ns != nil {
		return ns.path
	}
	return ""
}

// release closes a sandbox's held network namespace, if any. The kernel
// frees the namespace once nothing else holds it.
func (t *sandboxTable) release(id string) {
	t.mu.Lock()
	ns := t.openNetNS[id]
	delete(t.openNetNS, id)
	t.mu.Unlock()
	if ns != nil {
		ns.close()
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
	delete(t.early, id)
}

// markEarly marks a sandbox that is not known yet for an early attach and
// reports whether it did.
func (t *sandboxTable) markEarly(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.records[id] != nil || t.locks[id] != nil || t.early[id] {
		return false
	}
	t.early[id] = true
	return true
}

// takeEarly clears the early mark of a sandbox and reports whether it was set.
func (t *sandboxTable) takeEarly(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	early := t.early[id]
	delete(t.early, id)
	return early
}

func (t *sandboxTable) isEarly(id string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.early[id]
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
