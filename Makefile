# Thin wrapper over Meson. The two commands a fresh Debian 12 machine needs:
#   make demo   install missing packages, build, run the main job on the default experiment
#   make test   install missing packages, build, run the whole test suite
BUILD ?= build
DEMO_EXPERIMENT ?= configs/fashion-resnet.yaml
CALIPROX = $(BUILD)/src/cli/caliprox
# CI builds with warnings as errors (DESIGN style rule 11).
MESON_FLAGS ?= $(if $(CI),-Dwerror=true,)

.PHONY: all deps build demo test test-aarch64 bench clean

all: build

deps:
	bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	$(CALIPROX) check $(DEMO_EXPERIMENT)
	$(CALIPROX) tune $(DEMO_EXPERIMENT)

test: build
	bash scripts/run-tests.sh $(BUILD)

# Cross-builds for aarch64 (an arm64 sysroot from Debian's packages) into
# build-aarch64 and runs the unit and conformance tests under qemu-aarch64.
test-aarch64:
	MESON_FLAGS="$(MESON_FLAGS)" bash scripts/test-aarch64.sh build-aarch64

bench: build
	bash scripts/install-deps.sh --bench
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)
