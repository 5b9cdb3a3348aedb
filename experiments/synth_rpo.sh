#!/usr/bin/env bash
# Issue 30: full RPO on synthetic users with known rules (titles: prefix/suffix; ratings: leniency offsets),
# 400 users, all with a rule, user split. Stages (each resumable by running it again):
#   bash experiments/synth_rpo.sh train   # data, then trajectories -> SFT -> RL for both tasks side by side (2 cores)
#   bash experiments/synth_rpo.sh val     # references, oracle, zero-shot, RAG, RPO w/o and with RL on --part val
#   bash experiments/synth_rpo.sh dev     # every method once on dev (RPO: the stage val chose), own / other-user / none
# OUT= changes the folder (default runs/synth-rpo), PYTHON= the python, DEV_METHODS= the dev rows.
set -euo pipefail
py=${PYTHON:-.venv/bin/python}
out=${OUT:-runs/synth-rpo}
export PERSONALIGN_DATA=$out/data PERSONALIGN="$py -m personalign.cli" PYTHON=$py
tasks="LaMP_5 LaMP_3"
common="--data $out/data --split user --retriever bm25 --k 4 --llm llamacpp --llm-options quant=q8_0,n_threads=1"
timed() { /usr/bin/time -f "[synth_rpo] $1: %U s user + %S s system CPU, %e s wall" "${@:2}"; }
case ${1:?train, val or dev} in
train)
  $py -m personalign.cli data synth --out "$out/data" --shapes title --rules prefix,suffix --users 400 --seed 0
  $py -m personalign.cli data synth --out "$out/data" --shapes rating --users 400 --seed 0
  for task in $tasks; do
    EXPORT_TYPES=q8_0 timed "$task train" bash experiments/rpo_cpu.sh experiments/configs/rpo/synth-fit.yaml "$task" &
  done
  wait ;;
val)
  for task in $tasks; do
    timed "$task val" $py -m personalign.cli eval $common --task "$task" --part val --out "$out/val" \
      --config experiments/configs/eval/synth_rpo_rows.yaml --workers 2 \
      --methods references,oracle,zero-shot,rag,rpo@sft,rpo@rl
  done ;;
dev)
  for task in $tasks; do
    timed "$task dev" $py -m personalign.cli eval $common --task "$task" --part dev --out "$out/dev" \
      --config experiments/configs/eval/synth_rpo_rows.yaml --workers 2 \
      --methods "${DEV_METHODS:-references,oracle,zero-shot,rag,icl,pag,rpm,popi,hydra,rpo@rl}" \
      --profile-control own,other-user,none
  done ;;
esac
