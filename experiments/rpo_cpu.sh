#!/usr/bin/env bash
# Train RPO's reflection model for each task in turn (trajectories, SFT, RL, then GGUF exports),
# logging each task to <out>/<task>/train.log; EXPORT_TYPES="f16 q8_0" picks the GGUF exports. Two of these side by side use the 2 cores:
#   experiments/rpo_cpu.sh configs/rpo/cpu.yaml LaMP_3 LaMP_5 &  experiments/rpo_cpu.sh configs/rpo/cpu.yaml LaMP_2 LaMP_6 LaMP_7
# The data folder is PERSONALIGN_DATA (default in experiments/data.sh), not the config's `data`.
set -euo pipefail
config=$1; shift
personalign=${PERSONALIGN:-personalign}   # e.g. ".venv/bin/personalign"
source "$(dirname "$0")/data.sh"   # $data: PERSONALIGN_DATA or the default folder
out=$(${PYTHON:-python} -c "import sys; from personalign.rpo.config import load_config; print(load_config(sys.argv[1]).out)" "$config")
for task in "$@"; do
  mkdir -p "$out/$task"
  {
    for stage in trajectories sft rl; do
      start=$(date +%s)
      $personalign train rpo "$stage" --task "$task" --config "$config" --data "$data"
      echo "[rpo_cpu] $task $stage $(( $(date +%s) - start )) s"
    done
    for stage in sft rl; do for type in ${EXPORT_TYPES:-f16}; do
      $personalign export "$out/$task/$stage/model" --type "$type"
    done; done
  } >> "$out/$task/train.log" 2>&1
  echo "[rpo_cpu] $task done"
done
