# Two commands do all set-up on a fresh machine with only Python:
#   make demo   - render a synthetic PRISMA scene from embedded defaults (demo/scene.nc + quicklook)
#   make test   - run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.simhsi-installed
# The CPU build of torch: an unpinned torch would pull a multi-GB CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: install demo test test-all lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	mkdir -p demo
	$(BIN)/simhsi render-cube --sensor prisma --out demo/scene.nc --quicklook demo/scene.png --overwrite

# One process (about a minute on 2 cores either way). Under pytest-xdist with CI=true a worker crashed in
# netCDF-C's nc_open after a NetCDF file had been read through dask's thread pool in the same process.
test: install
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/python -X faulthandler -m pytest -q -m "not slow" --timeout 600

test-all: install
	$(BIN)/python -X faulthandler -m pytest -q

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo build *.egg-info .pytest_cache
