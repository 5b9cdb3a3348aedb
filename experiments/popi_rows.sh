#!/usr/bin/env bash
# The POPI rows of docs/archive/results-2026-12.md: untrained POPI on every task given, then, for TRAIN_TASK, the
# summarizer trained with RL (configs/popi/cpu.yaml), its q8_0 export, and the RL row with the
# other-user control. Each step logs its seconds.
#   experiments/popi_rows.sh LaMP_3 LaMP_2 LaMP_6 LaMP_7 LaMP_5     (the first task is the one trained)
set -euo pipefail
bin=${BIN:-.venv/bin}
source "$(dirname "$0")/data.sh"   # $data: PERSONALIGN_DATA or the default folder
train_task=$1
step() { local start; start=$(date +%s); "$@"; echo "[popi_rows] $* : $(( $(date +%s) - start )) s"; }
common=(--data "$data" --split user --part dev --retriever bm25 --k 4 --llm llamacpp
        --llm-options quant=q8_0,n_threads=1 --config experiments/configs/eval/popi_rows.yaml --out runs/reallamp)
step "$bin/personalign" train popi rl --task "$train_task" --config configs/popi/cpu.yaml --data "$data"
step "$bin/personalign" export "runs/popi/$train_task/rl/model" --type q8_0
step "$bin/personalign" eval "${common[@]}" --task "$train_task" --methods popi,popi@rl --profile-control own,other-user
for task in "${@:2}"; do
  step "$bin/personalign" eval "${common[@]}" --task "$task" --methods popi --profile-control own,other-user
done
echo "[popi_rows] done"
