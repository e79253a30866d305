package cni

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFiles writes each name to content into dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// fakeBinDir creates a folder with one executable that exits 0 per name.
// LoadNetworks only checks that the files exist, it never runs them.
func fakeBinDir(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range names {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func loadNetworks(t *testing.T, confDir string, binDirs ...string) *Networks {
	t.Helper()
	nets, err := LoadNetworks(confDir, binDirs)
	if err != nil {
		t.Fatalf("LoadNetworks(%s) failed: %v", confDir, err)
	}
	return nets
}

func errorPaths(errs []*FileError) []string {
	paths := make([]string, len(errs))
	for i, fe := range errs {
		paths[i] = fe.Path
	}
	return paths
}

const (
	alphaConf = `{"cniVersion":"1.0.0","name":"alpha","type":"fake-bridge","bridge":"br-test"}`
	betaList  = `{"cniVersion":"1.0.0","name":"beta","plugins":[
		{"type":"fake-bridge","ipMasq":false},
		{"type":"fake-tuning"}]}`
	gammaJSON = `{"cniVersion":"0.4.0","name":"gamma","type":"fake-tuning"}`
)

func TestLoadNetworksFileTypes(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-alpha.conf":     alphaConf,
		"20-beta.conflist":  betaList,
		"30-gamma.json":     gammaJSON,
		"40-ignored.txt":    `{"cniVersion":"1.0.0","name":"ignored","type":"fake-bridge"}`,
		"50-ignored.conf~":  `{"cniVersion":"1.0.0","name":"backup","type":"fake-bridge"}`,
		"60-ignored.yaml":   "name: yaml",
		"70-no-extension":   `{"cniVersion":"1.0.0","name":"bare","type":"fake-bridge"}`,
		"80-alpha.conf.bak": `{"cniVersion":"1.0.0","name":"bak","type":"fake-bridge"}`,
	})
	// Folders are skipped, even when their name ends in .conf.
	if err := os.Mkdir(filepath.Join(confDir, "90-folder.conf"), 0o700); err != nil {
		t.Fatal(err)
	}
	binDir := fakeBinDir(t, "fake-bridge", "fake-tuning")

	nets := loadNetworks(t, confDir, binDir)

	if len(nets.Errors) != 0 {
		t.Errorf("Errors = %v, want none", nets.Errors)
	}
	if got, want := nets.Names(), []string{"alpha", "beta", "gamma"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}

	tests := []struct {
		name, file, cniVersion string
		types                  []string
	}{
		{"alpha", "10-alpha.conf", "1.0.0", []string{"fake-bridge"}},
		{"beta", "20-beta.conflist", "1.0.0", []string{"fake-bridge", "fake-tuning"}},
		{"gamma", "30-gamma.json", "0.4.0", []string{"fake-tuning"}},
	}
	for i, tt := range tests {
		nw, err := nets.Get(tt.name)
		if err != nil {
			t.Errorf("Get(%q) failed: %v", tt.name, err)
			continue
		}
		if nw != nets.All()[i] {
			t.Errorf("Get(%q) and All()[%d] differ", tt.name, i)
		}
		if nw.Name != tt.name || nw.List.Name != tt.name {
			t.Errorf("network %q has Name %q and List.Name %q", tt.name, nw.Name, nw.List.Name)
		}
		if want := filepath.Join(confDir, tt.file); nw.Path != want {
			t.Errorf("network %q path = %s, want %s", tt.name, nw.Path, want)
		}
		if nw.BaseName() != tt.file {
			t.Errorf("network %q BaseName() = %s, want %s", tt.name, nw.BaseName(), tt.file)
		}
		if nw.List.CNIVersion != tt.cniVersion {
			t.Errorf("network %q cniVersion = %q, want %q", tt.name, nw.List.CNIVersion, tt.cniVersion)
		}
		var types []string
		for _, p := range nw.List.Plugins {
			types = append(types, p.Network.Type)
		}
		if !reflect.DeepEqual(types, tt.types) {
			t.Errorf("network %q plugin types = %v, want %v", tt.name, types, tt.types)
		}
		if len(nw.List.Bytes) == 0 {
			t.Errorf("network %q has no config bytes to send to plugins", tt.name)
		}
	}
}

func TestLoadNetworksSinglePluginKeepsKeys(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{"10-alpha.conf": alphaConf})

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))

	nw, err := nets.Get("alpha")
	if err != nil {
		t.Fatalf("Get(alpha) failed: %v", err)
	}
	if len(nw.List.Plugins) != 1 {
		t.Fatalf("alpha has %d plugins, want 1", len(nw.List.Plugins))
	}
	// The plugin's own keys reach the plugin through its config bytes.
	if got := string(nw.List.Plugins[0].Bytes); !strings.Contains(got, `"bridge":"br-test"`) {
		t.Errorf("plugin config %s lost the bridge key", got)
	}
}

func TestLoadNetworksJSONConfigList(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{"10-beta.json": betaList})

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge", "fake-tuning"))

	if len(nets.Errors) != 0 {
		t.Errorf("Errors = %v, want none", nets.Errors)
	}
	nw, err := nets.Get("beta")
	if err != nil {
		t.Fatalf("Get(beta) of a .json config list failed: %v", err)
	}
	if len(nw.List.Plugins) != 2 {
		t.Errorf("beta has %d plugins, want 2", len(nw.List.Plugins))
	}
}

func TestLoadNetworksFileNameOrder(t *testing.T) {
	confDir := t.TempDir()
	// The network names sort in the other order, so only file name order passes.
	writeFiles(t, confDir, map[string]string{
		"b.conf":          `{"cniVersion":"1.0.0","name":"first","type":"fake-bridge"}`,
		"10-z.conflist":   `{"cniVersion":"1.0.0","name":"zulu","plugins":[{"type":"fake-bridge"}]}`,
		"a.json":          `{"cniVersion":"1.0.0","name":"middle","type":"fake-bridge"}`,
		"99-last.conf":    `{"cniVersion":"1.0.0","name":"alpha","type":"fake-bridge"}`,
		"9-before-a.conf": `{"cniVersion":"1.0.0","name":"beta","type":"fake-bridge"}`,
	})

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))

	// Byte order: "10-" < "9-" < "99-" < "a" < "b", so the order is not numeric.
	want := []string{"zulu", "beta", "alpha", "middle", "first"}
	if got := nets.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v (file name order)", got, want)
	}
	if got := len(nets.All()); got != len(want) {
		t.Errorf("All() has %d networks, want %d", got, len(want))
	}
}

func TestLoadNetworksMissingConfDir(t *testing.T) {
	confDir := filepath.Join(t.TempDir(), "missing")

	nets := loadNetworks(t, confDir, fakeBinDir(t))

	if len(nets.All()) != 0 || len(nets.Names()) != 0 {
		t.Errorf("networks of a missing conf dir = %v, want none", nets.Names())
	}
	if len(nets.Errors) != 0 {
		t.Errorf("Errors = %v, want none", nets.Errors)
	}
	_, err := nets.Get("alpha")
	if !errors.Is(err, ErrUnknownNetwork) {
		t.Fatalf("Get(alpha) error = %v, want ErrUnknownNetwork", err)
	}
	if !strings.Contains(err.Error(), "known networks: none") {
		t.Errorf("error %q does not report that no network is known", err)
	}
}

func TestLoadNetworksUnreadableConfDir(t *testing.T) {
	// A file in place of the folder fails to list, unlike a missing folder.
	confDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(confDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	nets, err := LoadNetworks(confDir, []string{fakeBinDir(t)})
	if err == nil {
		t.Fatalf("LoadNetworks of a file returned %v and no error", nets.Names())
	}
	if !strings.Contains(err.Error(), confDir) {
		t.Errorf("error %q does not name %s", err, confDir)
	}
}

func TestLoadNetworksEmptyLoaderValues(t *testing.T) {
	// LoadNetworks("", nil) is the fallback of a plugin whose conf dir failed.
	nets, err := LoadNetworks("", nil)
	if err != nil {
		t.Fatalf("LoadNetworks(\"\", nil) failed: %v", err)
	}
	if len(nets.Names()) != 0 {
		t.Errorf("Names() = %v, want none", nets.Names())
	}
	if _, err := nets.Get("alpha"); !errors.Is(err, ErrUnknownNetwork) {
		t.Errorf("Get(alpha) error = %v, want ErrUnknownNetwork", err)
	}
}

func TestLoadNetworksBadFiles(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		content string
		// reason must appear in the FileError and, for a named network, in Get's error.
		reason string
		// network is the name Get reports as invalid, or "" when the file has no readable name.
		network string
		skip    string
	}{
		{
			name:    "invalid-json",
			file:    "20-bad.conf",
			content: `{"cniVersion":"1.0.0","name":"bad",`,
			reason:  "unexpected end of JSON input",
		},
		{
			name:    "unsupported-cni-version",
			file:    "20-bad.conflist",
			content: `{"cniVersion":"9.9.9","name":"bad","plugins":[{"type":"fake-bridge"}]}`,
			reason:  `cniVersion "9.9.9"`,
			network: "bad",
		},
		{
			name:    "invalid-json-conflist",
			file:    "20-bad.conflist",
			content: `{"cniVersion": "1.0.0" "name": "bad"}`,
			reason:  "invalid character",
		},
		{
			name:    "no-name-conf",
			file:    "20-bad.conf",
			content: `{"cniVersion":"1.0.0","type":"fake-bridge"}`,
			reason:  "no name",
		},
		{
			name:    "no-name-conflist",
			file:    "20-bad.conflist",
			content: `{"cniVersion":"1.0.0","plugins":[{"type":"fake-bridge"}]}`,
			reason:  "no name",
		},
		{
			name:    "empty-plugin-list",
			file:    "20-bad.conflist",
			content: `{"cniVersion":"1.0.0","name":"bad","plugins":[]}`,
			reason:  "no plugins",
			network: "bad",
		},
		{
			name:    "missing-binary-conf",
			file:    "20-bad.conf",
			content: `{"cniVersion":"1.0.0","name":"bad","type":"fake-absent"}`,
			reason:  `plugin binary "fake-absent" of network "bad" not found in`,
			network: "bad",
		},
		{
			name: "missing-binary-second-plugin",
			file: "20-bad.conflist",
			content: `{"cniVersion":"1.0.0","name":"bad","plugins":[
				{"type":"fake-bridge"},{"type":"fake-absent"}]}`,
			reason:  `plugin binary "fake-absent" of network "bad" not found in`,
			network: "bad",
		},
		{
			name: "plugin-without-type",
			file: "20-bad.conflist",
			content: `{"cniVersion":"1.0.0","name":"bad","plugins":[
				{"type":"fake-bridge"},{"ipMasq":false}]}`,
			reason:  "type",
			network: "bad",
		},
		{
			name:    "conf-without-type",
			file:    "20-bad.conf",
			content: `{"cniVersion":"1.0.0","name":"bad"}`,
			reason:  "type",
			network: "bad",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" {
				t.Skip(tt.skip)
			}
			confDir := t.TempDir()
			writeFiles(t, confDir, map[string]string{
				"10-good.conf": `{"cniVersion":"1.0.0","name":"good","type":"fake-bridge"}`,
				tt.file:        tt.content,
			})
			binDir := fakeBinDir(t, "fake-bridge")
			path := filepath.Join(confDir, tt.file)

			nets := loadNetworks(t, confDir, binDir)

			// The good network is still loaded.
			if got := nets.Names(); !reflect.DeepEqual(got, []string{"good"}) {
				t.Errorf("Names() = %v, want [good]", got)
			}
			if len(nets.Errors) != 1 {
				t.Fatalf("Errors = %v, want one for %s", nets.Errors, path)
			}
			fe := nets.Errors[0]
			if fe.Path != path {
				t.Errorf("FileError path = %s, want %s", fe.Path, path)
			}
			if fe.Network != tt.network {
				t.Errorf("FileError network = %q, want %q", fe.Network, tt.network)
			}
			if !strings.Contains(fe.Error(), path) {
				t.Errorf("FileError %q does not name the path %s", fe, path)
			}
			if !strings.Contains(fe.Error(), tt.reason) {
				t.Errorf("FileError %q does not contain the reason %q", fe, tt.reason)
			}
			if fe.Unwrap() == nil || !strings.Contains(fe.Unwrap().Error(), tt.reason) {
				t.Errorf("FileError wraps %v, want the cause with %q", fe.Unwrap(), tt.reason)
			}
			if tt.network == "" {
				return
			}

			_, err := nets.Get(tt.network)
			if !errors.Is(err, ErrInvalidNetwork) {
				t.Fatalf("Get(%q) error = %v, want ErrInvalidNetwork", tt.network, err)
			}
			if errors.Is(err, ErrUnknownNetwork) {
				t.Errorf("Get(%q) error %q is also ErrUnknownNetwork", tt.network, err)
			}
			for _, detail := range []string{`"` + tt.network + `"`, path, tt.reason} {
				if !strings.Contains(err.Error(), detail) {
					t.Errorf("Get(%q) error %q does not contain %s", tt.network, err, detail)
				}
			}
		})
	}
}

func TestLoadNetworksMissingBinaryNamesBinDirs(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-bad.conf": `{"cniVersion":"1.0.0","name":"bad","type":"fake-absent"}`,
	})
	binDirs := []string{fakeBinDir(t, "fake-bridge"), fakeBinDir(t, "fake-tuning")}

	nets := loadNetworks(t, confDir, binDirs...)

	if len(nets.Errors) != 1 {
		t.Fatalf("Errors = %v, want one", nets.Errors)
	}
	for _, dir := range binDirs {
		if !strings.Contains(nets.Errors[0].Error(), dir) {
			t.Errorf("error %q does not name the bin dir %s", nets.Errors[0], dir)
		}
	}
	if !strings.Contains(nets.Errors[0].Error(), "cniBinDirs") {
		t.Errorf("error %q does not name the key to fix", nets.Errors[0])
	}
}

func TestLoadNetworksMissingIPAMBinary(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-bad.conf": `{"cniVersion":"1.0.0","name":"bad","type":"fake-bridge","ipam":{"type":"fake-absent-ipam"}}`,
	})
	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))

	if len(nets.Errors) != 1 || !strings.Contains(nets.Errors[0].Error(), `"fake-absent-ipam"`) {
		t.Fatalf("Errors = %v, want one naming the IPAM binary fake-absent-ipam", nets.Errors)
	}
	if _, err := nets.Get("bad"); !errors.Is(err, ErrInvalidNetwork) {
		t.Errorf("Get of the network with a missing IPAM binary: %v, want ErrInvalidNetwork", err)
	}
}

func TestLoadNetworksBinaryInSecondBinDir(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{"20-beta.conflist": betaList})
	binDirs := []string{fakeBinDir(t, "fake-bridge"), fakeBinDir(t, "fake-tuning")}

	nets := loadNetworks(t, confDir, binDirs...)

	if len(nets.Errors) != 0 {
		t.Errorf("Errors = %v, want none", nets.Errors)
	}
	if _, err := nets.Get("beta"); err != nil {
		t.Errorf("Get(beta) with its plugins in two bin dirs failed: %v", err)
	}
}

func TestLoadNetworksNoBinDirs(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{"10-alpha.conf": alphaConf})

	nets := loadNetworks(t, confDir)

	if len(nets.Errors) != 1 {
		t.Fatalf("Errors = %v, want one", nets.Errors)
	}
	if _, err := nets.Get("alpha"); !errors.Is(err, ErrInvalidNetwork) {
		t.Errorf("Get(alpha) with no bin dirs error = %v, want ErrInvalidNetwork", err)
	}
}

func TestLoadNetworksBinaryIsFolder(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{"10-alpha.conf": alphaConf})
	binDir := t.TempDir()
	if err := os.Mkdir(filepath.Join(binDir, "fake-bridge"), 0o755); err != nil {
		t.Fatal(err)
	}

	nets := loadNetworks(t, confDir, binDir)

	if _, err := nets.Get("alpha"); !errors.Is(err, ErrInvalidNetwork) {
		t.Errorf("Get(alpha) with a folder in place of its binary error = %v, want ErrInvalidNetwork", err)
	}
}

func TestGetUnknownNetwork(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-alpha.conf":    alphaConf,
		"20-beta.conflist": betaList,
	})

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge", "fake-tuning"))

	nw, err := nets.Get("omega")
	if err == nil {
		t.Fatalf("Get(omega) = %v and no error", nw)
	}
	if !errors.Is(err, ErrUnknownNetwork) {
		t.Errorf("Get(omega) error %q is not ErrUnknownNetwork", err)
	}
	if errors.Is(err, ErrInvalidNetwork) {
		t.Errorf("Get(omega) error %q is also ErrInvalidNetwork", err)
	}
	for _, detail := range []string{`"omega"`, "alpha, beta"} {
		if !strings.Contains(err.Error(), detail) {
			t.Errorf("error %q does not contain %s", err, detail)
		}
	}
}

func TestLoadNetworksDuplicateName(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-first.conf":      `{"cniVersion":"1.0.0","name":"dup","type":"fake-bridge"}`,
		"20-second.conflist": `{"cniVersion":"1.0.0","name":"dup","plugins":[{"type":"fake-tuning"}]}`,
		"30-other.conf":      `{"cniVersion":"1.0.0","name":"other","type":"fake-bridge"}`,
	})
	first := filepath.Join(confDir, "10-first.conf")
	second := filepath.Join(confDir, "20-second.conflist")

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge", "fake-tuning"))

	if got, want := nets.Names(), []string{"dup", "other"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	nw, err := nets.Get("dup")
	if err != nil {
		t.Fatalf("Get(dup) failed: %v", err)
	}
	if nw.Path != first {
		t.Errorf("Get(dup) path = %s, want the first file %s", nw.Path, first)
	}
	if got := nw.List.Plugins[0].Network.Type; got != "fake-bridge" {
		t.Errorf("Get(dup) plugin type = %s, want fake-bridge of the first file", got)
	}

	if got, want := errorPaths(nets.Errors), []string{second}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Errors are for %v, want %v", got, want)
	}
	fe := nets.Errors[0]
	if fe.Network != "dup" {
		t.Errorf("FileError network = %q, want dup", fe.Network)
	}
	for _, detail := range []string{"already defined", first} {
		if !strings.Contains(fe.Error(), detail) {
			t.Errorf("FileError %q does not contain %s", fe, detail)
		}
	}
}

func TestLoadNetworksInvalidDuplicateOfValid(t *testing.T) {
	// A later invalid file does not take the name away from a valid first file.
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-first.conf":  `{"cniVersion":"1.0.0","name":"dup","type":"fake-bridge"}`,
		"20-second.conf": `{"cniVersion":"1.0.0","name":"dup","type":"fake-absent"}`,
	})
	first := filepath.Join(confDir, "10-first.conf")
	second := filepath.Join(confDir, "20-second.conf")

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))

	nw, err := nets.Get("dup")
	if err != nil {
		t.Fatalf("Get(dup) failed: %v", err)
	}
	if nw.Path != first {
		t.Errorf("Get(dup) path = %s, want %s", nw.Path, first)
	}
	if got, want := errorPaths(nets.Errors), []string{second}; !reflect.DeepEqual(got, want) {
		t.Errorf("Errors are for %v, want %v", got, want)
	}
}

func TestLoadNetworksValidDuplicateOfInvalid(t *testing.T) {
	// An invalid first file keeps the name: the later valid file does not replace it.
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-first.conf":  `{"cniVersion":"1.0.0","name":"dup","type":"fake-absent"}`,
		"20-second.conf": `{"cniVersion":"1.0.0","name":"dup","type":"fake-bridge"}`,
	})
	first := filepath.Join(confDir, "10-first.conf")

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))

	if got := nets.Names(); len(got) != 0 {
		t.Errorf("Names() = %v, want none", got)
	}
	_, err := nets.Get("dup")
	if !errors.Is(err, ErrInvalidNetwork) {
		t.Fatalf("Get(dup) error = %v, want ErrInvalidNetwork", err)
	}
	if !strings.Contains(err.Error(), first) {
		t.Errorf("Get(dup) error %q does not name the first file %s", err, first)
	}
}

func TestLoadNetworksValidDuplicateOfInvalidReported(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-first.conf":  `{"cniVersion":"1.0.0","name":"dup","type":"fake-absent"}`,
		"20-second.conf": `{"cniVersion":"1.0.0","name":"dup","type":"fake-bridge"}`,
	})
	first := filepath.Join(confDir, "10-first.conf")
	second := filepath.Join(confDir, "20-second.conf")

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))

	if got, want := errorPaths(nets.Errors), []string{first, second}; !reflect.DeepEqual(got, want) {
		t.Errorf("Errors are for %v, want %v", got, want)
	}
}

func TestLoadNetworksTwoInvalidDuplicates(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"10-first.conf":  `{"cniVersion":"1.0.0","name":"dup","type":"fake-absent-one"}`,
		"20-second.conf": `{"cniVersion":"1.0.0","name":"dup","type":"fake-absent-two"}`,
	})
	first := filepath.Join(confDir, "10-first.conf")

	nets := loadNetworks(t, confDir, fakeBinDir(t))

	if len(nets.Errors) != 2 {
		t.Errorf("Errors = %v, want one per file", nets.Errors)
	}
	_, err := nets.Get("dup")
	if !errors.Is(err, ErrInvalidNetwork) {
		t.Fatalf("Get(dup) error = %v, want ErrInvalidNetwork", err)
	}
	if !strings.Contains(err.Error(), first) || !strings.Contains(err.Error(), "fake-absent-one") {
		t.Errorf("Get(dup) error %q does not give the reason of the first file %s", err, first)
	}
}

func TestLoadNetworksErrorsInFileNameOrder(t *testing.T) {
	confDir := t.TempDir()
	writeFiles(t, confDir, map[string]string{
		"30-c.conf": "{",
		"10-a.conf": `{"cniVersion":"1.0.0","name":"a","type":"fake-absent"}`,
		"20-b.conf": `{"cniVersion":"1.0.0","type":"fake-bridge"}`,
	})

	nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))

	want := []string{
		filepath.Join(confDir, "10-a.conf"),
		filepath.Join(confDir, "20-b.conf"),
		filepath.Join(confDir, "30-c.conf"),
	}
	if got := errorPaths(nets.Errors); !reflect.DeepEqual(got, want) {
		t.Errorf("Errors are for %v, want %v", got, want)
	}
}

func TestLoadNetworksRejectsInvalidName(t *testing.T) {
	for _, name := range []string{"x,y", "p q", "-lead", "a/b"} {
		t.Run(name, func(t *testing.T) {
			confDir := t.TempDir()
			writeFiles(t, confDir, map[string]string{
				"10-bad.conf": `{"cniVersion":"1.0.0","name":"` + name + `","type":"fake-bridge"}`,
			})
			nets := loadNetworks(t, confDir, fakeBinDir(t, "fake-bridge"))
			if len(nets.All()) != 0 {
				t.Errorf("networks %v loaded, want none", nets.Names())
			}
			if len(nets.Errors) != 1 || !strings.Contains(nets.Errors[0].Error(), "invalid network name") {
				t.Errorf("errors = %v, want one invalid network name", nets.Errors)
			}
		})
	}
}
