# wrenbook: make is the entry point for everything. Targets create .venv/ on first use.
#   make book     install if needed, execute every chapter, render the HTML book
#   make test     unit tests, execute every chapter (quick profile), build the book, check the HTML
# PROFILE=quick|full overrides the automatic choice (full when a CUDA GPU is present);
# JOBS=N sets how many jobs (chapters, and the CNN trainings they need) run side by side
# (default: 2 on a CPU; with a GPU one per 4 cores and 10 GiB, at most 4, each with its share of its memory);
# KEEP_GOING=1 runs, after a failure, every job that needs nothing that failed (a long GPU run keeps what it can);
# RESUME=1 goes on with the last run: leaves out the chapters and preparations it finished (only the last run).

PYTHON_BOOTSTRAP ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROFILE ?= auto
KERNEL := wrenbook
JUPYTEXT := $(VENV)/bin/jupytext
NOTEBOOK_SOURCES := $(wildcard notebooks/[0-9][0-9]_*.py)

.PHONY: help install book execute html test unit-tests check-html sync bench clean

help:
	@sed -n '1,8p' Makefile

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || command -v $(PYTHON_BOOTSTRAP) >/dev/null 2>&1 || { echo "error: $(PYTHON_BOOTSTRAP) not found; set PYTHON_BOOTSTRAP=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# torch comes in the same pip command as captum/shap, pinned by constraints.txt, so pip never
	@# swaps in another torch build behind our back
	$(PY) -m pip install --quiet -c constraints.txt -e ".[book,dev]"
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (wrenbook)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

## Execute every chapter with papermill into book/chapters/ (no new job starts after a failure, unless KEEP_GOING=1).
execute: $(STAMP)
	$(PY) -m wrenlib execute --profile $(PROFILE) --kernel $(KERNEL) $(if $(JOBS),--jobs $(JOBS)) $(if $(filter-out 0,$(KEEP_GOING)),--keep-going) $(if $(filter-out 0,$(RESUME)),--resume)

## Render the executed chapters (execution is off in _config.yml).
html: $(STAMP)
	rm -rf _build/html
	$(VENV)/bin/jupyter-book build . --warningiserror --keep-going --quiet
	@echo "The book is in _build/html/index.html (open it in a browser)."

book: execute html

unit-tests: $(STAMP)
	$(PY) -m pytest -q --ignore=tests/test_built_book.py --ignore=tests/test_browser.py

## The built HTML, as files and in headless Chromium (the browser test skips when chromium is missing).
check-html: $(STAMP)
	WRENBOOK_REQUIRE_BOOK=1 $(PY) -m pytest -q tests/test_built_book.py tests/test_browser.py

## The README's test command: unit tests, the whole book in the quick profile, the HTML checked.
test: $(STAMP)
	$(MAKE) unit-tests
	$(MAKE) execute PROFILE=quick
	$(MAKE) html
	$(MAKE) check-html

## Regenerate each notebooks/NN_topic.ipynb from its .py (never the other way round).
sync: $(STAMP)
	@for source in $(NOTEBOOK_SOURCES); do \
	  notebook="$${source%.py}.ipynb"; update=""; [ -f "$$notebook" ] && update="--update"; \
	  $(JUPYTEXT) --quiet --to ipynb $$update --output "$$notebook" "$$source" || exit 1; \
	done
	@echo "notebooks regenerated from their .py sources"

bench: $(STAMP)
	$(PY) -m wrenlib bench --out artifacts/bench

clean:
	rm -rf _build book/_build book/chapters book/status.md book/performance.md book/performance_chapters.png \
		artifacts .pytest_cache
