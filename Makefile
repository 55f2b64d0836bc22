# The README's two entry points: `make serve` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV := .venv

export TF_CPP_MIN_LOG_LEVEL ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK := 1

$(VENV)/.runtime: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e .
	touch $@

$(VENV)/.test: $(VENV)/.runtime
	$(VENV)/bin/pip install --quiet -e '.[test,ray]'
	touch $@

.PHONY: serve test lint browser
serve: $(VENV)/.runtime
	TF_CPP_MIN_LOG_LEVEL=3 $(VENV)/bin/wave-serve

lint: $(VENV)/.test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# the browser test drives Debian's headless Chromium (Playwright's own browser download does not work here)
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

# Three worker processes (pytest-xdist, modules kept whole, the Ray ones on one worker): TensorFlow never frees a
# loaded XLA program, each holds ~7 memory mappings, and one process running the whole suite reached the kernel's
# limit (vm.max_map_count, 65530), where LLVM aborts or the unwinder crashes; with two, one worker still did.
test: lint browser
	$(VENV)/bin/python -m pytest -n 3 --dist loadgroup
