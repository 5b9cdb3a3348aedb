#!/usr/bin/env bash
# Issue 30, first small measurement: the references, the oracle, zero-shot and RAG on two synthetic tasks
# (title rules prefix/suffix on LaMP_5's format, leniency offsets on LaMP_3's), 20 users, time split, dev
# (one question a user), under the own / other-user / none profile controls, on the bundled model; then
# echo and RAG on a tweet task whose users all write in lowercase (12 sampled questions), and how often each run's answers follow the asking user's rule (experiments/synth_rule_following.py).
# Run from the repository root: bash experiments/synth_small.sh   (OUT= changes the folder, PYTHON= the python)
set -euo pipefail
py=${PYTHON:-.venv/bin/python}
out=${OUT:-runs/synth-small}
$py -m personalign.cli data synth --out "$out/data" --shapes title --rules prefix,suffix --users 20 --history 8 --seed 0
$py -m personalign.cli data synth --out "$out/data" --shapes rating --users 20 --history 8 --seed 0
for task in LaMP_5 LaMP_3; do
  /usr/bin/time -f "$task: %U s user + %S s system CPU, %e s wall" \
    $py -m personalign.cli eval --data "$out/data" --task "$task" --split time --part dev \
      --methods references,oracle,zero-shot,rag --profile-control own,other-user,none --workers 1 --out "$out/runs"
done
$py -m personalign.cli data synth --out "$out/data" --shapes tweet --rules lowercase --users 20 --history 8 --seed 0
/usr/bin/time -f "LaMP_7: %U s user + %S s system CPU, %e s wall" \
  $py -m personalign.cli eval --data "$out/data" --task LaMP_7 --split time --part dev --limit 12 \
    --methods echo,rag,oracle --profile-control own,other-user,none --workers 1 --out "$out/runs"
$py -m experiments.synth_rule_following "$out/data" "$out/runs" --out "$out/rule_following.md"
