package main

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/nri-cni/nri-cni/internal/ociimage"
)

// dockerfile is the Dockerfile at the repository root, two folders up.
const dockerfile = "../../Dockerfile"

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	command string
	args    string
}

// readDockerfile returns the instructions of the final stage and of the
// stage named base.
func readDockerfile(t *testing.T) (final, base []instruction) {
	t.Helper()
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatalf("failed to read Dockerfile: %v", err)
	}

	var stages [][]instruction
	var names []string
	joined := strings.ReplaceAll(string(data), "\\\n", " ")
	for _, line := range strings.Split(joined, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		command, args, _ := strings.Cut(line, " ")
		command = strings.ToUpper(command)
		args = strings.Join(strings.Fields(args), " ")
		if command == "FROM" {
			fields := strings.Fields(args)
			name := ""
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				name = fields[2]
			}
			stages = append(stages, nil)
			names = append(names, name)
			continue
		}
		if len(stages) == 0 {
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], instruction{command, args})
	}
	if len(stages) == 0 {
		t.Fatal("Dockerfile has no FROM")
	}
	for i, name := range names {
		if name == "base" {
			base = stages[i]
		}
	}
	return stages[len(stages)-1], base
}

func findArgs(stage []instruction, command string) []string {
	var found []string
	for _, in := range stage {
		if in.command == command {
			found = append(found, in.args)
		}
	}
	return found
}

func TestDockerfileMatchesImage(t *testing.T) {
	final, base := readDockerfile(t)

	wantCopy := "--from=build /src/bin/nri-cni " + BinaryPath
	copies := findArgs(final, "COPY")
	if !contains(copies, wantCopy) {
		t.Errorf("final stage COPY instructions = %q, want one %q", copies, wantCopy)
	}
	if !contains(copies, "--from=base /rootfs/ /") {
		t.Errorf("final stage COPY instructions = %q, want the base tree copied to /", copies)
	}

	entrypoint := findArgs(final, "ENTRYPOINT")
	wantEntrypoint, _ := json.Marshal([]string{BinaryPath})
	if len(entrypoint) != 1 || entrypoint[0] != string(wantEntrypoint) {
		t.Errorf("ENTRYPOINT = %q, want %s", entrypoint, wantEntrypoint)
	}
	if env := findArgs(final, "ENV"); len(env) != 1 || env[0] != PathEnv {
		t.Errorf("ENV = %q, want %q", env, PathEnv)
	}
	if user := findArgs(final, "USER"); len(user) != 1 || user[0] != "0:0" {
		t.Errorf("USER = %q, want 0:0", user)
	}

	labels := map[string]string{}
	pair := regexp.MustCompile(`(\S+)="([^"]*)"`)
	for _, args := range findArgs(final, "LABEL") {
		for _, m := range pair.FindAllStringSubmatch(args, -1) {
			labels[m[1]] = m[2]
		}
	}
	want := Labels("${VERSION}", DefaultSource)
	for key, value := range want {
		if labels[key] != value {
			t.Errorf("Dockerfile label %s = %q, want %q", key, labels[key], value)
		}
	}
	if len(labels) != len(want) {
		t.Errorf("Dockerfile labels = %v, want exactly the keys of %v", labels, want)
	}

	runs := strings.Join(findArgs(base, "RUN"), "\n")
	if !strings.Contains(runs, "/hack/debian-base.sh /rootfs") {
		t.Errorf("base stage RUN instructions = %q, want one that runs debian-base.sh", runs)
	}
}

func contains(list []string, s string) bool {
	for _, item := range list {
		if item == s {
			return true
		}
	}
	return false
}

// buildStatic builds a small static program to stand in for nri-cni.
func buildStatic(t *testing.T, dir string) string {
	t.Helper()
	source := filepath.Join(dir, "main.go")
	writeFile(t, source, "package main\n\nfunc main() {}\n", 0o644)
	binary := filepath.Join(dir, "nri-cni")
	command := exec.Command("go", "build", "-o", binary, source)
	command.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := command.CombinedOutput(); err != nil {
		t.Fatalf("failed to build static test binary: %v: %s", err, out)
	}
	return binary
}

func writeFile(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// fakeRootfs writes a tree with the files that NewImage requires.
func fakeRootfs(t *testing.T, dir string) string {
	t.Helper()
	rootfs := filepath.Join(dir, "rootfs")
	writeFile(t, filepath.Join(rootfs, "usr/sbin/xtables-nft-multi"), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(rootfs, "usr/sbin/nft"), "#!/bin/sh\n", 0o755)
	for _, link := range []string{"iptables", "ip6tables"} {
		if err := os.Symlink("xtables-nft-multi", filepath.Join(rootfs, "usr/sbin", link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/sbin", filepath.Join(rootfs, "sbin")); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// readImage loads the only image of an archive written by WriteArchiveFile.
func readImage(t *testing.T, archive string) (v1.Image, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	command := exec.Command("tar", "-xf", archive, "-C", dir)
	if out, err := command.CombinedOutput(); err != nil {
		t.Fatalf("failed to unpack %s: %v: %s", archive, err, out)
	}
	index, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("failed to read image layout: %v", err)
	}
	manifest, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest.Manifests) != 1 {
		t.Fatalf("index lists %d images, want 1", len(manifest.Manifests))
	}
	img, err := index.Image(manifest.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	return img, manifest.Manifests[0].Annotations
}

// layerFiles lists the entries of a layer by path, with their headers.
func layerFiles(t *testing.T, layer v1.Layer) map[string]*tar.Header {
	t.Helper()
	reader, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	files := map[string]*tar.Header{}
	tr := tar.NewReader(reader)
	for {
		header, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		files["/"+strings.TrimSuffix(header.Name, "/")] = header
	}
}

func TestNewImageArchive(t *testing.T) {
	dir := t.TempDir()
	opts := Options{
		Binary:  buildStatic(t, dir),
		Rootfs:  fakeRootfs(t, dir),
		Name:    DefaultName + ":v9.8.7",
		Version: "v9.8.7",
		Source:  DefaultSource,
	}
	img, err := NewImage(opts)
	if err != nil {
		t.Fatalf("NewImage: %v", err)
	}
	archive := filepath.Join(dir, "image.tar")
	if err := ociimage.WriteArchiveFile(archive, img); err != nil {
		t.Fatalf("WriteArchiveFile: %v", err)
	}

	built, annotations := readImage(t, archive)
	if got := annotations[ociimage.AnnotationImageName]; got != opts.Name {
		t.Errorf("image name annotation = %q, want %q", got, opts.Name)
	}
	config, err := built.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := config.Config.Entrypoint; len(got) != 1 || got[0] != BinaryPath {
		t.Errorf("entrypoint = %q, want [%s]", got, BinaryPath)
	}
	if got := config.Config.Env; len(got) != 1 || got[0] != PathEnv {
		t.Errorf("env = %q, want [%s]", got, PathEnv)
	}
	if config.Config.User != "0:0" {
		t.Errorf("user = %q, want 0:0", config.Config.User)
	}
	if got := config.Config.Labels["org.opencontainers.image.version"]; got != "v9.8.7" {
		t.Errorf("version label = %q, want v9.8.7", got)
	}
	if got := config.Config.Labels["org.opencontainers.image.source"]; got != DefaultSource {
		t.Errorf("source label = %q, want %q", got, DefaultSource)
	}

	layers, err := built.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 2 {
		t.Fatalf("image has %d layers, want the base tree and the binary", len(layers))
	}
	baseFiles := layerFiles(t, layers[0])
	if header := baseFiles["/usr/sbin/iptables"]; header == nil || header.Linkname != "xtables-nft-multi" {
		t.Errorf("base layer /usr/sbin/iptables = %+v, want a link to xtables-nft-multi", header)
	}
	if header := baseFiles["/sbin"]; header == nil || header.Typeflag != tar.TypeSymlink {
		t.Errorf("base layer /sbin = %+v, want a symlink", header)
	}
	binaryFiles := layerFiles(t, layers[1])
	header := binaryFiles[BinaryPath]
	if header == nil {
		t.Fatalf("binary layer has no %s: %v", BinaryPath, binaryFiles)
	}
	if header.Mode != 0o755 || header.Uid != 0 || header.Gid != 0 {
		t.Errorf("binary %s has mode %o owner %d:%d, want 755 and 0:0", BinaryPath, header.Mode, header.Uid, header.Gid)
	}
}

func TestNewImageRejectsInvalidInputs(t *testing.T) {
	dir := t.TempDir()
	static := buildStatic(t, dir)
	rootfs := fakeRootfs(t, dir)

	dynamic, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls on PATH to use as a dynamically linked binary")
	}
	cases := []struct {
		name    string
		opts    Options
		message string
	}{
		{"dynamic-binary", Options{Binary: dynamic, Rootfs: rootfs}, "dynamically linked"},
		{"missing-binary", Options{Binary: filepath.Join(dir, "absent"), Rootfs: rootfs}, "make build"},
		{"empty-rootfs", Options{Binary: static, Rootfs: t.TempDir()}, "debian-base.sh"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Name = DefaultName + ":test"
			_, err := NewImage(tc.opts)
			if err == nil {
				t.Fatal("NewImage succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error = %q, want it to mention %q", err, tc.message)
			}
		})
	}
}
