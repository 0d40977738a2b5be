# gridmatch — build, test, demo.
#   make demo   set up the virtualenv, build the release extension, run `gridmatch demo`
#   make test   set up, then lint gate, cargo test, pytest
#   make dev    set up only (idempotent; quick when nothing changed)
#   make fuzz   fuzz the expression parser and the IDX reader (nightly + cargo-fuzz)

SHELL := /bin/bash
PYTHON ?= python3
PIP_CACHE := $(HOME)/.cache/pip
CACHE := $(HOME)/.cache/gridmatch

# The virtualenv lives in the cache, keyed by the requirements and the interpreter, and
# .venv in the clone links to it: a fresh clone with the same requirements reuses it
# (no 4.7 GB reinstall of torch), and every clone builds against the same interpreter
# path, so cargo's build scripts (pyo3, torch-sys) see the same environment and the
# compiled dependencies stay fresh. `make VENV=$$PWD/.venv-own ...` keeps a private one.
REQ_KEY := $(shell cat requirements-dev.txt 2>/dev/null | $(PYTHON) -c "import hashlib, sys; print(sys.implementation.cache_tag + '-' + hashlib.sha256(sys.stdin.buffer.read()).hexdigest()[:12])")
VENV ?= $(CACHE)/venv-$(REQ_KEY)
PY := $(VENV)/bin/python

# A persistent target dir: dependencies (torch-sys's C++ shim, pyo3, ...) compile once,
# for every clone. The crate itself recompiles in a fresh clone: stable cargo judges a
# workspace crate's freshness by its files' modification times, which a clone resets.
export CARGO_TARGET_DIR ?= $(CACHE)/target
# libtorch comes from the torch wheel in the virtualenv.
export LIBTORCH_USE_PYTORCH := 1
export LIBTORCH_BYPASS_VERSION_CHECK := 0
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

RUST_SRC := $(shell find src crates -type f \( -name '*.rs' -o -name '*.cpp' -o -name Cargo.toml \) 2>/dev/null) build.rs
PY_SRC := $(shell find python -type f -not -name '*.so' 2>/dev/null)

# Shared libraries needed by cargo's test binaries (torch's and Python's).
define rust_ld_path
$$($(PY) -c "import os, sysconfig, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib') + ':' + sysconfig.get_config_var('LIBDIR'))")
endef

.PHONY: dev demo test lint fmt cargo-test pytest bench fuzz wheel clean help

help:
	@echo "make demo | make test | make dev | make lint | make fmt | make bench"

# Derived from pyproject.toml (its build requirements, dependencies and extras test, bench).
requirements-dev.txt: pyproject.toml tools/requirements.py
	$(PYTHON) tools/requirements.py > $@.tmp && mv $@.tmp $@

# The virtualenv is keyed by the requirements' content (REQ_KEY), so it is complete once
# its stamp exists; .venv in the clone links to it.
$(VENV)/.deps: | requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --cache-dir $(PIP_CACHE) -q --upgrade pip
	$(PY) -m pip install --cache-dir $(PIP_CACHE) -q -r requirements-dev.txt
	@touch $@

# Point the (shared) virtualenv at this clone's python/ (what `maturin develop` writes)
# and link .venv here to it; cheap, so it runs every time.
SITE = $$($(PY) -c "import sysconfig; print(sysconfig.get_path('purelib'))")
define point_venv
	@echo "$(CURDIR)/python" > $(SITE)/gridmatch.pth
	@test -L .venv -o ! -e .venv && ln -sfn $(VENV) .venv || true
endef

# The release extension (make dev / demo / bench): maturin, thin LTO. Its stamp is in
# the clone, since the virtualenv is shared.
.built-release: $(VENV)/.deps Cargo.toml pyproject.toml $(RUST_SRC) $(PY_SRC)
	$(VENV)/bin/maturin develop --release -q
	@rm -f .built-ci
	@touch $@

dev: .built-release
	$(point_venv)
	$(PY) -c "import gridmatch; print('gridmatch', gridmatch.__version__, 'built')"

# A wheel for another machine (e.g. a CUDA host: benches/gpu.sh installs it there).
wheel: $(VENV)/.deps
	$(VENV)/bin/maturin build --release --auditwheel skip -o dist

demo: dev
	$(VENV)/bin/gridmatch demo

lint: $(VENV)/.deps
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	cargo clippy --release --no-default-features --lib -- -D warnings
	$(VENV)/bin/ruff check python tests benches tools notebooks/_make_notebooks.py
	$(VENV)/bin/ruff format --check python tests benches tools notebooks/_make_notebooks.py
	# type-check python/gridmatch against the extension's stub ([tool.mypy] in pyproject.toml)
	$(VENV)/bin/mypy
	# the house rules: files at most 600 lines, no import circles (Rust core, Python
	# package, lazy imports included), the package's layers (tools/check_layout.py)
	$(PY) tools/check_layout.py

fmt: $(VENV)/.deps
	cargo fmt --all
	$(VENV)/bin/ruff format python tests benches tools
	$(VENV)/bin/ruff check --fix python tests benches tools

# Where `make test`'s time went (cargo build --timings, -Zllvm-time-trace): compiling
# the crate with optimisation, ~17 CPU-minutes a target, nearly all of it LLVM's loop
# passes on two giant functions (src/expr/sparse.rs, fixed there). Now the crate is
# optimised once, for the extension pytest imports (105 s), and the Rust tests run in
# debug builds (debug assertions and overflow checks on: they check more than an
# optimised run; dependencies stay optimised, [profile.dev.package."*"]):
#   - default features: the unit tests, tests/props.rs and the doc-tests;
#   - the pure core alone (no libtorch, no Python: features torch, python off).
# Debug frames are several times an optimised build's, so test threads get 8 MiB
# (expr::sparse::tests::drivers_agree overflows 2 MiB; the expression parser's own
# small-stack test spawns its 128 KiB thread explicitly).
# Examples are type-checked by clippy (--all-targets), not linked.
# tests/props.rs draws its cases from a fixed seed here, so `make test` (and CI) is
# reproducible; explore with another one, e.g. `make cargo-test PROPTEST_RNG_SEED=$$RANDOM`
# (and `make fuzz` for the long runs).
PROPTEST_RNG_SEED ?= 20261127
TEST_STACK := RUST_MIN_STACK=8388608
cargo-test: $(VENV)/.deps
	$(TEST_STACK) PROPTEST_RNG_SEED=$(PROPTEST_RNG_SEED) LD_LIBRARY_PATH=$(rust_ld_path):$$LD_LIBRARY_PATH \
		cargo test --lib --tests -q
	LD_LIBRARY_PATH=$(rust_ld_path):$$LD_LIBRARY_PATH cargo test --doc -q
	$(TEST_STACK) cargo test --no-default-features --lib -q

# The extension pytest imports: Cargo's `ci` profile (release optimisation without LTO,
# 16 codegen units), its cdylib copied in place of maturin's.
TEST_PROFILE := ci
.built-ci: $(VENV)/.deps Cargo.toml $(RUST_SRC)
	cargo build --profile $(TEST_PROFILE) --lib -q
	cp -f $(CARGO_TARGET_DIR)/$(TEST_PROFILE)/libgridmatch.so python/gridmatch/_core.abi3.so
	@rm -f .built-release
	@touch $@

# The notebooks run top to bottom at small sizes (GRIDMATCH_FAST=1) through nbmake.
# They are outside tests/conftest.py, so the same offline set-up is given here: no
# download attempts (GRIDMATCH_OFFLINE=1), the project's datasets (../shared/datasets
# unless GRIDMATCH_DATA says otherwise), the bundled sample when neither has them.
SHARED_DATA := $(abspath $(CURDIR)/../shared/datasets)
pytest: .built-ci
	$(point_venv)
	GRIDMATCH_FAST=1 GRIDMATCH_OFFLINE=1 GRIDMATCH_DATA="$${GRIDMATCH_DATA:-$(SHARED_DATA)}" \
		$(PY) -m pytest -q tests --nbmake notebooks

test: lint cargo-test pytest

# The headline benchmarks (README's table), each job waiting for a quiet machine first;
# `make bench BENCH="svm gram"` runs some of them (`benches/run_all.py --list`).
BENCH ?=
bench: dev
	$(PY) benches/run_all.py $(BENCH)

# Fuzz the expression parser and the IDX reader for a fixed number of runs each (needs
# the nightly toolchain and `cargo install cargo-fuzz`; not part of `make test` or CI).
# The fuzz crate is its own workspace with its own target folder.
FUZZ_RUNS ?= 200000
fuzz:
	cd fuzz && CARGO_TARGET_DIR=$(CURDIR)/fuzz/target cargo +nightly fuzz run parse_expr -- -runs=$(FUZZ_RUNS) -max_len=1000
	cd fuzz && CARGO_TARGET_DIR=$(CURDIR)/fuzz/target cargo +nightly fuzz run read_idx -- -runs=$(FUZZ_RUNS) -max_len=4096

clean:
	rm -rf .venv .built-ci .built-release python/gridmatch/*.so
