# Thin wrapper over Meson. The two commands a fresh Debian 12 machine needs:
#   make demo   install missing packages, build, run the main job on the default experiment, draw its report
#   make test   install missing packages, build, run the whole test suite
BUILD ?= build
DEMO_EXPERIMENT ?= configs/fashion-resnet.yaml
CALIPROX = $(BUILD)/src/cli/caliprox
# CI builds with warnings as errors (DESIGN style rule 11).
MESON_FLAGS ?= $(if $(CI),-Dwerror=true,)

.PHONY: all deps build demo test test-aarch64 aarch64-static bench rowfollow clean

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
	$(CALIPROX) report runs/$(basename $(notdir $(DEMO_EXPERIMENT)))

test: build
	bash scripts/run-tests.sh $(BUILD)

# Cross-builds for aarch64 (an arm64 sysroot from Debian's packages) into
# build-aarch64 and runs the unit and conformance tests under qemu-aarch64.
test-aarch64:
	MESON_FLAGS="$(MESON_FLAGS)" bash scripts/test-aarch64.sh build-aarch64

# One statically linked aarch64 caliprox (reference backend) for Android's
# `adb shell`: build-aarch64-static/src/cli/caliprox. It is run under
# qemu-aarch64 *without* the sysroot, which only a static binary survives:
# --version, and check of the LeNet experiment (model, dataset, sessions).
SYSROOT = build-aarch64-sysroot
aarch64-static:
	bash scripts/aarch64-sysroot.sh $(SYSROOT)
	test -f build-aarch64-static/build.ninja || meson setup build-aarch64-static --cross-file $(SYSROOT)/cross.ini \
	    -Dstatic_binary=true -Dbackends=reference -Dopencl=disabled \
	    -Donnx_proto=$(CURDIR)/$(SYSROOT)/root/usr/include/onnx/onnx.proto
	ninja -C build-aarch64-static src/cli/caliprox
	qemu-aarch64 build-aarch64-static/src/cli/caliprox --version
	qemu-aarch64 build-aarch64-static/src/cli/caliprox check configs/fashion-lenet.yaml --backend reference

# The row-following example end to end (README "Example: a robot that follows crop rows").
# --query and eval --application exit 3 / 1 for outside / uncertain and invalid / uncertain, and
# tune --guide 3 when the application passes no finalist: answers, not failures, so make goes on ('-').
RF = examples/rowfollow
RF_RUN = runs/rowfollow
rowfollow: build
	test -f $(RF)/data/frames.npy || /usr/bin/python3 $(RF)/make_dataset.py --out $(RF)/data --n 2000 --seed 3
	$(CALIPROX) check $(RF)/rowfollow.yaml
	$(CALIPROX) calibrate $(RF)/rowfollow.yaml
	$(CALIPROX) tune $(RF)/rowfollow.yaml --network heading
	$(CALIPROX) inject $(RF)/rowfollow.yaml --network heading --pareto $(RF_RUN)/heading/pareto.json
	$(CALIPROX) inject $(RF)/rowfollow.yaml --network distance
	-$(CALIPROX) calibrate --query $(RF_RUN)/budgets.json \
	    --errors $(RF_RUN)/heading/errors.json --errors $(RF_RUN)/distance/errors.json
	/usr/bin/python3 -c 'import json, sys; c = json.load(open(sys.argv[1]))["configurations"][-1]; \
	    json.dump({"knobs": c["knobs"]}, open(sys.argv[2], "w"))' $(RF_RUN)/heading/pareto.json $(RF_RUN)/heading/top.json
	-$(CALIPROX) eval $(RF)/rowfollow.yaml --application --config heading=$(RF_RUN)/heading/top.json
	-$(CALIPROX) tune $(RF)/rowfollow.yaml --guide $(RF_RUN)/budgets.json

bench: build
	bash scripts/install-deps.sh --bench
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)
