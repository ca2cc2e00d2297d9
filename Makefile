# openEO Tile Jobs. Two commands on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PLUGIN := openeo_tile_jobs
export QT_QPA_PLATFORM ?= offscreen
# QGIS and the openeo client must never write into the user's real profile from tests.
TEST_HOME := $(CURDIR)/build/test-home

.PHONY: setup test test-qgis test-desktop lint demo package install-plugin bench clean

setup:
	@bash scripts/setup.sh

test: setup
	@rm -rf $(TEST_HOME) && mkdir -p $(TEST_HOME)
	HOME=$(TEST_HOME) XDG_CONFIG_HOME=$(TEST_HOME)/.config XDG_DATA_HOME=$(TEST_HOME)/.local/share \
		$(VENV)/bin/pytest $(PYTEST_ARGS)

# The analyst's journey in the real QGIS desktop (Xvfb + openbox); also part of `make test`.
test-desktop: setup
	@$(MAKE) --no-print-directory test PYTEST_ARGS="tests/desktop -s $(PYTEST_ARGS)"

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/flake8
	$(PY) scripts/qt6_rules.py

# make test-qgis QGIS=3.40|3.44 [PYTEST_ARGS=...]: the same `make test` in a Debian root with that QGIS
# (built once with debootstrap under /var/cache/openeo-tile-jobs; needs root).
test-qgis:
	PYTEST_ARGS='$(PYTEST_ARGS)' bash scripts/qgis_matrix.sh $(QGIS)

# make demo [FRESH=1 | RESUME=1] [GUI=1] [TILES=4] [OUTPUT=demo_output] [PIXEL_SIZE=10]
#           [BACKEND_URL=https://... AUTH=none|basic|oidc PROCESS_URL=https://....json [PROCESS_ID=...]
#            [PARAMS='{"temporal_extent": [...]}'] [AOI="W,S,E,N[,CRS]" or a vector file] [TILE_SIZE=5000]
#            [PARALLEL_JOBS=2]] [DEMO_ARGS="any other flag of python -m openeo_tile_jobs.demo --help"]
# Basic sign-in reads OPENEO_USERNAME / OPENEO_PASSWORD (or asks): never a password on the command line.
on = $(filter-out 0 no false,$(1))
DEMO_FLAGS = $(if $(call on,$(FRESH)),--fresh) $(if $(call on,$(RESUME)),--resume) \
	$(if $(call on,$(GUI)),--gui) $(if $(TILES),--tiles $(TILES)) $(if $(OUTPUT),--output '$(OUTPUT)') \
	$(if $(PIXEL_SIZE),--pixel-size $(PIXEL_SIZE)) $(if $(BACKEND_URL),--backend-url '$(BACKEND_URL)') \
	$(if $(AUTH),--auth $(AUTH)) $(if $(PROCESS_URL),--process-url '$(PROCESS_URL)') \
	$(if $(PROCESS_ID),--process-id '$(PROCESS_ID)') $(if $(PARAMS),--params '$(PARAMS)') \
	$(if $(AOI),--aoi '$(AOI)') $(if $(TILE_SIZE),--tile-size $(TILE_SIZE)) \
	$(if $(PARALLEL_JOBS),--parallel-jobs $(PARALLEL_JOBS))

demo: setup
	$(PY) -m $(PLUGIN).demo $(strip $(DEMO_FLAGS)) $(DEMO_ARGS)

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
