# The README's two commands — `make demo` and `make test` — are all a new user needs:
# both create the virtualenvs first when they are missing or older than their inputs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONSTRAINTS := constraints.txt
LS_CONSTRAINTS := labelstudio-constraints.txt
LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
LABEL_STUDIO_VERSION := 1.23.2

# Nothing downloads model weights at run time; LiteLLM uses its bundled price list.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export LITELLM_LOCAL_MODEL_COST_MAP := True
# llama-cpp-python compiles from source; a native build dies with "invalid opcode" on these CPUs.
export CMAKE_ARGS := -DGGML_NATIVE=OFF

.PHONY: setup labelstudio-setup browser demo test lint docs bench lock labelstudio labelstudio-annotator labelstudio-stop clean

setup: $(STAMP)

# Setup also builds the two embedding models derived from the packaged MiniLM into the cache folder (once
# per machine, a few minutes; first use would otherwise build them): the int8 ONNX export (the default
# embedding, also the corpus classifier's) and the distilled static model (`[causal] embedding = "fast"`).
# constraints.txt pins every package to the versions the tests last passed with (`make lock` refreshes it):
# a fresh machine installs those, not whatever was released that morning.
$(STAMP): pyproject.toml $(CONSTRAINTS)
	@start=$$(date +%s); \
	$(PYTHON) -m venv $(VENV) && \
	$(BIN)/pip install --upgrade pip && \
	$(BIN)/pip install torch==2.13.0 && \
	$(BIN)/pip install -c $(CONSTRAINTS) -e '.[test,ray]' && \
	$(BIN)/python -c 'from empathy_study.causal import _static; _static.load_onnx_model(); print("ONNX embedding model:", _static.onnx_model_dir())' && \
	$(BIN)/python -c 'from empathy_study.causal import _static; _static.load_static_model(); print("static embedding model:", _static.static_model_dir())' && \
	touch $@ && \
	echo "setup: $$(( $$(date +%s) - start )) s"

# Label Studio pins libraries that clash with ours: it lives in its own virtualenv.
labelstudio-setup: $(LS_STAMP)

$(LS_STAMP): $(LS_CONSTRAINTS)
	@start=$$(date +%s); \
	$(PYTHON) -m venv $(LS_VENV) && \
	$(LS_VENV)/bin/pip install --upgrade pip && \
	$(LS_VENV)/bin/pip install -c $(LS_CONSTRAINTS) 'label-studio==$(LABEL_STUDIO_VERSION)' && \
	touch $@ && \
	echo "labelstudio-setup: $$(( $$(date +%s) - start )) s"

# The annotator-view tests drive Debian's Chromium, headless, through Playwright (which never downloads a
# browser of its own here). Installed once per machine; a no-op when it is there.
export EMPATHY_CHROMIUM ?= /usr/bin/chromium
browser: $(EMPATHY_CHROMIUM)

$(EMPATHY_CHROMIUM):
	@command -v apt-get > /dev/null || { echo "no Chromium at $@: install it, or set EMPATHY_CHROMIUM to one"; exit 1; }; \
	start=$$(date +%s); sudo=$$(test "$$(id -u)" -eq 0 || echo sudo); \
	install="$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-liberation"; \
	{ $$install || { $$sudo apt-get update -q && $$install; }; } > .chromium-install.log 2>&1 \
	  || { tail -20 .chromium-install.log; exit 1; }; \
	rm -f .chromium-install.log; \
	test -x $@ || { echo "apt-get installed chromium, but not at $@: set EMPATHY_CHROMIUM to it"; exit 1; }; \
	echo "browser: Chromium installed in $$(( $$(date +%s) - start )) s"

demo: setup
	$(BIN)/empathy demo --out demo-study

# The tests start their own Label Studio (fresh data dir, free port) from $(LS_VENV), and a headless Chromium.
# One OpenBLAS thread: with the local judge, Label Studio or anything else busy on the two cores, a
# two-thread OpenBLAS spins for the core it cannot get (a RidgeCV fit measured 40x slower under load).
test: setup labelstudio-setup browser
	@start=$$(date +%s); \
	$(BIN)/ruff check . && BIN=$(BIN) tools/lint_imports.sh && \
	LABEL_STUDIO_BIN=$(CURDIR)/$(LS_VENV)/bin/label-studio OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q --durations=20 --random-order; \
	status=$$?; \
	echo "tests: $$(( $$(date +%s) - start )) s"; exit $$status

# ruff, and the house rules as import contracts (pyproject.toml [tool.importlinter], docs/architecture.md)
lint: setup
	$(BIN)/ruff check .
	BIN=$(BIN) tools/lint_imports.sh

# docs/configuration.md is rendered from the configuration models' field descriptions (a test checks it is current).
docs: setup
	$(BIN)/python -c 'from empathy_study.study.config import reference; print(reference(), end="")' > docs/configuration.md

bench: setup
	$(BIN)/python bench/corpus_scale.py
	$(BIN)/python bench/matching_scale.py
	$(BIN)/python bench/judge_throughput.py
	$(BIN)/python bench/batch_judging.py
	$(BIN)/python bench/estimator_coverage.py
	$(BIN)/python bench/tui_speed.py

# A fresh resolve of pyproject.toml in a throw-away virtualenv, frozen into constraints.txt.
# Run it, then `make test`, and commit constraints.txt only if the tests pass.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && \
	.venv-lock/bin/pip install --upgrade pip && \
	.venv-lock/bin/pip install torch==2.13.0 && \
	.venv-lock/bin/pip install '.[test,ray]' && \
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^empathy-study\|^torch==' > $(CONSTRAINTS) && \
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock && \
	.venv-lock/bin/pip install 'label-studio==$(LABEL_STUDIO_VERSION)' && \
	.venv-lock/bin/pip freeze > $(LS_CONSTRAINTS); \
	status=$$?; rm -rf .venv-lock; exit $$status

labelstudio: labelstudio-setup
	tools/labelstudio.sh start

# One server per annotator (blind ratings stay independent only when no annotator can log in to another's).
labelstudio-annotator: labelstudio-setup
	@test -n "$(NAME)" || { echo "usage: make labelstudio-annotator NAME=alice"; exit 2; }
	tools/labelstudio.sh annotator $(NAME)

labelstudio-stop:
	tools/labelstudio.sh stop

clean:
	rm -rf $(VENV) $(LS_VENV) demo-study .pytest_cache
