// Package ociimage builds container images from local files and writes them as
// OCI image layout archives, so a node can run them without a registry.
//
// An archive written by WriteArchive is a tar of an OCI image layout
// (oci-layout, index.json and blobs/sha256/...). Each image in its index
// carries the io.containerd.image.name annotation, which `ctr images import`
// uses as the image's name:
//
//	img := ociimage.Image{
//		Name:   "localhost/example/pause:dev",
//		Layers: []ociimage.Layer{{Files: []ociimage.File{
//			{Path: "/pause", Source: "_output/pause", Mode: 0o755},
//		}}},
//		Config: ociimage.Config{Entrypoint: []string{"/pause"}},
//	}
//	err := ociimage.WriteArchiveFile("_output/images/pause.tar", img)
//
// Images are reproducible: every file is owned by root, every timestamp is
// Image.Created (the Unix epoch by default), and entries are sorted by path,
// so the same inputs give the same digests.
package ociimage

import (
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// AnnotationImageName is the index annotation that containerd reads as the
// name of an imported image.
const AnnotationImageName = "io.containerd.image.name"

// Image is the description of one single-platform image.
type Image struct {
	// Name is the full reference that containerd stores the image under, with
	// registry and tag, e.g. "localhost/nri-cni/pause:e2e". The CRI looks up
	// images by such normalized names, so a short name like "pause:e2e" is
	// rejected.
	Name string
	// OS and Architecture are the image's platform. Empty values mean
	// "linux" and the architecture of the running program.
	OS           string
	Architecture string
	// Layers are applied in order, the first is the bottom layer.
	Layers []Layer
	// Config is the runtime configuration of the image.
	Config Config
	// Created is the creation time written into the config and every layer
	// entry. Zero means the Unix epoch.
	Created time.Time
}

// Config is the part of the OCI image configuration that a container runtime
// uses to start the image.
type Config struct {
	Entrypoint []string
	Cmd        []string
	// Env entries have the form KEY=value.
	Env        []string
	User       string
	WorkingDir string
	Labels     map[string]string
}

// Build validates img and returns it as a go-containerregistry image with an
// OCI manifest and an OCI config.
func (img Image) Build() (v1.Image, error) {
	if err := validateName(img.Name); err != nil {
		return nil, err
	}

	created := img.created()
	configFile := &v1.ConfigFile{
		Created:      v1.Time{Time: created},
		OS:           img.OS,
		Architecture: img.Architecture,
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			Entrypoint: img.Config.Entrypoint,
			Cmd:        img.Config.Cmd,
			Env:        img.Config.Env,
			User:       img.Config.User,
			WorkingDir: img.Config.WorkingDir,
			Labels:     img.Config.Labels,
		},
	}
	if configFile.OS == "" {
		configFile.OS = "linux"
	}
	if configFile.Architecture == "" {
		configFile.Architecture = runtime.GOARCH
	}

	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err := mutate.ConfigFile(base, configFile)
	if err != nil {
		return nil, fmt.Errorf("failed to set config of image %q: %w", img.Name, err)
	}

	additions := make([]mutate.Addendum, 0, len(img.Layers))
	for i, layer := range img.Layers {
		built, err := layer.build(created)
		if err != nil {
			return nil, fmt.Errorf("failed to build layer %d of image %q: %w", i, img.Name, err)
		}
		additions = append(additions, mutate.Addendum{
			Layer:     built,
			MediaType: types.OCILayer,
			History: v1.History{
				Created:   v1.Time{Time: created},
				CreatedBy: "ociimage",
			},
		})
	}

	built, err := mutate.Append(base, additions...)
	if err != nil {
		return nil, fmt.Errorf("failed to add layers to image %q: %w", img.Name, err)
	}
	return built, nil
}

func (img Image) platform() v1.Platform {
	platform := v1.Platform{OS: img.OS, Architecture: img.Architecture}
	if platform.OS == "" {
		platform.OS = "linux"
	}
	if platform.Architecture == "" {
		platform.Architecture = runtime.GOARCH
	}
	return platform
}

func (img Image) created() time.Time {
	if img.Created.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return img.Created.UTC()
}

// validateName checks that name is a tagged reference that names its
// registry, which is the form containerd's CRI stores and looks up.
func validateName(imageName string) error {
	if imageName == "" {
		return fmt.Errorf("missing image name: set Image.Name to a full reference such as localhost/example/app:v1")
	}

	// A first path component is a registry only when it contains a dot or a
	// port or is localhost. Without one the CRI looks the image up under
	// docker.io, and a single-component docker.io name under docker.io/library.
	first, rest, found := strings.Cut(imageName, "/")
	if !found || (!strings.ContainsAny(first, ".:") && first != "localhost") {
		normalized := "docker.io/" + imageName
		if !found {
			normalized = "docker.io/library/" + imageName
		}
		return fmt.Errorf("invalid image name %q: the CRI looks it up as %q, so use that name or one with a registry such as localhost/%s",
			imageName, normalized, imageName)
	}
	if first == "docker.io" && !strings.Contains(rest, "/") {
		return fmt.Errorf("invalid image name %q: the CRI looks it up as %q, so use that name",
			imageName, "docker.io/library/"+rest)
	}

	if _, err := name.NewTag(imageName, name.StrictValidation); err != nil {
		return fmt.Errorf("invalid image name %q: use a full reference with a tag such as localhost/example/app:v1: %w", imageName, err)
	}
	return nil
}
