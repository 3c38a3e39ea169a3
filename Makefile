# The two commands of the README:
#   make repro   set up the environment, then `dvc repro` the pipeline of the active profile
#   make test    set up the environment, run the unit tests, run the (default) pipeline, run nbmake on
#                every notebook
# Everything is installed from pyproject.toml into .venv; nothing needs to be installed by hand.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(abspath $(VENV))/bin
STAMP  := $(VENV)/.installed-stamp
export PATH := $(BIN):$(PATH)
export PYTHONHASHSEED := 0
# a Python process killed by a signal (e.g. a native crash: SIGSEGV, SIGABRT) prints every thread's
# traceback first, so a crash in a stage or a test says where it happened
export PYTHONFAULTHANDLER := 1

.PHONY: install repro test test-paper-scale unit pipeline notebooks clean-outputs system-deps natten

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

# The classical-codec anchors' tools (lic.anchors, docs/anchors.md). Installed with apt-get when
# running as root and one is missing; otherwise (or if apt-get fails) a warning, and the anchors
# whose binary is missing are skipped. BPG and VTM have no Debian package (see docs/anchors.md).
# slurm-wlm and munge: the single-node SLURM cluster that tests/launch starts to test `lic launch --executor
# slurm` (those tests fail, saying why, when the daemons are missing).
SYSTEM_BINARIES := ffmpeg cwebp dwebp avifenc avifdec cjxl djxl slurmctld slurmd sbatch munged
SYSTEM_PACKAGES := ffmpeg webp libavif-bin libjxl-tools slurm-wlm munge

system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: missing$$missing; apt-get install $(SYSTEM_PACKAGES)"; \
	  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); then exit 0; fi; \
	  echo "WARNING: system-deps: apt-get failed; the anchors needing$$missing will be skipped (the SLURM tests of tests/launch fail without slurm-wlm and munge)" >&2; \
	else \
	  echo "WARNING: system-deps: missing$$missing and not root with apt-get; the anchors needing them will be skipped and the SLURM tests fail (install: apt-get install $(SYSTEM_PACKAGES))" >&2; \
	fi

# `lic warm -- CMD` (lic.warm): CMD's ~140 `lic` stage commands fork from one process that has imported
# torch and CompressAI once, instead of each spending ~12 s on imports and teardown (same outputs).
repro: install system-deps
	$(BIN)/lic warm -- $(BIN)/dvc repro

# unit tests and the pipeline each use one CPU thread (tests/conftest.py, train.<profile>.threads), so `make test`
# runs them side by side on two cores, then validates every notebook against the pipeline's results.
unit: install system-deps
	$(BIN)/python -m pytest tests

pipeline: install system-deps
	$(BIN)/lic warm -- $(BIN)/dvc repro

notebooks: pipeline
	$(BIN)/python -m pytest --nbmake notebooks

test: install system-deps
	$(MAKE) --no-print-directory -j2 unit pipeline
	$(BIN)/python -m pytest --nbmake notebooks

# The paper profile, wired (issue 20): one paper-profile training stage per paper (HPCM-Base, TinyLIC v3, TCM,
# CGOO) runs 2 steps through `lic launch --executor local` at the paper's kwargs, batch 8 and 256² patches, its
# data downloaded from a mirror on 127.0.0.1 (tests/launch/test_launch_paper.py). Paper-size models on the
# CPU: about 10 minutes and 10 GB on 2 cores, so not part of `make test`; `.ci/run` runs it after `make test`.
test-paper-scale: install
	$(BIN)/python -m pytest -m paper_scale tests/launch/test_launch_paper.py

# Optional: natten 0.17.5's neighborhood-attention kernels for TinyLIC (lic.layers.neighborhood_attention,
# docs/tinylic.md). Not part of `install`: it compiles for minutes (about 8 on 2 cores, CPU kernels only;
# far longer with CUDA kernels). natten 0.17.5 predates torch 2.14, whose headers need C++20, so its sdist is
# unpacked and built with CXX_STD 20. CUDA kernels: `make natten NATTEN_CUDA_ARCH=9.0` (your GPU's compute
# capability) on a machine with nvcc. Check it with `python -m lic.bench_natten` (on a GPU: --device cuda).
NATTEN_VERSION ?= 0.17.5
NATTEN_BUILD   ?= build/natten
natten: install
	rm -rf $(NATTEN_BUILD) && mkdir -p $(NATTEN_BUILD)
	$(BIN)/python -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
	    -d $(NATTEN_BUILD) natten==$(NATTEN_VERSION)
	tar xzf $(NATTEN_BUILD)/natten-$(NATTEN_VERSION).tar.gz -C $(NATTEN_BUILD)
	sed -i 's/set(CXX_STD "17"/set(CXX_STD "20"/; s/-std=c++17/-std=c++20/' \
	    $(NATTEN_BUILD)/natten-$(NATTEN_VERSION)/csrc/CMakeLists.txt
	grep -q 'set(CXX_STD "20"' $(NATTEN_BUILD)/natten-$(NATTEN_VERSION)/csrc/CMakeLists.txt
	NATTEN_N_WORKERS=$${NATTEN_N_WORKERS:-$$(nproc)} $(BIN)/python -m pip install --no-deps --no-build-isolation \
	    $(NATTEN_BUILD)/natten-$(NATTEN_VERSION)
	$(BIN)/python -c "from lic.layers.neighborhood_attention import natten_status; print(natten_status())"
