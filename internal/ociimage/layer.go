package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Default permission bits of entries whose File.Mode is zero. A file copied
// from the host keeps the permission bits of its source instead.
const (
	DefaultFileMode fs.FileMode = 0o644
	DefaultDirMode  fs.FileMode = 0o755
)

// Layer is one filesystem layer: the union of its Files and Trees. Missing
// parent directories are added with DefaultDirMode. Two entries with the same
// path are an error, except that an explicit directory replaces an added
// parent. The layer is built in memory, so it suits binaries and small trees.
type Layer struct {
	Files []File
	Trees []Tree
}

// File is one entry of a layer. At most one of Source, Content, Linkname and
// Dir may be set, and it sets the kind of entry. With none set, the entry is
// an empty regular file.
type File struct {
	// Path is the path inside the image, such as "/bin/busybox". A relative
	// path is taken from the image root.
	Path string
	// Source is a host file whose content is copied. Symlinks in Source are
	// followed.
	Source string
	// Content is the content of a regular file.
	Content []byte
	// Linkname makes the entry a symbolic link to this target.
	Linkname string
	// Dir makes the entry a directory.
	Dir bool
	// Mode holds the permission bits, plus fs.ModeSetuid, fs.ModeSetgid and
	// fs.ModeSticky. Zero means the source file's bits for Source,
	// DefaultDirMode for Dir and DefaultFileMode for Content. Symbolic links
	// always get 0777.
	Mode fs.FileMode
}

// Tree copies the host directory Source, with everything below it, to Target
// inside the image. Regular files keep their permission bits, symbolic links
// are copied as links, and other file types are an error.
type Tree struct {
	Source string
	Target string
}

// entry is a File resolved to what the tar header needs.
type entry struct {
	name     string // cleaned path without a leading slash
	typeflag byte
	mode     fs.FileMode
	source   string
	content  []byte
	linkname string
	implicit bool // a parent directory that no File or Tree named
}

func (l Layer) build(created time.Time) (v1.Layer, error) {
	content, err := l.tar(created)
	if err != nil {
		return nil, err
	}
	opener := func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	}
	layer, err := tarball.LayerFromOpener(opener, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("failed to compress layer: %w", err)
	}
	return layer, nil
}

// tar returns the uncompressed layer tar.
func (l Layer) tar(created time.Time) ([]byte, error) {
	entries, err := l.entries()
	if err != nil {
		return nil, err
	}

	var buffer bytes.Buffer
	writer := tar.NewWriter(&buffer)
	for _, e := range entries {
		if err := writeEntry(writer, e, created); err != nil {
			return nil, err
		}
	}
	if err := writer.Close(); err != nil {
		return nil, fmt.Errorf("failed to finish layer tar: %w", err)
	}
	return buffer.Bytes(), nil
}

// entries resolves Files and Trees, adds missing parents and sorts by path,
// which puts every directory before its children.
func (l Layer) entries() ([]entry, error) {
	byName := map[string]entry{}
	add := func(e entry) error {
		if existing, ok := byName[e.name]; ok {
			switch {
			case existing.implicit && e.typeflag == tar.TypeDir:
			case e.implicit && existing.typeflag == tar.TypeDir:
				return nil
			default:
				return fmt.Errorf("duplicate path %q in layer: remove one of its entries", "/"+e.name)
			}
		}
		byName[e.name] = e
		return nil
	}

	for _, file := range l.Files {
		e, err := resolveFile(file)
		if err != nil {
			return nil, err
		}
		if err := add(e); err != nil {
			return nil, err
		}
	}
	for _, tree := range l.Trees {
		treeEntries, err := resolveTree(tree)
		if err != nil {
			return nil, err
		}
		for _, e := range treeEntries {
			if err := add(e); err != nil {
				return nil, err
			}
		}
	}

	for entryName, e := range byName {
		if e.implicit {
			continue
		}
		for parent := path.Dir(entryName); parent != "."; parent = path.Dir(parent) {
			if existing, ok := byName[parent]; ok {
				if existing.typeflag != tar.TypeDir {
					return nil, fmt.Errorf("path %q in layer is below %q, which is not a directory", "/"+entryName, "/"+parent)
				}
				continue
			}
			byName[parent] = entry{name: parent, typeflag: tar.TypeDir, mode: DefaultDirMode, implicit: true}
		}
	}

	entries := make([]entry, 0, len(byName))
	for _, e := range byName {
		entries = append(entries, e)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return entries, nil
}

func resolveFile(file File) (entry, error) {
	entryName, err := cleanPath(file.Path)
	if err != nil {
		return entry{}, err
	}

	kinds := 0
	for _, set := range []bool{file.Source != "", file.Content != nil, file.Linkname != "", file.Dir} {
		if set {
			kinds++
		}
	}
	if kinds > 1 {
		return entry{}, fmt.Errorf("invalid entry %q: set only one of Source, Content, Linkname and Dir", file.Path)
	}

	e := entry{name: entryName, mode: file.Mode}
	switch {
	case file.Source != "":
		info, err := os.Stat(file.Source)
		if err != nil {
			return entry{}, fmt.Errorf("failed to read source of %q: %w", file.Path, err)
		}
		if !info.Mode().IsRegular() {
			return entry{}, fmt.Errorf("invalid source %q of %q: not a regular file", file.Source, file.Path)
		}
		e.typeflag = tar.TypeReg
		e.source = file.Source
		if e.mode == 0 {
			e.mode = info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		}
	case file.Linkname != "":
		e.typeflag = tar.TypeSymlink
		e.linkname = file.Linkname
		e.mode = fs.ModePerm
	case file.Dir:
		e.typeflag = tar.TypeDir
		if e.mode == 0 {
			e.mode = DefaultDirMode
		}
	default:
		e.typeflag = tar.TypeReg
		e.content = file.Content
		if e.mode == 0 {
			e.mode = DefaultFileMode
		}
	}
	return e, nil
}

func resolveTree(tree Tree) ([]entry, error) {
	// An empty Target or "/" copies the tree to the image root.
	target := ""
	if tree.Target != "" && tree.Target != "/" {
		cleaned, err := cleanPath(tree.Target)
		if err != nil {
			return nil, err
		}
		target = cleaned
	}
	if tree.Source == "" {
		return nil, fmt.Errorf("missing source of tree %q: set Tree.Source to a host directory", tree.Target)
	}

	var entries []entry
	walk := func(hostPath string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("failed to read tree %q: %w", tree.Source, err)
		}
		relative, err := filepath.Rel(tree.Source, hostPath)
		if err != nil {
			return fmt.Errorf("failed to resolve %q in tree %q: %w", hostPath, tree.Source, err)
		}
		entryName := path.Join(target, filepath.ToSlash(relative))
		if entryName == "." {
			// The tree's root maps to the image root, which a layer does not list.
			return nil
		}

		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("failed to read %q in tree %q: %w", hostPath, tree.Source, err)
		}
		e := entry{name: entryName, mode: info.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		switch {
		case info.IsDir():
			e.typeflag = tar.TypeDir
		case info.Mode().IsRegular():
			e.typeflag = tar.TypeReg
			e.source = hostPath
		case info.Mode()&fs.ModeSymlink != 0:
			linkname, err := os.Readlink(hostPath)
			if err != nil {
				return fmt.Errorf("failed to read symlink %q in tree %q: %w", hostPath, tree.Source, err)
			}
			e.typeflag = tar.TypeSymlink
			e.linkname = linkname
			e.mode = fs.ModePerm
		default:
			return fmt.Errorf("unsupported file %q in tree %q: only directories, regular files and symlinks can be copied", hostPath, tree.Source)
		}
		entries = append(entries, e)
		return nil
	}
	if err := filepath.WalkDir(tree.Source, walk); err != nil {
		return nil, err
	}
	return entries, nil
}

// cleanPath returns p relative to the image root, in the form tar names use.
func cleanPath(p string) (string, error) {
	if p == "" {
		return "", fmt.Errorf("missing path of layer entry")
	}
	for _, element := range strings.Split(p, "/") {
		if element == ".." {
			return "", fmt.Errorf("invalid path %q of layer entry: it must not contain ..", p)
		}
	}
	cleaned := strings.TrimPrefix(path.Clean("/"+p), "/")
	if cleaned == "" {
		return "", fmt.Errorf("invalid path %q of layer entry: the image root cannot be an entry", p)
	}
	return cleaned, nil
}

func writeEntry(writer *tar.Writer, e entry, created time.Time) error {
	header := &tar.Header{
		Typeflag: e.typeflag,
		Name:     e.name,
		Linkname: e.linkname,
		Mode:     tarMode(e.mode),
		ModTime:  created,
	}
	if e.typeflag == tar.TypeDir {
		header.Name += "/"
	}

	var content io.Reader
	switch {
	case e.source != "":
		source, err := os.Open(e.source)
		if err != nil {
			return fmt.Errorf("failed to open source of %q: %w", "/"+e.name, err)
		}
		defer source.Close()
		info, err := source.Stat()
		if err != nil {
			return fmt.Errorf("failed to read source of %q: %w", "/"+e.name, err)
		}
		header.Size = info.Size()
		content = source
	case e.typeflag == tar.TypeReg:
		header.Size = int64(len(e.content))
		content = bytes.NewReader(e.content)
	}

	if err := writer.WriteHeader(header); err != nil {
		return fmt.Errorf("failed to write tar header of %q: %w", "/"+e.name, err)
	}
	if content == nil {
		return nil
	}
	written, err := io.Copy(writer, content)
	if err != nil {
		return fmt.Errorf("failed to copy %q into layer: %w", "/"+e.name, err)
	}
	if written != header.Size {
		return fmt.Errorf("failed to copy %q into layer: source changed size from %d to %d bytes", "/"+e.name, header.Size, written)
	}
	return nil
}

// tarMode converts permission and special bits to the mode field of a tar
// header.
func tarMode(mode fs.FileMode) int64 {
	bits := int64(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		bits |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		bits |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		bits |= 0o1000
	}
	return bits
}
