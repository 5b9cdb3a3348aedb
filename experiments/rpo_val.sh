#!/usr/bin/env bash
# RPO's validation record for each task in turn: train the CPU recipe on the fit users only
# (experiments/configs/rpo/cpu-fit.yaml), then score the references, zero-shot, RAG, RPO without and with RL and
# full RPO's other-user control on the validation users (--part val) into runs/reallamp-val.
#   experiments/rpo_val.sh LaMP_2 LaMP_6      (one core; PERSONALIGN=.venv/bin/personalign outside the venv)
set -uo pipefail
personalign=${PERSONALIGN:-personalign}
source "$(dirname "$0")/data.sh"   # $data: PERSONALIGN_DATA or the default folder
common="--data $data --split user --part val --retriever bm25 --k 4 --llm llamacpp
        --llm-options quant=q8_0,n_threads=1 --out runs/reallamp-val"
rows="--config experiments/configs/eval/rpo_val_rows.yaml"
step() {  # run a command, print its seconds, keep its exit status
  local name=$1 start status; shift; start=$(date +%s); "$@"; status=$?
  echo "[rpo_val] $name $(( $(date +%s) - start )) s"; return $status
}
for task in "$@"; do
  EXPORT_TYPES=q8_0 step "$task train" experiments/rpo_cpu.sh experiments/configs/rpo/cpu-fit.yaml "$task" || exit 1
  step "$task base rows" $personalign eval $common --task "$task" --methods references,zero-shot,rag
  step "$task rpo rows" $personalign eval $common $rows --task "$task" --methods rpo@sft,rpo@rl
  step "$task control" $personalign eval $common $rows --task "$task" --methods rpo@rl --profile-control other-user
done
