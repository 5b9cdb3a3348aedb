#!/usr/bin/env bash
# The RPO rows of docs/archive/results-2026-12.md for one task, end to end on the 2-core CPU machine: train the
# reflection model (experiments/rpo_cpu.sh), export q8_0 copies, then evaluate the references, zero-shot, RAG,
# full RPO, RPO without RL, both profile controls and RAG w/ ICL into runs/reallamp. Each step logs
# its seconds; a finished step is skipped on rerun (training and eval resume from what is on disk).
#   experiments/rpo_rows.sh experiments/configs/rpo/cpu-template-teacher.yaml LaMP_7 [--no-train]
set -euo pipefail
config=$1 task=$2 train=${3:-}
bin=${BIN:-.venv/bin}
source "$(dirname "$0")/data.sh"   # $data: PERSONALIGN_DATA or the default folder
step() { local start; start=$(date +%s); "$@"; echo "[rpo_rows] $task $* : $(( $(date +%s) - start )) s"; }
if [ "$train" != "--no-train" ]; then
  PERSONALIGN=$bin/personalign PYTHON=$bin/python step experiments/rpo_cpu.sh "$config" "$task"
fi
for stage in sft rl; do step "$bin/personalign" export "runs/rpo/$task/$stage/model" --type q8_0; done
common=(--data "$data" --task "$task" --split user --part dev --retriever bm25 --k 4 --llm llamacpp
        --llm-options quant=q8_0,n_threads=1 --out runs/reallamp)
step "$bin/personalign" eval "${common[@]}" --methods references,zero-shot,rag
for run in "rpo@rl" "rpo@sft" "rpo@rl --profile-control none" "rpo@rl --profile-control other-user" "rpo@rag-icl"; do
  # shellcheck disable=SC2086  # $run carries the method and, for controls, its flag
  step "$bin/personalign" eval "${common[@]}" --config experiments/configs/eval/rpo_rows.yaml --methods $run
done
echo "[rpo_rows] $task done"
