package hookpath

import (
	"context"
	"sync"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"

	"github.com/nri-cni/nri-cni/cni"
	"github.com/nri-cni/nri-cni/state"
)

// recorder keeps the times of the CNI calls and state writes of the hook
// that runs now. In sync mode a hook does all its work before it returns,
// so reset before a hook and read after it.
type recorder struct {
	mu      sync.Mutex
	adds    []time.Duration
	dels    []time.Duration
	saves   []time.Duration
	deletes []time.Duration
	// lastRecord is the last record saved, for measureSaveSteps.
	lastRecord *state.Sandbox
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.adds, r.dels, r.saves, r.deletes = nil, nil, nil, nil
}

func (r *recorder) add(list *[]time.Duration, start time.Time) {
	took := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	*list = append(*list, took)
}

// timedRunner is a cni.Runner that times the ADDs and DELs of another.
type timedRunner struct {
	cni.Runner
	recorder *recorder
}

func (r *timedRunner) Add(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) (types.Result, error) {
	defer r.recorder.add(&r.recorder.adds, time.Now())
	return r.Runner.Add(ctx, list, rt)
}

func (r *timedRunner) Del(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	defer r.recorder.add(&r.recorder.dels, time.Now())
	return r.Runner.Del(ctx, list, rt)
}

// timedStore is a state.Store that times the saves and deletes of another.
type timedStore struct {
	state.Store
	recorder *recorder
}

func (s *timedStore) Save(sb *state.Sandbox) error {
	start := time.Now()
	err := s.Store.Save(sb)
	s.recorder.add(&s.recorder.saves, start)
	if err == nil && sb.Complete() {
		copied := *sb
		copied.Attachments = append([]state.Attachment(nil), sb.Attachments...)
		s.recorder.mu.Lock()
		s.recorder.lastRecord = &copied
		s.recorder.mu.Unlock()
	}
	return err
}

func (s *timedStore) Delete(id string) error {
	defer s.recorder.add(&s.recorder.deletes, time.Now())
	return s.Store.Delete(id)
}
