# The README's two commands — `make demo` and `make test` — are all a new user needs:
# both create the virtualenv first when it is missing or older than pyproject.toml.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Nothing downloads model weights at run time; LiteLLM uses its bundled price list.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
# llama-cpp-python compiles from source; a native build dies with "invalid opcode" on these CPUs.
export CMAKE_ARGS := -DGGML_NATIVE=OFF

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@start=$$(date +%s); \
	$(PYTHON) -m venv $(VENV) && \
	$(BIN)/pip install --upgrade pip && \
	$(BIN)/pip install torch==2.13.0 && \
	$(BIN)/pip install -e '.[test]' && \
	touch $@ && \
	echo "setup: $$(( $$(date +%s) - start )) s"

demo: setup
	$(BIN)/empathy demo --out demo-study

test: setup
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q --durations=15; status=$$?; \
	echo "tests: $$(( $$(date +%s) - start )) s"; exit $$status

bench: setup
	$(BIN)/python bench/corpus_scale.py

clean:
	rm -rf $(VENV) demo-study .pytest_cache
