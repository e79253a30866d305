// Package state records the CNI attachments of each pod sandbox on disk, so
// that teardown uses the exact config of the ADD, also after a restart.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Phase is how far the ADD of an attachment got.
type Phase string

const (
	// PhaseAdding marks an attachment whose ADD has started but whose result
	// is not recorded. After a crash it may hold a lease, so it is deleted.
	PhaseAdding Phase = "adding"
	// PhaseAdded marks an attachment whose ADD succeeded.
	PhaseAdded Phase = "added"
)

// Sandbox is the record of one pod sandbox and its attachments.
type Sandbox struct {
	ID          string       `json:"id"`
	Namespace   string       `json:"namespace"`
	Name        string       `json:"name"`
	UID         string       `json:"uid"`
	NetNS       string       `json:"netns"`
	Created     time.Time    `json:"created"`
	Attachments []Attachment `json:"attachments"`
}

// Complete reports whether every attachment of the record finished its ADD.
func (sb *Sandbox) Complete() bool {
	for _, att := range sb.Attachments {
		if att.Phase != PhaseAdded {
			return false
		}
	}
	return true
}

// Attachment is one network attached to a sandbox.
type Attachment struct {
	Network string `json:"network"`
	IfName  string `json:"ifName"`
	NetNS   string `json:"netns"`
	Phase   Phase  `json:"phase"`
	// Config is the exact network config list used at ADD, so that DEL sends
	// the same config even after the file in the conf dir changed.
	Config json.RawMessage `json:"config"`
	// Args are the CNI_ARGS of the ADD, repeated at DEL.
	Args [][2]string `json:"args,omitempty"`
	// Result is the CNI result of the ADD, absent while Phase is adding.
	Result json.RawMessage `json:"result,omitempty"`
}

// Store keeps sandbox records.
type Store interface {
	// Save writes the record atomically, replacing any earlier one.
	Save(sb *Sandbox) error
	// Delete removes the record of a sandbox; a missing record is no error.
	Delete(id string) error
	// List returns every readable record. Records that cannot be read are
	// moved aside and reported in the error, joined with errors.Join.
	List() ([]*Sandbox, error)
}

// ErrCorrupt marks a record that could not be decoded and was moved aside.
var ErrCorrupt = errors.New("corrupt state record")

// validID matches the sandbox ids that may become file names.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// DiskStore is a Store with one JSON file per sandbox in a folder.
type DiskStore struct {
	dir string
}

var _ Store = (*DiskStore)(nil)

// NewDiskStore creates the records folder below stateDir.
func NewDiskStore(stateDir string) (*DiskStore, error) {
	dir := filepath.Join(stateDir, "sandboxes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("failed to create state folder: %w", err)
	}
	return &DiskStore{dir: dir}, nil
}

// Dir returns the folder of the records.
func (s *DiskStore) Dir() string {
	return s.dir
}

func (s *DiskStore) path(id string) (string, error) {
	if !validID.MatchString(id) || len(id) > 200 {
		return "", fmt.Errorf("invalid sandbox id %q", id)
	}
	return filepath.Join(s.dir, id+".json"), nil
}

// Save writes the record to a temporary file, syncs it, renames it over the
// old record and syncs the folder, so a crash leaves the old or the new one.
func (s *DiskStore) Save(sb *Sandbox) error {
	path, err := s.path(sb.ID)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(sb, "", "  ")
	if err != nil {
		return fmt.Errorf("failed to encode state of sandbox %s: %w", sb.ID, err)
	}
	if err := writeFileAtomic(path, data); err != nil {
		return fmt.Errorf("failed to save state of sandbox %s: %w", sb.ID, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Delete removes the record and syncs the folder.
func (s *DiskStore) Delete(id string) error {
	path, err := s.path(id)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to delete state of sandbox %s: %w", id, err)
	}
	return syncDir(s.dir)
}

// List reads every record. Leftover temporary files of an interrupted Save
// are removed; records that fail to decode are renamed to *.corrupt.
func (s *DiskStore) List() ([]*Sandbox, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("failed to list state folder: %w", err)
	}

	var sandboxes []*Sandbox
	var errs []error
	for _, e := range entries {
		name := e.Name()
		path := filepath.Join(s.dir, name)
		switch {
		case strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"):
			_ = os.Remove(path)
			continue
		case !strings.HasSuffix(name, ".json"):
			continue
		}
		sb, err := readRecord(path)
		if err != nil {
			errs = append(errs, s.moveAside(path, err))
			continue
		}
		sandboxes = append(sandboxes, sb)
	}
	sort.Slice(sandboxes, func(i, j int) bool { return sandboxes[i].ID < sandboxes[j].ID })
	return sandboxes, errors.Join(errs...)
}

// ReadRecords reads the records below stateDir without changing anything:
// records that fail to decode are reported, not moved aside. A missing
// folder is an error, since nri-cni creates it when it starts.
func ReadRecords(stateDir string) ([]*Sandbox, error) {
	dir := filepath.Join(stateDir, "sandboxes")
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("state folder %s does not exist: nri-cni has not run with stateDir "+
			"%s; pass the plugin's config with --config", dir, stateDir)
	}
	if err != nil {
		return nil, fmt.Errorf("failed to list state folder: %w", err)
	}
	var sandboxes []*Sandbox
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		sb, err := readRecord(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w %s: %v", ErrCorrupt, path, err))
			continue
		}
		sandboxes = append(sandboxes, sb)
	}
	return sandboxes, errors.Join(errs...)
}

func readRecord(path string) (*Sandbox, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var sb Sandbox
	if err := json.Unmarshal(data, &sb); err != nil {
		return nil, err
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".json"); sb.ID != want {
		return nil, fmt.Errorf("record names sandbox %q instead of %q", sb.ID, want)
	}
	return &sb, nil
}

func (s *DiskStore) moveAside(path string, cause error) error {
	aside := path + ".corrupt"
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("%w %s: %v (and failed to move it aside: %v)", ErrCorrupt, path, cause, err)
	}
	return fmt.Errorf("%w %s: %v: moved to %s", ErrCorrupt, path, cause, aside)
}
