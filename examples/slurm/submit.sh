#!/bin/bash
# Train an lmscale ladder as one SLURM job per run (`lmscale ladder submit`, through submitit):
# each job asks for the GPUs and time its run needs, is requeued when SLURM warns it of preemption
# or of its time limit, and resumes from the run's checkpoint. Run it on a login node, from a
# virtual environment with `pip install 'lmscale[train,cluster]'` on a filesystem every node sees:
#   bash examples/slurm/submit.sh ladder.yaml /ckpt/ladder gpu
# (ladder.yaml as `{preset: paper, corpus: {name: web, prepared: /data/prepared}}`).
# The one-allocation alternative, all runs one after another under torchrun: ladder.sbatch.
set -euo pipefail
CONFIG=${1:?ladder config}
OUT=${2:?ladder folder on a filesystem every node sees}
PARTITION=${3:?SLURM partition}
# the plan first: steps, epochs, memory per GPU and the estimated time of each run
lmscale ladder plan "$CONFIG" --device cuda --gpu-memory 80GB
# one job per unfinished run; a run longer than the partition's limit is requeued at it and resumes
lmscale ladder submit "$CONFIG" --out "$OUT" --executor slurm --partition "$PARTITION" \
  --gpu-memory 80GB --max-time 48:00:00
# follow the runs (again at any time; runs.jsonl is rebuilt as each run finishes)
lmscale ladder status "$OUT"
