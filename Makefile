# Self-installing entry points: `make book` (the main job) and `make test` (pytest: unit tests + every chapter).
# Everything lands in .venv; the first call installs, later calls reuse it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Not under _build/: nbmake silently skips notebooks whose path contains "_build".
SCRATCH := build-notebooks
PREVIEW ?= $(if $(CSIL_PREVIEW),$(CSIL_PREVIEW),1)
export MUJOCO_GL ?= egl
export PYOPENGL_PLATFORM ?= egl
# JAX's persistent compilation cache: the chapters (one kernel each) and the test workers compile many of the same
# functions in separate processes; a cached executable is the same program, so results do not change. Every
# compilation is kept (no minimum compile time or size). Measured on tests/test_agent.py: 128 s cold, 30 s warm.
export JAX_COMPILATION_CACHE_DIR ?= $(HOME)/.cache/csil_lite/jax
export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS ?= 0
export JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES ?= -1

.PHONY: install book test unit notebooks book-check page-check float-paths clean

$(STAMP): pyproject.toml
	bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e ".[book,sim,test,serve,sweep,logs]"
	$(BIN)/python -m pip install -q --no-deps openpi-client==0.1.2 && $(BIN)/python -m pip install -q dm-tree pillow typing_extensions  # openpi-client pins numpy<2 (metadata only)
	touch $(STAMP)

install: $(STAMP)

## The main job: build the whole book, executing every chapter (preview unless CSIL_PREVIEW=0).
## It builds every page it can, then exits non-zero, naming chapter, cell and error, if any chapter raised.
## BOOK_ROOT: the book to build (the repository root; tests point it at a scratch copy).
BOOK_ROOT ?= .
book: $(STAMP)
	$(BIN)/python -m csil_lite.sphinx_mathjax
	rm -rf $(BOOK_ROOT)/_build/html/reports
	CSIL_PREVIEW=$(PREVIEW) $(BIN)/jupyter-book build $(BOOK_ROOT) --keep-going; status=$$?; \
	  $(BIN)/python scripts/check_book_build.py $(BOOK_ROOT) || exit 1; \
	  [ $$status -eq 0 ] || { echo "jupyter-book build failed (exit $$status)" >&2; exit $$status; }
	@echo "Book HTML: $(abspath $(BOOK_ROOT))/_build/html/index.html"

## Scratch copy of the book with chapters converted to .ipynb (never inside book/). csil_lite comes along
## because the chapters show library code with `{literalinclude} ../csil_lite/...` (the kernels import the
## installed package: the copy is not on their path).
notebooks: $(STAMP)
	rm -rf $(SCRATCH) && mkdir -p $(SCRATCH)
	cp -r book _config.yml _toc.yml references.bib csil_lite sweeps $(SCRATCH)/
	$(BIN)/python scripts/convert_chapters.py $(SCRATCH)/book

## The test command: pytest runs the unit tests and every chapter (nbmake, preview mode) in one session.
test: notebooks
	CSIL_PREVIEW=1 $(BIN)/python -m pytest -n 2 --dist loadfile tests $(SCRATCH)/book \
	  --nbmake --nbmake-timeout=600 --overwrite -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/python -m pytest -n 2 tests

## Strict book build (warnings are errors) from the notebooks `make test` already executed: nothing runs twice.
book-check: $(STAMP)
	@test -n "$$(ls $(SCRATCH)/book/*.ipynb 2>/dev/null)" || { echo "run 'make test' first"; exit 1; }
	$(BIN)/python scripts/check_executed.py $(SCRATCH)/book
	$(BIN)/python -m csil_lite.sphinx_mathjax
	sed -i 's/execute_notebooks: .*/execute_notebooks: "off"/' $(SCRATCH)/_config.yml
	$(BIN)/jupyter-book build $(SCRATCH) -W -n --keep-going
	@echo "Checked book HTML: $(CURDIR)/$(SCRATCH)/_build/html/index.html"

## Look at the checked book as a reader does: every chapter page in headless Chromium at 1280 px, screenshots in
## $(SCRATCH)/_build/shots; fails on a traceback, a blank glued number, an equation or output wider than its column.
page-check: $(STAMP)
	$(BIN)/python scripts/check_pages.py $(SCRATCH)/_build/html --book $(SCRATCH)/book --shots $(SCRATCH)/_build/shots

## Every chapter in preview under the default and a second XLA CPU float path (SSE4_2; AVX2 too on an AVX-512
## machine), asserted and glued figures side by side, peak kernel memory per chapter. FLOAT_PATHS_ARGS: e.g.
## `--reuse default=$(SCRATCH)/book` after `make test` (the default path's chapters are not run again).
FLOAT_PATHS_ARGS ?=
float-paths: $(STAMP)
	mkdir -p _build
	$(BIN)/python scripts/float_paths.py --paths default SSE4_2 AVX2 --out _build/float-paths.json $(FLOAT_PATHS_ARGS)

clean:
	rm -rf _build $(SCRATCH)
