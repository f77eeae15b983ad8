# One-command set-up: every target creates .venv when it is missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test test-all lint bench demo docs docs-check docstrings wheel-check clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

# the quick tier a change runs (minutes): ruff, mypy (sdtools, configured in pyproject.toml),
# then everything not marked slow, on both cores
test: $(STAMP)
	$(BIN)/ruff check sdtools modx tests benchmarks examples
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile

# everything (what CI runs): the quick tier on both cores, then the slow tier (subprocesses,
# the demo, two-process training, launchers, ViT-B-32, simulations) one test at a time
test-all: $(STAMP)
	$(BIN)/ruff check sdtools modx tests benchmarks examples
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m "not slow" -n 2 --dist loadfile
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -q -m slow

lint: $(STAMP)
	$(BIN)/ruff check sdtools modx tests benchmarks examples
	$(BIN)/mypy

$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/pip install -q -e ".[dev,bench]"
	touch $@

bench: $(VENV)/.bench-installed
	HF_HUB_OFFLINE=1 BENCH_DEVICE=$(DEVICE) $(BIN)/python -m benchmarks.run $(BENCH)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/modx demo $(DEMO_ARGS)

# the manual: installs the docs extra, then builds site/ with warnings as errors (broken links
# and anchors included); the reference pages are generated from the code while it builds
$(VENV)/.docs-installed: $(STAMP)
	$(BIN)/pip install -q -e ".[dev,docs]"
	touch $@

docs: $(VENV)/.docs-installed
	NO_MKDOCS_2_WARNING=1 HF_HUB_OFFLINE=1 $(BIN)/mkdocs build --strict

# rendered pages in headless Chromium: screenshots of the index, a measures page and the
# results page in site/_check/, failing on console errors; skipped (saying so) without Chromium
docs-check: docs
	$(BIN)/python tools/docs_check.py site

# numpydoc-style validation of the public names (Parameters complete and in signature order,
# Returns, Raises where a name raises, See Also, References for the measures); lists problems
# and fails when any name has one (CI runs it)
docstrings: $(STAMP)
	$(BIN)/python tools/check_docstrings.py

# the wheel, installed alone into a fresh venv: sdtools --version, modx --help, an API example
wheel-check: $(STAMP)
	tools/wheel_check.sh $(BIN)/python

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site build/wheel-check
