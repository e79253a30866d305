package ociimage

import (
	"archive/tar"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// WriteArchive writes images as one OCI image layout archive to w. Each image
// is one entry of the layout's index.json, annotated with its name.
func WriteArchive(w io.Writer, images ...Image) error {
	if len(images) == 0 {
		return fmt.Errorf("failed to write image archive: no images given")
	}
	seen := map[string]bool{}
	for _, img := range images {
		if seen[img.Name] {
			return fmt.Errorf("failed to write image archive: image %q is listed twice", img.Name)
		}
		seen[img.Name] = true
	}

	layoutDir, err := os.MkdirTemp("", "ociimage-")
	if err != nil {
		return fmt.Errorf("failed to create image layout folder: %w", err)
	}
	defer os.RemoveAll(layoutDir)

	if err := writeLayout(layoutDir, images); err != nil {
		return err
	}
	return tarFolder(w, layoutDir)
}

// WriteArchiveFile writes images as one OCI image layout archive to the file
// at path, creating its folder. The file is replaced only after the archive is
// complete, so a failed write leaves an older archive in place.
func WriteArchiveFile(path string, images ...Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("failed to create folder of image archive %q: %w", path, err)
	}
	file, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("failed to create image archive %q: %w", path, err)
	}
	defer os.Remove(file.Name())

	if err := WriteArchive(file, images...); err != nil {
		file.Close()
		return fmt.Errorf("failed to write image archive %q: %w", path, err)
	}
	if err := file.Chmod(0o644); err != nil {
		file.Close()
		return fmt.Errorf("failed to set mode of image archive %q: %w", path, err)
	}
	if err := file.Close(); err != nil {
		return fmt.Errorf("failed to write image archive %q: %w", path, err)
	}
	if err := os.Rename(file.Name(), path); err != nil {
		return fmt.Errorf("failed to move image archive into place at %q: %w", path, err)
	}
	return nil
}

func writeLayout(layoutDir string, images []Image) error {
	// empty.Index is an OCI image index, the type of index.json that the OCI
	// image layout specification requires.
	layoutPath, err := layout.Write(layoutDir, empty.Index)
	if err != nil {
		return fmt.Errorf("failed to start image layout: %w", err)
	}

	for _, img := range images {
		built, err := img.Build()
		if err != nil {
			return err
		}
		options := []layout.Option{
			layout.WithAnnotations(map[string]string{AnnotationImageName: img.Name}),
			layout.WithPlatform(img.platform()),
		}
		if err := layoutPath.AppendImage(built, options...); err != nil {
			return fmt.Errorf("failed to write image %q into layout: %w", img.Name, err)
		}
	}
	return nil
}

// tarFolder writes the files below folder as a tar with sorted names, no
// owners and zero timestamps, so the archive depends only on the layout.
func tarFolder(w io.Writer, folder string) error {
	writer := tar.NewWriter(w)
	walk := func(hostPath string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("failed to read image layout: %w", err)
		}
		relative, err := filepath.Rel(folder, hostPath)
		if err != nil {
			return fmt.Errorf("failed to resolve %q in image layout: %w", hostPath, err)
		}
		if relative == "." {
			return nil
		}

		header := &tar.Header{Name: filepath.ToSlash(relative), Mode: 0o644}
		if d.IsDir() {
			header.Typeflag = tar.TypeDir
			header.Name += "/"
			header.Mode = 0o755
			return writeHeader(writer, header)
		}

		file, err := os.Open(hostPath)
		if err != nil {
			return fmt.Errorf("failed to open %q of image layout: %w", relative, err)
		}
		defer file.Close()
		info, err := file.Stat()
		if err != nil {
			return fmt.Errorf("failed to read %q of image layout: %w", relative, err)
		}
		header.Typeflag = tar.TypeReg
		header.Size = info.Size()
		if err := writeHeader(writer, header); err != nil {
			return err
		}
		if _, err := io.Copy(writer, file); err != nil {
			return fmt.Errorf("failed to copy %q of image layout into archive: %w", relative, err)
		}
		return nil
	}
	if err := filepath.WalkDir(folder, walk); err != nil {
		return err
	}
	if err := writer.Close(); err != nil {
		return fmt.Errorf("failed to finish image archive: %w", err)
	}
	return nil
}

func writeHeader(writer *tar.Writer, header *tar.Header) error {
	if err := writer.WriteHeader(header); err != nil {
		return fmt.Errorf("failed to write header of %q into image archive: %w", header.Name, err)
	}
	return nil
}
