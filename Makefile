# Everything a fresh machine needs: `make demo` and `make test` create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test test-fast bench gpu-bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first: the pinned CPU wheel; anything else would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/reslab demo

# Everything, the `slow` checks included, in one pytest process (about 11 minutes on 2 cores).
# TEST_WORKERS=2 runs one pytest process per core instead (tests/run_in_parallel.py: about 5.5 minutes on
# 2 cores), not yet the default: a signal test lost its race there once in four runs (see the runner).
TEST_WORKERS ?= 1
test: $(STAMP)
	$(PY) tests/run_in_parallel.py $(if $(TEST_WORKERS),--workers $(TEST_WORKERS)) -q $(PYTEST_ARGS)

# Without the `slow` checks (kill -9 resume, ONNX logits, the CNN browser test, demo stages).
test-fast: $(STAMP)
	$(PY) tests/run_in_parallel.py $(if $(TEST_WORKERS),--workers $(TEST_WORKERS)) -q -m "not slow" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

# On a machine with an NVIDIA GPU, in under 5 minutes: ResNet-50 and ResNet-20 training images/s
# and cifar_fast's time to accuracy (benchmarks/gpu_bench.py; --device cpu --tiny tests it anywhere).
gpu-bench: $(STAMP)
	$(PY) benchmarks/gpu_bench.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info demo-output
