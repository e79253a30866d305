package ociimage

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// layerEntry is what a test checks of one tar header.
type layerEntry struct {
	typeflag byte
	mode     int64
	linkname string
	content  string
	modTime  time.Time
	uid, gid int
}

func readLayerTar(t *testing.T, content []byte) ([]string, map[string]layerEntry) {
	t.Helper()
	reader := tar.NewReader(bytes.NewReader(content))
	var names []string
	entries := map[string]layerEntry{}
	for {
		header, err := reader.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read layer tar: %v", err)
		}
		data, err := io.ReadAll(reader)
		if err != nil {
			t.Fatalf("read %q from layer tar: %v", header.Name, err)
		}
		names = append(names, header.Name)
		entries[header.Name] = layerEntry{
			typeflag: header.Typeflag,
			mode:     header.Mode,
			linkname: header.Linkname,
			content:  string(data),
			modTime:  header.ModTime,
			uid:      header.Uid,
			gid:      header.Gid,
		}
	}
	return names, entries
}

func writeHostFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile applies the umask, Chmod does not.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLayerFilesAndParents(t *testing.T) {
	hostDir := t.TempDir()
	binary := filepath.Join(hostDir, "tool")
	writeHostFile(t, binary, "#!/bin/sh\n", 0o750)

	layer := Layer{Files: []File{
		{Path: "/usr/local/bin/tool", Source: binary},
		{Path: "etc/motd", Content: []byte("hello\n")},
		{Path: "/bin/sh", Linkname: "/usr/local/bin/tool"},
		{Path: "/tmp", Dir: true, Mode: 0o777 | fs.ModeSticky},
		{Path: "/sbin/helper", Source: binary, Mode: 0o4755 | fs.ModeSetuid},
		{Path: "/empty"},
	}}
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	content, err := layer.tar(created)
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	names, entries := readLayerTar(t, content)

	wantNames := []string{
		"bin/", "bin/sh", "empty", "etc/", "etc/motd", "sbin/", "sbin/helper",
		"tmp/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/tool",
	}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("entry names = %v, want %v", names, wantNames)
	}

	checks := []struct {
		name     string
		typeflag byte
		mode     int64
		content  string
		linkname string
	}{
		{name: "usr/local/bin/tool", typeflag: tar.TypeReg, mode: 0o750, content: "#!/bin/sh\n"},
		{name: "usr/local/", typeflag: tar.TypeDir, mode: 0o755},
		{name: "etc/motd", typeflag: tar.TypeReg, mode: 0o644, content: "hello\n"},
		{name: "bin/sh", typeflag: tar.TypeSymlink, mode: 0o777, linkname: "/usr/local/bin/tool"},
		{name: "tmp/", typeflag: tar.TypeDir, mode: 0o1777},
		{name: "sbin/helper", typeflag: tar.TypeReg, mode: 0o4755, content: "#!/bin/sh\n"},
		{name: "empty", typeflag: tar.TypeReg, mode: 0o644},
	}
	for _, check := range checks {
		got, ok := entries[check.name]
		if !ok {
			t.Errorf("entry %q is missing", check.name)
			continue
		}
		if got.typeflag != check.typeflag {
			t.Errorf("entry %q type = %q, want %q", check.name, got.typeflag, check.typeflag)
		}
		if got.mode != check.mode {
			t.Errorf("entry %q mode = %o, want %o", check.name, got.mode, check.mode)
		}
		if got.content != check.content {
			t.Errorf("entry %q content = %q, want %q", check.name, got.content, check.content)
		}
		if got.linkname != check.linkname {
			t.Errorf("entry %q linkname = %q, want %q", check.name, got.linkname, check.linkname)
		}
		if !got.modTime.Equal(created) {
			t.Errorf("entry %q mtime = %v, want %v", check.name, got.modTime, created)
		}
		if got.uid != 0 || got.gid != 0 {
			t.Errorf("entry %q owner = %d:%d, want 0:0", check.name, got.uid, got.gid)
		}
	}
}

func TestLayerTree(t *testing.T) {
	treeDir := t.TempDir()
	writeHostFile(t, filepath.Join(treeDir, "bin", "app"), "app", 0o755)
	writeHostFile(t, filepath.Join(treeDir, "share", "doc", "README"), "readme", 0o600)
	if err := os.Symlink("app", filepath.Join(treeDir, "bin", "alias")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(treeDir, "share"), 0o700); err != nil {
		t.Fatal(err)
	}

	layer := Layer{
		Trees: []Tree{{Source: treeDir, Target: "/opt/app"}},
		Files: []File{{Path: "/opt/app/VERSION", Content: []byte("1\n")}},
	}
	content, err := layer.tar(time.Unix(0, 0))
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	names, entries := readLayerTar(t, content)

	wantNames := []string{
		"opt/", "opt/app/", "opt/app/VERSION", "opt/app/bin/", "opt/app/bin/alias", "opt/app/bin/app",
		"opt/app/share/", "opt/app/share/doc/", "opt/app/share/doc/README",
	}
	if strings.Join(names, " ") != strings.Join(wantNames, " ") {
		t.Errorf("entry names = %v, want %v", names, wantNames)
	}
	if got := entries["opt/app/bin/alias"]; got.typeflag != tar.TypeSymlink || got.linkname != "app" {
		t.Errorf("alias = type %q link %q, want a symlink to app", got.typeflag, got.linkname)
	}
	if got := entries["opt/app/bin/app"]; got.mode != 0o755 || got.content != "app" {
		t.Errorf("app = mode %o content %q, want mode 755 content app", got.mode, got.content)
	}
	if got := entries["opt/app/share/"]; got.mode != 0o700 {
		t.Errorf("share mode = %o, want 700 from the host directory", got.mode)
	}
	if got := entries["opt/app/share/doc/README"]; got.mode != 0o600 {
		t.Errorf("README mode = %o, want 600 from the host file", got.mode)
	}
}

func TestLayerTreeAtRoot(t *testing.T) {
	treeDir := t.TempDir()
	writeHostFile(t, filepath.Join(treeDir, "etc", "hostname"), "pod\n", 0o644)

	content, err := Layer{Trees: []Tree{{Source: treeDir}}}.tar(time.Unix(0, 0))
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	names, _ := readLayerTar(t, content)
	if strings.Join(names, " ") != "etc/ etc/hostname" {
		t.Errorf("entry names = %v, want [etc/ etc/hostname]", names)
	}
}

func TestLayerRejectsInvalidEntries(t *testing.T) {
	hostFile := filepath.Join(t.TempDir(), "file")
	writeHostFile(t, hostFile, "x", 0o644)
	fifoDir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(fifoDir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name  string
		layer Layer
		want  string
	}{
		{
			name:  "duplicate-path",
			layer: Layer{Files: []File{{Path: "/a", Content: []byte("1")}, {Path: "a", Content: []byte("2")}}},
			want:  `duplicate path "/a"`,
		},
		{
			name:  "dot-dot",
			layer: Layer{Files: []File{{Path: "/etc/../../x", Content: []byte("1")}}},
			want:  "must not contain ..",
		},
		{
			name:  "empty-path",
			layer: Layer{Files: []File{{Content: []byte("1")}}},
			want:  "missing path",
		},
		{
			name:  "root-path",
			layer: Layer{Files: []File{{Path: "/", Dir: true}}},
			want:  "image root cannot be an entry",
		},
		{
			name:  "two-kinds",
			layer: Layer{Files: []File{{Path: "/a", Source: hostFile, Linkname: "b"}}},
			want:  "set only one of",
		},
		{
			name:  "below-file",
			layer: Layer{Files: []File{{Path: "/a", Content: []byte("1")}, {Path: "/a/b", Content: []byte("2")}}},
			want:  `is below "/a", which is not a directory`,
		},
		{
			name:  "missing-source",
			layer: Layer{Files: []File{{Path: "/a", Source: filepath.Join(t.TempDir(), "absent")}}},
			want:  `failed to read source of "/a"`,
		},
		{
			name:  "source-is-directory",
			layer: Layer{Files: []File{{Path: "/a", Source: t.TempDir()}}},
			want:  "not a regular file",
		},
		{
			name:  "tree-with-fifo",
			layer: Layer{Trees: []Tree{{Source: fifoDir, Target: "/x"}}},
			want:  "unsupported file",
		},
		{
			name:  "tree-without-source",
			layer: Layer{Trees: []Tree{{Target: "/x"}}},
			want:  "missing source of tree",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.layer.tar(time.Unix(0, 0))
			if err == nil {
				t.Fatalf("tar succeeded, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLayerExplicitDirReplacesParent(t *testing.T) {
	layer := Layer{Files: []File{
		{Path: "/data/file", Content: []byte("x")},
		{Path: "/data", Dir: true, Mode: 0o700},
	}}
	content, err := layer.tar(time.Unix(0, 0))
	if err != nil {
		t.Fatalf("tar: %v", err)
	}
	_, entries := readLayerTar(t, content)
	if got := entries["data/"].mode; got != 0o700 {
		t.Errorf("data mode = %o, want the explicit 700", got)
	}
}

func TestValidateName(t *testing.T) {
	cases := []struct {
		name string
		want string // empty for a valid name
	}{
		{name: "localhost/nri-cni/pause:e2e"},
		{name: "registry.example:5000/app:v1"},
		{name: "example.com/team/app:1.2.3"},
		{name: "docker.io/library/busybox:1.36"},
		{name: "", want: "missing image name"},
		{name: "pause:e2e", want: `"docker.io/library/pause:e2e"`},
		{name: "team/app:v1", want: `"docker.io/team/app:v1"`},
		{name: "docker.io/busybox:1.36", want: `"docker.io/library/busybox:1.36"`},
		{name: "localhost/app", want: "with a tag"},
		{name: "localhost/App:v1", want: "invalid image name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := validateName(tc.name)
			if tc.want == "" {
				if err != nil {
					t.Errorf("validateName(%q) = %v, want nil", tc.name, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("validateName(%q) = nil, want an error containing %q", tc.name, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validateName(%q) = %q, want it to contain %q", tc.name, err, tc.want)
			}
		})
	}
}

func testImages(t *testing.T) []Image {
	t.Helper()
	binary := filepath.Join(t.TempDir(), "pause")
	writeHostFile(t, binary, "not really a binary", 0o755)
	return []Image{
		{
			Name: "localhost/ociimage-test/pause:v1",
			Layers: []Layer{{Files: []File{
				{Path: "/pause", Source: binary},
			}}},
			Config: Config{
				Entrypoint: []string{"/pause"},
				User:       "65535:65535",
			},
		},
		{
			Name: "localhost/ociimage-test/tools:v1",
			Layers: []Layer{
				{Files: []File{{Path: "/bin/busybox", Source: binary}}},
				{Files: []File{{Path: "/bin/sh", Linkname: "busybox"}}},
			},
			Config: Config{
				Cmd:        []string{"/bin/sh"},
				Env:        []string{"PATH=/bin"},
				WorkingDir: "/",
				Labels:     map[string]string{"org.opencontainers.image.title": "tools"},
			},
		},
	}
}

// extractArchive unpacks an archive written by WriteArchive and returns its
// folder and the names of its entries.
func extractArchive(t *testing.T, archive []byte) (string, []string) {
	t.Helper()
	folder := t.TempDir()
	reader := tar.NewReader(bytes.NewReader(archive))
	var names []string
	for {
		header, err := reader.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read archive: %v", err)
		}
		names = append(names, header.Name)
		target := filepath.Join(folder, header.Name)
		if header.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, err := io.ReadAll(reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return folder, names
}

func TestWriteArchiveLayout(t *testing.T) {
	images := testImages(t)
	var archive bytes.Buffer
	if err := WriteArchive(&archive, images...); err != nil {
		t.Fatalf("WriteArchive: %v", err)
	}
	folder, names := extractArchive(t, archive.Bytes())

	if len(names) < 3 || names[0] != "blobs/" || names[1] != "blobs/sha256/" {
		t.Errorf("archive entries start with %v, want blobs/ then blobs/sha256/", names)
	}
	for _, required := range []string{"oci-layout", "index.json"} {
		if _, err := os.Stat(filepath.Join(folder, required)); err != nil {
			t.Errorf("archive has no %s: %v", required, err)
		}
	}

	index, err := layout.ImageIndexFromPath(folder)
	if err != nil {
		t.Fatalf("read layout: %v", err)
	}
	if err := validate.Index(index); err != nil {
		t.Fatalf("layout does not validate: %v", err)
	}
	indexManifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if indexManifest.MediaType != types.OCIImageIndex {
		t.Errorf("index media type = %q, want %q", indexManifest.MediaType, types.OCIImageIndex)
	}
	if len(indexManifest.Manifests) != len(images) {
		t.Fatalf("index has %d manifests, want %d", len(indexManifest.Manifests), len(images))
	}

	for i, descriptor := range indexManifest.Manifests {
		want := images[i]
		if got := descriptor.Annotations[AnnotationImageName]; got != want.Name {
			t.Errorf("manifest %d annotation %s = %q, want %q", i, AnnotationImageName, got, want.Name)
		}
		if descriptor.MediaType != types.OCIManifestSchema1 {
			t.Errorf("manifest %d media type = %q, want %q", i, descriptor.MediaType, types.OCIManifestSchema1)
		}
		wantPlatform := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		if descriptor.Platform == nil || !descriptor.Platform.Equals(wantPlatform) {
			t.Errorf("manifest %d platform = %v, want %v", i, descriptor.Platform, wantPlatform)
		}

		img, err := index.Image(descriptor.Digest)
		if err != nil {
			t.Fatalf("read image %q: %v", want.Name, err)
		}
		checkImage(t, img, want)
	}
}

func checkImage(t *testing.T, img v1.Image, want Image) {
	t.Helper()
	manifest, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if manifest.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("%s config media type = %q, want %q", want.Name, manifest.Config.MediaType, types.OCIConfigJSON)
	}
	if len(manifest.Layers) != len(want.Layers) {
		t.Errorf("%s has %d layers, want %d", want.Name, len(manifest.Layers), len(want.Layers))
	}
	for _, layer := range manifest.Layers {
		if layer.MediaType != types.OCILayer {
			t.Errorf("%s layer media type = %q, want %q", want.Name, layer.MediaType, types.OCILayer)
		}
	}

	config, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if config.OS != "linux" || config.Architecture != runtime.GOARCH {
		t.Errorf("%s platform = %s/%s, want linux/%s", want.Name, config.OS, config.Architecture, runtime.GOARCH)
	}
	if !config.Created.Time.Equal(time.Unix(0, 0)) {
		t.Errorf("%s created = %v, want the Unix epoch", want.Name, config.Created.Time)
	}
	got, err := json.Marshal(Config{
		Entrypoint: config.Config.Entrypoint,
		Cmd:        config.Config.Cmd,
		Env:        config.Config.Env,
		User:       config.Config.User,
		WorkingDir: config.Config.WorkingDir,
		Labels:     config.Config.Labels,
	})
	if err != nil {
		t.Fatal(err)
	}
	wantConfig, err := json.Marshal(want.Config)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(wantConfig) {
		t.Errorf("%s config = %s, want %s", want.Name, got, wantConfig)
	}
}

func TestWriteArchiveReproducible(t *testing.T) {
	images := testImages(t)
	var first, second bytes.Buffer
	if err := WriteArchive(&first, images...); err != nil {
		t.Fatalf("first WriteArchive: %v", err)
	}
	if err := WriteArchive(&second, images...); err != nil {
		t.Fatalf("second WriteArchive: %v", err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Errorf("two archives of the same images differ (%d and %d bytes)", first.Len(), second.Len())
	}
}

func TestWriteArchiveRejectsDuplicateName(t *testing.T) {
	images := testImages(t)
	err := WriteArchive(io.Discard, images[0], images[0])
	if err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("WriteArchive with a name twice = %v, want an error saying it is listed twice", err)
	}
}

func TestWriteArchiveFileKeepsOldOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "images", "test.tar")
	images := testImages(t)
	if err := WriteArchiveFile(path, images...); err != nil {
		t.Fatalf("WriteArchiveFile: %v", err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	broken := Image{Name: "short:v1"}
	if err := WriteArchiveFile(path, broken); err == nil {
		t.Fatal("WriteArchiveFile with an invalid name succeeded")
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a failed WriteArchiveFile changed the existing archive")
	}
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(path), ".test.tar.*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(leftovers) != 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}
}
