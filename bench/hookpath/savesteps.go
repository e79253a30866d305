package hookpath

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nri-cni/nri-cni/bench/stats"
	"github.com/nri-cni/nri-cni/state"
)

// SaveSteps splits a state save and a state delete into the system calls
// that state.DiskStore makes, in milliseconds. The steps are replayed here,
// in a folder on the same file system, because the store does not expose
// them: encode the record, write a temporary file, fsync it, close and
// rename it over the record, fsync the folder. A delete removes the file and
// fsyncs the folder.
type SaveSteps struct {
	Encode         stats.Summary `json:"encodeMs"`
	WriteTemp      stats.Summary `json:"writeTempMs"`
	FsyncFile      stats.Summary `json:"fsyncFileMs"`
	Rename         stats.Summary `json:"renameMs"`
	FsyncDir       stats.Summary `json:"fsyncDirMs"`
	Save           stats.Summary `json:"saveMs"`
	Remove         stats.Summary `json:"removeMs"`
	DeleteFsyncDir stats.Summary `json:"deleteFsyncDirMs"`
}

// measureSaveSteps replays iterations saves and deletes of record in dir and
// returns their steps and the size of the encoded record.
func measureSaveSteps(dir string, record *state.Sandbox, iterations int) (SaveSteps, int, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return SaveSteps{}, 0, fmt.Errorf("failed to create save-steps folder: %w", err)
	}
	var encode, write, fsyncFile, rename, fsyncDir, save, remove, deleteFsync []float64
	size := 0
	path := filepath.Join(dir, record.ID+".json")
	for range iterations {
		start := time.Now()
		data, err := json.MarshalIndent(record, "", "  ")
		if err != nil {
			return SaveSteps{}, 0, fmt.Errorf("failed to encode record: %w", err)
		}
		size = len(data)
		encoded := time.Now()

		tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
		if err != nil {
			return SaveSteps{}, 0, fmt.Errorf("failed to create temporary record: %w", err)
		}
		if _, err := tmp.Write(data); err != nil {
			tmp.Close()
			return SaveSteps{}, 0, fmt.Errorf("failed to write temporary record: %w", err)
		}
		written := time.Now()
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return SaveSteps{}, 0, fmt.Errorf("failed to fsync temporary record: %w", err)
		}
		synced := time.Now()
		if err := tmp.Close(); err != nil {
			return SaveSteps{}, 0, fmt.Errorf("failed to close temporary record: %w", err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			return SaveSteps{}, 0, fmt.Errorf("failed to rename temporary record: %w", err)
		}
		renamed := time.Now()
		if err := syncDir(dir); err != nil {
			return SaveSteps{}, 0, err
		}
		done := time.Now()

		if err := os.Remove(path); err != nil {
			return SaveSteps{}, 0, fmt.Errorf("failed to remove record: %w", err)
		}
		removed := time.Now()
		if err := syncDir(dir); err != nil {
			return SaveSteps{}, 0, err
		}
		deleted := time.Now()

		encode = append(encode, milliseconds(encoded.Sub(start)))
		write = append(write, milliseconds(written.Sub(encoded)))
		fsyncFile = append(fsyncFile, milliseconds(synced.Sub(written)))
		rename = append(rename, milliseconds(renamed.Sub(synced)))
		fsyncDir = append(fsyncDir, milliseconds(done.Sub(renamed)))
		save = append(save, milliseconds(done.Sub(start)))
		remove = append(remove, milliseconds(removed.Sub(done)))
		deleteFsync = append(deleteFsync, milliseconds(deleted.Sub(removed)))
	}
	return SaveSteps{
		Encode:         stats.Summarize(encode),
		WriteTemp:      stats.Summarize(write),
		FsyncFile:      stats.Summarize(fsyncFile),
		Rename:         stats.Summarize(rename),
		FsyncDir:       stats.Summarize(fsyncDir),
		Save:           stats.Summarize(save),
		Remove:         stats.Summarize(remove),
		DeleteFsyncDir: stats.Summarize(deleteFsync),
	}, size, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("failed to open folder %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("failed to fsync folder %s: %w", dir, err)
	}
	return nil
}
