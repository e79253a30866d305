package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

func newTestStore(t *testing.T) *DiskStore {
	t.Helper()
	store, err := NewDiskStore(t.TempDir())
	if err != nil {
		t.Fatalf("NewDiskStore failed: %v", err)
	}
	return store
}

// testSandbox returns a record with every field set, so a round trip checks them all.
func testSandbox(id string) *Sandbox {
	return &Sandbox{
		ID:        id,
		Namespace: "default",
		Name:      "pod-" + id,
		UID:       "uid-" + id,
		NetNS:     "/tmp/netns/" + id,
		Created:   time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC),
		Attachments: []Attachment{
			{
				Network: "alpha",
				IfName:  "net1",
				NetNS:   "/tmp/netns/" + id,
				Phase:   PhaseAdded,
				Config:  json.RawMessage(`{"cniVersion":"1.0.0","name":"alpha","plugins":[{"type":"bridge"}]}`),
				Args:    [][2]string{{"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", "pod-" + id}},
				Result:  json.RawMessage(`{"cniVersion":"1.0.0","ips":[{"address":"203.0.113.5/24"}]}`),
			},
			{
				Network: "beta",
				IfName:  "data0",
				NetNS:   "/tmp/netns/" + id,
				Phase:   PhaseAdding,
				Config:  json.RawMessage(`{"cniVersion":"1.0.0","name":"beta","plugins":[{"type":"macvlan"}]}`),
			},
		},
	}
}

// dirNames returns the names in the folder, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("failed to read %s: %v", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	if raw == nil {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		t.Fatalf("invalid JSON %s: %v", raw, err)
	}
	return buf.String()
}

// checkSameSandbox compares two records. The raw JSON fields are compared
// compacted, because Save indents the whole record, raw messages included.
func checkSameSandbox(t *testing.T, got, want *Sandbox) {
	t.Helper()
	if got.ID != want.ID || got.Namespace != want.Namespace || got.Name != want.Name ||
		got.UID != want.UID || got.NetNS != want.NetNS {
		t.Errorf("record fields = %+v, want %+v", got, want)
	}
	if !got.Created.Equal(want.Created) {
		t.Errorf("created = %v, want %v", got.Created, want.Created)
	}
	if len(got.Attachments) != len(want.Attachments) {
		t.Fatalf("record %s has %d attachments, want %d", got.ID, len(got.Attachments), len(want.Attachments))
	}
	for i := range want.Attachments {
		g, w := got.Attachments[i], want.Attachments[i]
		if g.Network != w.Network || g.IfName != w.IfName || g.NetNS != w.NetNS || g.Phase != w.Phase {
			t.Errorf("attachment %d = %+v, want %+v", i, g, w)
		}
		if !reflect.DeepEqual(g.Args, w.Args) {
			t.Errorf("attachment %d args = %v, want %v", i, g.Args, w.Args)
		}
		if compactJSON(t, g.Config) != compactJSON(t, w.Config) {
			t.Errorf("attachment %d config = %s, want %s", i, g.Config, w.Config)
		}
		if compactJSON(t, g.Result) != compactJSON(t, w.Result) {
			t.Errorf("attachment %d result = %s, want %s", i, g.Result, w.Result)
		}
	}
}

func TestNewDiskStoreCreatesFolder(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "a", "b")

	store, err := NewDiskStore(stateDir)
	if err != nil {
		t.Fatalf("NewDiskStore(%s) failed: %v", stateDir, err)
	}
	want := filepath.Join(stateDir, "sandboxes")
	if store.Dir() != want {
		t.Errorf("Dir() = %s, want %s", store.Dir(), want)
	}
	info, err := os.Stat(want)
	if err != nil {
		t.Fatalf("records folder was not created: %v", err)
	}
	if !info.IsDir() {
		t.Errorf("%s is not a folder", want)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("records folder mode = %o, want 700", perm)
	}

	// A second store on the same folder works, as after a restart.
	if _, err := NewDiskStore(stateDir); err != nil {
		t.Errorf("NewDiskStore on an existing folder failed: %v", err)
	}
}

func TestNewDiskStoreFailure(t *testing.T) {
	// A file where the folder must go makes MkdirAll fail, also for root.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := NewDiskStore(file); err == nil {
		t.Errorf("NewDiskStore below the file %s returned no error", file)
	}
}

func TestDiskStoreRoundTrip(t *testing.T) {
	store := newTestStore(t)
	first, second := testSandbox("bbb222"), testSandbox("aaa111")

	if err := store.Save(first); err != nil {
		t.Fatalf("Save(%s) failed: %v", first.ID, err)
	}
	if err := store.Save(second); err != nil {
		t.Fatalf("Save(%s) failed: %v", second.ID, err)
	}
	if got, want := dirNames(t, store.Dir()), []string{"aaa111.json", "bbb222.json"}; !reflect.DeepEqual(got, want) {
		t.Errorf("records folder contains %v, want %v", got, want)
	}

	list, err := store.List()
	if err != nil {
		t.Fatalf("List failed: %v", err)
	}
	if len(list) != 2 {
		t.Fatalf("List returned %d records, want 2", len(list))
	}
	// List sorts by id.
	checkSameSandbox(t, list[0], second)
	checkSameSandbox(t, list[1], first)

	if err := store.Delete(first.ID); err != nil {
		t.Fatalf("Delete(%s) failed: %v", first.ID, err)
	}
	list, err = store.List()
	if err != nil {
		t.Fatalf("List after Delete failed: %v", err)
	}
	if len(list) != 1 || list[0].ID != second.ID {
		t.Errorf("List after Delete(%s) = %v, want only %s", first.ID, list, second.ID)
	}
	if _, err := os.Stat(filepath.Join(store.Dir(), first.ID+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record file of %s still exists after Delete: %v", first.ID, err)
	}
}

func TestDiskStoreRecordFormat(t *testing.T) {
	store := newTestStore(t)
	sb := testSandbox("fmt1")
	if err := store.Save(sb); err != nil {
		t.Fatalf("Save failed: %v", err)
	}

	data, err := os.ReadFile(filepath.Join(store.Dir(), "fmt1.json"))
	if err != nil {
		t.Fatalf("failed to read the record file: %v", err)
	}
	var fields map[string]any
	if err := json.Unmarshal(data, &fields); err != nil {
		t.Fatalf("record file is not a JSON object: %v\n%s", err, data)
	}
	for _, key := range []string{"id", "namespace", "name", "uid", "netns", "created", "attachments"} {
		if _, ok := fields[key]; !ok {
			t.Errorf("record file has no key %q:\n%s", key, data)
		}
	}
	attachments, ok := fields["attachments"].([]any)
	if !ok || len(attachments) != 2 {
		t.Fatalf("record file attachments = %#v, want a list of two", fields["attachments"])
	}
	adding, ok := attachments[1].(map[string]any)
	if !ok {
		t.Fatalf("attachment 1 = %#v, want an object", attachments[1])
	}
	if adding["phase"] != "adding" {
		t.Errorf("phase = %#v, want \"adding\"", adding["phase"])
	}
	// result and args are left out while they are empty.
	if _, ok := adding["result"]; ok {
		t.Errorf("attachment without a result has a result key: %v", adding)
	}
	if _, ok := adding["args"]; ok {
		t.Errorf("attachment without args has an args key: %v", adding)
	}
}

func TestDiskStoreSaveReplaces(t *testing.T) {
	store := newTestStore(t)
	sb := testSandbox("replace1")
	if err := store.Save(sb); err != nil {
		t.Fatalf("first Save failed: %v", err)
	}

	updated := testSandbox("replace1")
	updated.Attachments = updated.Attachments[:1]
	updated.Name = "renamed"
	if err := store.Save(updated); err != nil {
		t.Fatalf("second Save failed: %v", err)
	}

	// Only the record itself is left: no temporary file of either Save.
	if got, want := dirNames(t, store.Dir()), []string{"replace1.json"}; !reflect.DeepEqual(got, want) {
		t.Errorf("records folder contains %v, want %v", got, want)
	}
	list, err := store.List()
	if err != nil {
		t.Fatalf("List failed: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("List returned %d records, want 1", len(list))
	}
	checkSameSandbox(t, list[0], updated)
}

func TestDiskStoreSaveFailureRemovesTempFile(t *testing.T) {
	store := newTestStore(t)
	// A non-empty folder at the record path makes the rename fail, also for root.
	blocker := filepath.Join(store.Dir(), "blocked.json")
	if err := os.MkdirAll(filepath.Join(blocker, "inside"), 0o700); err != nil {
		t.Fatal(err)
	}

	err := store.Save(testSandbox("blocked"))
	if err == nil {
		t.Fatal("Save over a folder returned no error")
	}
	if !strings.Contains(err.Error(), "blocked") {
		t.Errorf("error %q does not name the sandbox", err)
	}
	if got, want := dirNames(t, store.Dir()), []string{"blocked.json"}; !reflect.DeepEqual(got, want) {
		t.Errorf("records folder contains %v after a failed Save, want only %v", got, want)
	}
}

func TestDiskStoreSaveMissingFolder(t *testing.T) {
	store := newTestStore(t)
	if err := os.RemoveAll(store.Dir()); err != nil {
		t.Fatal(err)
	}

	if err := store.Save(testSandbox("gone1")); err == nil {
		t.Error("Save into a removed folder returned no error")
	}
}

func TestDiskStoreListEmpty(t *testing.T) {
	store := newTestStore(t)

	list, err := store.List()
	if err != nil {
		t.Fatalf("List of an empty store failed: %v", err)
	}
	if len(list) != 0 {
		t.Errorf("List of an empty store = %v, want none", list)
	}
}

func TestDiskStoreListMissingFolder(t *testing.T) {
	store := newTestStore(t)
	if err := os.RemoveAll(store.Dir()); err != nil {
		t.Fatal(err)
	}

	if _, err := store.List(); err == nil {
		t.Error("List of a removed folder returned no error")
	}
}

func TestDiskStoreListCorrupt(t *testing.T) {
	good, err := json.Marshal(testSandbox("bad1"))
	if err != nil {
		t.Fatal(err)
	}
	mismatch, err := json.Marshal(testSandbox("other"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		content []byte
		// detail must appear in the error message, next to the path.
		detail string
	}{
		{"invalid-json", []byte("{not json"), "invalid character"},
		{"truncated", good[:len(good)/2], "unexpected end of JSON input"},
		{"empty-file", nil, "unexpected end of JSON input"},
		{"wrong-type", []byte(`["a list"]`), "cannot unmarshal"},
		{"null", []byte("null"), `""`},
		{"id-mismatch", mismatch, `"other"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := newTestStore(t)
			keep := testSandbox("good1")
			if err := store.Save(keep); err != nil {
				t.Fatalf("Save failed: %v", err)
			}
			path := filepath.Join(store.Dir(), "bad1.json")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}

			list, err := store.List()
			if err == nil {
				t.Fatalf("List with a %s record returned no error", tt.name)
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %q does not wrap ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the path %s", err, path)
			}
			if !strings.Contains(err.Error(), path+".corrupt") {
				t.Errorf("error %q does not name the new path %s.corrupt", err, path)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("error %q does not contain the reason %s", err, tt.detail)
			}
			if len(list) != 1 {
				t.Fatalf("List returned %d records next to the error, want the good one", len(list))
			}
			checkSameSandbox(t, list[0], keep)

			// The record was moved aside with its content unchanged.
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("corrupt record %s is still in place: %v", path, err)
			}
			moved, err := os.ReadFile(path + ".corrupt")
			if err != nil {
				t.Fatalf("corrupt record was not moved to %s.corrupt: %v", path, err)
			}
			if !bytes.Equal(moved, tt.content) {
				t.Errorf("moved record content = %q, want %q", moved, tt.content)
			}

			// The next List no longer reports it.
			list, err = store.List()
			if err != nil {
				t.Errorf("second List failed: %v", err)
			}
			if len(list) != 1 {
				t.Errorf("second List returned %d records, want 1", len(list))
			}
		})
	}
}

func TestDiskStoreListJoinsCorruptErrors(t *testing.T) {
	store := newTestStore(t)
	if err := store.Save(testSandbox("good1")); err != nil {
		t.Fatalf("Save failed: %v", err)
	}
	paths := []string{
		filepath.Join(store.Dir(), "bad1.json"),
		filepath.Join(store.Dir(), "bad2.json"),
	}
	for _, path := range paths {
		if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	list, err := store.List()
	if err == nil {
		t.Fatal("List with two corrupt records returned no error")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Errorf("error %q does not wrap ErrCorrupt", err)
	}
	for _, path := range paths {
		if !strings.Contains(err.Error(), path) {
			t.Errorf("error %q does not name %s", err, path)
		}
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		t.Fatalf("error %T is not joined with errors.Join", err)
	}
	if n := len(joined.Unwrap()); n != 2 {
		t.Errorf("error joins %d errors, want 2", n)
	}
	if len(list) != 1 || list[0].ID != "good1" {
		t.Errorf("List = %v, want only good1", list)
	}
}

func TestDiskStoreListRemovesTempFiles(t *testing.T) {
	store := newTestStore(t)
	if err := store.Save(testSandbox("good1")); err != nil {
		t.Fatalf("Save failed: %v", err)
	}
	// The name pattern of Save's temporary files, left by a crash mid-Save.
	leftovers := []string{".good1.json.tmp-12345", ".lost.json.tmp-1"}
	for _, name := range leftovers {
		if err := os.WriteFile(filepath.Join(store.Dir(), name), []byte(`{"id":"x"`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Files that are neither records nor temporary files are left alone.
	others := []string{"notes.txt", "old.json.corrupt"}
	for _, name := range others {
		if err := os.WriteFile(filepath.Join(store.Dir(), name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	list, err := store.List()
	if err != nil {
		t.Fatalf("List failed: %v", err)
	}
	if len(list) != 1 || list[0].ID != "good1" {
		t.Errorf("List = %v, want only good1", list)
	}
	want := []string{"good1.json", "notes.txt", "old.json.corrupt"}
	if got := dirNames(t, store.Dir()); !reflect.DeepEqual(got, want) {
		t.Errorf("records folder contains %v after List, want %v", got, want)
	}
}

func TestDiskStoreInvalidIDs(t *testing.T) {
	tests := []struct {
		name string
		id   string
	}{
		{"parent-path", "../x"},
		{"empty", ""},
		{"slash", "a/b"},
		{"dot", "."},
		{"dot-dot", ".."},
		{"leading-dot", ".hidden"},
		{"space", "a b"},
		{"too-long", strings.Repeat("a", 201)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stateDir := t.TempDir()
			store, err := NewDiskStore(stateDir)
			if err != nil {
				t.Fatalf("NewDiskStore failed: %v", err)
			}

			saveErr := store.Save(testSandbox(tt.id))
			if saveErr == nil {
				t.Errorf("Save of id %q returned no error", tt.id)
			} else if !strings.Contains(saveErr.Error(), "invalid sandbox id") {
				t.Errorf("Save error %q does not report the id as invalid", saveErr)
			}
			deleteErr := store.Delete(tt.id)
			if deleteErr == nil {
				t.Errorf("Delete of id %q returned no error", tt.id)
			} else if !strings.Contains(deleteErr.Error(), "invalid sandbox id") {
				t.Errorf("Delete error %q does not report the id as invalid", deleteErr)
			}

			// Nothing was written, inside the records folder or next to it.
			if got := dirNames(t, store.Dir()); len(got) != 0 {
				t.Errorf("records folder contains %v after a rejected Save", got)
			}
			if got, want := dirNames(t, stateDir), []string{"sandboxes"}; !reflect.DeepEqual(got, want) {
				t.Errorf("state folder contains %v after a rejected Save, want %v", got, want)
			}
		})
	}
}

func TestDiskStoreValidIDs(t *testing.T) {
	ids := []string{
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"a",
		"pod_1.sandbox-2",
		strings.Repeat("b", 200),
	}
	store := newTestStore(t)
	for _, id := range ids {
		if err := store.Save(testSandbox(id)); err != nil {
			t.Errorf("Save of id %q failed: %v", id, err)
		}
	}

	list, err := store.List()
	if err != nil {
		t.Fatalf("List failed: %v", err)
	}
	if len(list) != len(ids) {
		t.Errorf("List returned %d records, want %d", len(list), len(ids))
	}
	for _, id := range ids {
		if err := store.Delete(id); err != nil {
			t.Errorf("Delete of id %q failed: %v", id, err)
		}
	}
	if got := dirNames(t, store.Dir()); len(got) != 0 {
		t.Errorf("records folder contains %v after deleting every record", got)
	}
}

func TestDiskStoreDeleteMissing(t *testing.T) {
	store := newTestStore(t)

	if err := store.Delete("never-saved"); err != nil {
		t.Errorf("Delete of a missing record failed: %v", err)
	}
}

func TestSandboxComplete(t *testing.T) {
	tests := []struct {
		name   string
		phases []Phase
		want   bool
	}{
		{"no-attachments", nil, true},
		{"all-added", []Phase{PhaseAdded, PhaseAdded}, true},
		{"one-adding", []Phase{PhaseAdded, PhaseAdding}, false},
		{"only-adding", []Phase{PhaseAdding}, false},
		{"unknown-phase", []Phase{PhaseAdded, Phase("")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := &Sandbox{ID: "complete1"}
			for i, phase := range tt.phases {
				sb.Attachments = append(sb.Attachments, Attachment{
					Network: "net" + string(rune('a'+i)),
					Phase:   phase,
				})
			}
			if got := sb.Complete(); got != tt.want {
				t.Errorf("Complete() with phases %v = %v, want %v", tt.phases, got, tt.want)
			}
		})
	}
}

func TestDiskStoreCompleteAfterReload(t *testing.T) {
	store := newTestStore(t)
	if err := store.Save(testSandbox("reload1")); err != nil {
		t.Fatalf("Save failed: %v", err)
	}

	list, err := store.List()
	if err != nil {
		t.Fatalf("List failed: %v", err)
	}
	if len(list) != 1 {
		t.Fatalf("List returned %d records, want 1", len(list))
	}
	// testSandbox has one attachment still adding.
	if list[0].Complete() {
		t.Error("reloaded record with an adding attachment is complete")
	}
}
