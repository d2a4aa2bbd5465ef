# modelship: render and test the template. `make help` lists the targets.
# uv is installed into .uv/ when it is not on PATH.

SHELL := /bin/sh
.DEFAULT_GOAL := help

PYTHON ?= python3
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.uv/bin/uv)
DEMO_DIR ?= build/demo
export UV

.PHONY: help demo classroom test lint bench bench-cost docs docs-build clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(CURDIR)/.uv/bin/uv:
	$(PYTHON) -m venv .uv
	.uv/bin/python -m pip install --quiet --disable-pip-version-check uv

.venv: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen
	@touch .venv

demo: .venv ## render the default answers into $(DEMO_DIR) and serve it on 127.0.0.1:8000
	rm -rf $(DEMO_DIR)
	$(UV) run python hooks/render.py $(DEMO_DIR) --defaults
	$(MAKE) -C $(DEMO_DIR) setup run

classroom: .venv ## one starter repository per student: ROSTER=csv OUT=dir [ANSWERS=yml TEMPLATE=url REF=tag]
	@test -n "$(ROSTER)" || { echo "error: give the roster, e.g. make classroom ROSTER=examples/roster.csv OUT=build/classroom" >&2; exit 2; }
	@test -n "$(OUT)" || { echo "error: give the folder for the repositories, e.g. OUT=build/classroom" >&2; exit 2; }
	$(UV) run python hooks/classroom.py "$(ROSTER)" "$(OUT)" \
		$(if $(ANSWERS),--answers "$(ANSWERS)") $(if $(TEMPLATE),--template "$(TEMPLATE)") \
		$(if $(REF),--vcs-ref "$(REF)")

test: .venv ## run the template's whole test suite
	$(UV) run pytest

bench: .venv ## benchmark the default service against a textbook FastAPI app, BentoML and MLServer, 3 rounds (~12 min)
	$(UV) run python -m bench.run

bench-cost: .venv ## CPU time a request costs with and without each part of the monitoring (~2 min)
	$(UV) run python -m bench.cost

lint: .venv ## check the template's own Python code
	$(UV) run ruff format --check .
	$(UV) run ruff check .

docs: .venv ## serve the documentation site on http://127.0.0.1:8008, rebuilt as you edit
	$(UV) run mkdocs serve

docs-build: .venv ## build the documentation site into build/site, failing on any warning
	$(UV) run mkdocs build --strict

clean: ## remove rendered demos and caches
	rm -rf build .pytest_cache .ruff_cache
