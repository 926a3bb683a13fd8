#!/usr/bin/env bash
# Reproduce the shipped `shapes` checkpoint (pixelground/checkpoints/shapes) on a CPU:
# generate the procedural benchmark, train configs/shapes.json (55 minutes of training on
# 2 cores), then evaluate the held-out test splits with `pixelground eval`.
# Usage: bash scripts/train_shapes.sh [RUN_DIR]   (default runs/shapes)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=${1:-runs/shapes}
bash scripts/setup.sh
PG=.venv/bin/pixelground
mkdir -p "$RUN"
$PG synth "$RUN/data" --task refer --n 5000 --n-eval 150 --seed 0 --split all --overwrite
$PG synth "$RUN/data" --task gcg --n 2500 --n-eval 60 --seed 1 --split all --overwrite
$PG synth "$RUN/data" --task region --n 2500 --n-eval 40 --seed 2 --split all --overwrite
$PG synth "$RUN/data" --task video --n 1500 --n-eval 40 --seed 3 --split all --overwrite
cp configs/shapes.json "$RUN/shapes.json"
$PG train "$RUN/shapes.json" --out "$RUN/run"   # Ctrl-C and re-run resumes
# when a referring answer has a target: fitted on the validation split (writes config.json)
$PG calibrate "$RUN/run" --data "$RUN/data/refer/val/finetune.jsonl"
for task in refer gcg rvos; do
  data=$task; [ "$task" = rvos ] && data=video
  $PG eval "$task" --dataset "synth:$RUN/data/$data/test" --preset shapes \
    --model "grounding_model=segtoken:$RUN/run" --out "$RUN/eval/$task"
done
echo "to ship it: copy the files of the last $RUN/run/checkpoint-* (without training_state.pt) to pixelground/checkpoints/shapes/"
