# `make demo` and `make test` work on a fresh machine: each creates .venv, installs the CPU
# torch first (pinned by constraints.txt so nothing swaps in a CUDA build), then the package.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
EXTRAS ?= dev,faiss,text,data,eval,serve,train,e2e,milvus,pretrained,ray
PORT   ?= 8000
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
comma  := ,
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: venv demo test test-all lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -c constraints.txt "torch==2.13.0"
	$(PIP) install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

demo: $(STAMP)
	$(VENV)/bin/referred demo --port $(PORT)

test: $(STAMP)
	$(PY) -m ruff check src tests scripts
	@$(PY) -c "from referred.model import cpu; print('cpu:', cpu.summary())"
	$(PY) -m pytest -q -m "not slow and not gpu and not network"

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not gpu and not network"

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts

format: $(STAMP)
	$(PY) -m ruff format src tests scripts
	$(PY) -m ruff check --fix src tests scripts

bench: $(STAMP)
	$(PY) scripts/bench_encoder.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build dist src/*.egg-info
