# openEO Tile Jobs. Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN := openeo_tile_jobs
export QT_QPA_PLATFORM ?= offscreen
# QGIS and the openeo client must never write into the user's real profile from tests.
TEST_HOME := $(CURDIR)/build/test-home

.PHONY: setup test lint demo package install-plugin bench clean

setup:
	@bash scripts/setup.sh

test: setup
	@rm -rf $(TEST_HOME) && mkdir -p $(TEST_HOME)
	HOME=$(TEST_HOME) XDG_CONFIG_HOME=$(TEST_HOME)/.config XDG_DATA_HOME=$(TEST_HOME)/.local/share \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

demo: setup
	$(PY) -m $(PLUGIN).demo $(DEMO_ARGS)

package: setup
	@bash scripts/package.sh

install-plugin: setup
	@bash scripts/install_plugin.sh

bench: setup
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build dist .qgis-settings

.PHONY: screenshots
# Every step of the panel and the map before, during and after a run, as PNGs in docs/.
screenshots: setup
	$(PY) scripts/screenshots.py docs
