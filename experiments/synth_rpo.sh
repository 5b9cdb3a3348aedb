#!/usr/bin/env bash
# Issue 30: full RPO on synthetic users with known rules, 400 users, all with a rule, user split, beside every
# other method. Shapes: titles (LaMP_5; prefix/suffix rules), ratings (LaMP_3; leniency offsets), tweets (LaMP_7;
# lowercase, sign-off, emoji, "u") and labels (LaMP_2; synonym maps). Stages (each resumable by running it again):
#   bash experiments/synth_rpo.sh train   # data, then trajectories -> SFT -> RL, the tasks side by side (2 cores)
#   bash experiments/synth_rpo.sh val     # references, oracle, zero-shot, RAG, RPO w/o and with RL on --part val
#   bash experiments/synth_rpo.sh dev     # every method once on dev (RPO: the stage val chose), own / other-user / none
# TASKS= picks the tasks (default "LaMP_5 LaMP_3"; the second run used "LaMP_7 LaMP_2"), OUT= the folder
# (default runs/synth-rpo), PYTHON= the python, DEV_METHODS= the dev rows, DEV_LIMIT= a seeded sample of dev.
# The second run: TASKS="LaMP_7 LaMP_2" DEV_LIMIT=40 DEV_METHODS=references,oracle,zero-shot,rag,icl,pag,popi,hydra,rpo@rl,
# then DEV_METHODS=rpm (docs/synthetic.md).
set -euo pipefail
py=${PYTHON:-.venv/bin/python}
out=${OUT:-runs/synth-rpo}
export PERSONALIGN_DATA=$out/data PERSONALIGN="$py -m personalign.cli" PYTHON=$py
tasks=${TASKS:-LaMP_5 LaMP_3}
common="--data $out/data --split user --retriever bm25 --k 4 --llm llamacpp --llm-options quant=q8_0,n_threads=1"
timed() { /usr/bin/time -f "[synth_rpo] $1: %U s user + %S s system CPU, %e s wall" "${@:2}"; }
synth() {  # the data of one task
  case $1 in
    LaMP_5) $py -m personalign.cli data synth --out "$out/data" --shapes title --rules prefix,suffix --users 400 --seed 0 ;;
    LaMP_3) $py -m personalign.cli data synth --out "$out/data" --shapes rating --users 400 --seed 0 ;;
    LaMP_7) $py -m personalign.cli data synth --out "$out/data" --shapes tweet --users 400 --seed 0 ;;
    LaMP_2) $py -m personalign.cli data synth --out "$out/data" --shapes label --users 400 --seed 0 ;;
  esac
}
case ${1:?train, val or dev} in
train)
  for task in $tasks; do
    synth "$task"
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
      --config experiments/configs/eval/synth_rpo_rows.yaml --workers 2 ${DEV_LIMIT:+--limit $DEV_LIMIT} \
      --methods "${DEV_METHODS:-references,oracle,zero-shot,rag,icl,pag,rpm,popi,hydra,rpo@rl}" \
      --profile-control own,other-user,none
  done ;;
esac
