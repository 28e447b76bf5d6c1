# One command per job. Each creates or reuses the project's virtual
# environment in .venv and installs what the job needs from the project's
# own files.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: demo test lint bench proto clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed-server-test: $(PY) pyproject.toml
	$(PIP) install --quiet -e ".[server,test]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed-server-test
	$(PIP) install --quiet -e ".[server,test,dev]"
	touch $@

## demo: train a digits classifier, serve it in simulation mode, classify the test set
demo: $(VENV)/.installed-server-test
	$(PY) examples/digits.py

## test: the whole test suite
test: $(VENV)/.installed-server-test
	$(PY) -m pytest -q

## lint: ruff (format check and lint) and mypy
lint: $(VENV)/.installed-dev
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m mypy

## bench: speed measurements, printed as ratios against floors measured in the same run
bench: $(VENV)/.installed-server-test
	$(PY) -m benchmarks

## proto: regenerate src/blindai/pb/*_pb2*.py from the .proto files
proto: $(VENV)/.installed-dev
	$(PY) -m grpc_tools.protoc -I src --python_out=src --grpc_python_out=src \
		--pyi_out=src src/blindai/pb/*.proto

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
