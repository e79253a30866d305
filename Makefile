# Build, test and demo targets for nri-cni. Run `make help` for the list.

GO        ?= go
BIN_DIR   := bin
OUTPUT    := _output
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/nri-cni.
	$(Q)CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_DIR)/nri-cni ./cmd/nri-cni

.PHONY: test
test: unit e2e ## Run the unit tests and the end-to-end suite (the suite needs root).

.PHONY: unit
unit: ## Run the unit tests.
	$(Q)$(GO) test -count=1 $$($(GO) list ./... | grep -v '/e2e')

.PHONY: clean
clean: ## Remove build output.
	$(Q)rm -rf $(BIN_DIR) $(OUTPUT)

# Pre-installed layout and container image. PREFIX is the root folder that
# `make install` writes below, such as a node image being built.
PREFIX       ?=
NRI_INDEX    ?= 10
IMAGE        ?= ghcr.io/nri-cni/nri-cni
IMAGE_TAG    ?= $(VERSION)
IMAGE_ARCHIVE ?= $(OUTPUT)/nri-cni-image.tar
PLUGIN_FILE  := $(PREFIX)/opt/nri/plugins/$(NRI_INDEX)-nri-cni
PLUGIN_CONF  := $(PREFIX)/etc/nri/conf.d/$(NRI_INDEX)-nri-cni.conf
SNIPPET_FILE := $(PREFIX)/etc/containerd/conf.d/nri-cni.toml

.PHONY: install
install: build ## Install the pre-installed plugin, its config and the containerd snippet below PREFIX.
	$(Q)install -D -m 0755 $(BIN_DIR)/nri-cni $(PLUGIN_FILE)
	$(Q)if [ -e $(PLUGIN_CONF) ]; then \
		echo "install: kept existing $(PLUGIN_CONF); the shipped one is deploy/nri-cni.yaml"; \
	else \
		install -D -m 0644 deploy/nri-cni.yaml $(PLUGIN_CONF); \
	fi
	$(Q)install -D -m 0644 deploy/containerd/nri-cni.toml $(SNIPPET_FILE)
	$(Q)install -d -m 0755 $(PREFIX)/etc/nri-cni/net.d
	$(Q)echo "install: restart containerd to start $(PLUGIN_FILE)"

.PHONY: uninstall
uninstall: ## Remove what install wrote below PREFIX; networks, state and leases stay.
	$(Q)rm -f $(PLUGIN_FILE) $(PLUGIN_CONF) $(SNIPPET_FILE)
	$(Q)rmdir $(PREFIX)/etc/nri-cni/net.d $(PREFIX)/etc/nri-cni 2>/dev/null || true
	$(Q)echo "uninstall: restart containerd to stop the running plugin"

.PHONY: image
image: build ## Write the container image as an OCI archive to IMAGE_ARCHIVE, without Docker.
	$(Q)hack/image/debian-base.sh $(OUTPUT)/image/rootfs
	$(Q)$(GO) run ./hack/image -binary $(BIN_DIR)/nri-cni -rootfs $(OUTPUT)/image/rootfs \
		-name $(IMAGE):$(IMAGE_TAG) -version $(VERSION) -output $(IMAGE_ARCHIVE)

# End-to-end environment: a private containerd with its CRI, runc, crictl and
# the CNI reference plugins, at the versions that tools/go.mod pins.
E2E_FLAGS ?=
ifeq ($(V),1)
E2E_FLAGS += -v
endif

.PHONY: deps
deps: ## Install the Debian packages that tools, images and e2e need (as root).
	$(Q)V=$(V) hack/install-deps.sh

.PHONY: tools
tools: deps ## Build containerd, runc, crictl and the CNI plugins into _output/tools.
	$(Q)V=$(V) hack/build-tools.sh

.PHONY: images
images: deps ## Write the e2e pause and tools images to _output/images.
	$(Q)$(GO) run ./e2e/cmd/mkimages -output $(OUTPUT)/images

.PHONY: e2e
e2e: build tools images image ## Run the end-to-end tests against a private containerd (as root).
	$(Q)$(GO) test -count=1 -timeout 20m $(E2E_FLAGS) ./e2e/...

.PHONY: demo
demo: build tools images ## Run a pod with eth0 from containerd and net1 from nri-cni, then tear it down (as root).
	$(Q)$(GO) run ./e2e/cmd/demo

# COUNT is the number of pods that `make soak` creates and removes.
COUNT ?= 500

.PHONY: soak
soak: build tools images ## Create and remove COUNT pods (500) with random nri-cni kills and a containerd restart; print leaks (as root).
	$(Q)$(GO) run ./e2e/cmd/soak -count $(COUNT)

# BENCH_FLAGS are passed to bench/cmd/bench, such as -rounds 3 or -pods 20.
BENCH_FLAGS ?=

.PHONY: bench
bench: build tools images ## Benchmark pod start and teardown against containerd's built-in CNI (as root, about 10 minutes); writes results/ and docs/benchmarks.md.
	$(Q)$(GO) run ./bench/cmd/bench -command "make bench$(if $(strip $(BENCH_FLAGS)), BENCH_FLAGS='$(BENCH_FLAGS)')" $(BENCH_FLAGS)
