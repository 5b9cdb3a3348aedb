#!/usr/bin/env bash
# The POPI rows of docs/results.md: untrained POPI on every task given, then, for TRAIN_TASK, the
# summarizer trained with RL (configs/popi/cpu.yaml), its q8_0 export, and the RL row with the
# other-user control. Each step logs its seconds.
#   tools/popi_rows.sh LaMP_3 LaMP_2 LaMP_6 LaMP_7 LaMP_5     (the first task is the one trained)
set -euo pipefail
bin=${BIN:-.venv/bin}
data=${DATA:-../shared/data/reallamp}
train_task=$1
step() { local start; start=$(date +%s); "$@"; echo "[popi_rows] $* : $(( $(date +%s) - start )) s"; }
common=(--data "$data" --split user --part dev --retriever bm25 --k 4 --llm llamacpp
        --llm-options quant=q8_0,n_threads=1 --config configs/eval/popi_rows.yaml --out runs/reallamp)
step "$bin/personalign" train popi rl --task "$train_task" --config configs/popi/cpu.yaml
step "$bin/personalign" export "runs/popi/$train_task/rl/model" --type q8_0
step "$bin/personalign" eval "${common[@]}" --task "$train_task" --methods popi,popi@rl --profile-control own,other-user
for task in "${@:2}"; do
  step "$bin/personalign" eval "${common[@]}" --task "$task" --methods popi --profile-control own,other-user
done
echo "[popi_rows] done"
