#!/usr/bin/env bash
# POPI's joint rows of docs/archive/results-2026-12.md for one task: the generator's SFT on summary-conditioned golds,
# its q8_0 export, the summarizer's RL against it (configs/popi/cpu-joint.yaml), then on dev:
# the references, RAG, popi@gen and popi@joint with the trained generator, and popi@joint transferred to
# the frozen bundled generator; every LLM row with its other-user control. Each step logs its seconds.
#   experiments/popi_joint.sh LaMP_3
set -euo pipefail
task=$1
bin=${BIN:-.venv/bin}
source "$(dirname "$0")/data.sh"   # $data: PERSONALIGN_DATA or the default folder
config=configs/popi/cpu-joint.yaml
step() { local start; start=$(date +%s); "$@"; echo "[popi_joint] $* : $(( $(date +%s) - start )) s"; }
step "$bin/personalign" train popi generator --task "$task" --config "$config" --data "$data"
step "$bin/personalign" export "runs/popi-joint/$task/generator/model" --type q8_0
step "$bin/personalign" train popi rl --task "$task" --config "$config" --data "$data"
step "$bin/personalign" export "runs/popi-joint/$task/rl/model" --type q8_0
common=(--data "$data" --task "$task" --split user --part dev --retriever bm25 --k 4
        --config experiments/configs/eval/popi_joint_rows.yaml)
step "$bin/personalign" eval "${common[@]}" --llm "llamacpp:runs/popi-joint/$task/generator/model.q8_0.gguf" \
  --llm-options n_threads=1 --out runs/reallamp-popi-gen --methods references,rag,popi@gen,popi@joint \
  --profile-control own,other-user
step "$bin/personalign" eval "${common[@]}" --llm llamacpp --llm-options quant=q8_0,n_threads=1 --out runs/reallamp \
  --methods popi@joint --profile-control own,other-user
echo "[popi_joint] $task done"
