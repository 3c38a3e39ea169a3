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

.PHONY: install repro test unit pipeline notebooks clean-outputs system-deps

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
SYSTEM_BINARIES := ffmpeg cwebp dwebp avifenc avifdec cjxl djxl
SYSTEM_PACKAGES := ffmpeg webp libavif-bin libjxl-tools

system-deps:
	@missing=""; for b in $(SYSTEM_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: missing$$missing; apt-get install $(SYSTEM_PACKAGES)"; \
	  if apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES); then exit 0; fi; \
	  echo "WARNING: system-deps: apt-get failed; the anchors needing$$missing will be skipped" >&2; \
	else \
	  echo "WARNING: system-deps: missing$$missing and not root with apt-get; the anchors needing them will be skipped (install: apt-get install $(SYSTEM_PACKAGES))" >&2; \
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
