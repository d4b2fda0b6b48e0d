#!/usr/bin/env bash
# The recipe of the shipped model openmm_timewarp/trained/ace-ala-nme.pt, from nothing:
# MD data (11 trajectories of 5 ns at 310 K, started in 7 basins), maximum-likelihood training of
# the internal-coordinate Timewarp flow and of the backbone (Ramachandran) density, export of their
# mixture, and the benchmark. About 15-25 min of MD, 40 min of flow training, 1 min of density
# training and 20 min of benchmark on 2 cores; every step resumes or is skipped when done.
#   bash scripts/train_ace_ala_nme.sh [WORKDIR]
set -euo pipefail
work=${1:-work/ace-ala-nme}
mkdir -p "$work"
python -m openmm_timewarp.cli generate-data --sequence A --lag-ps 500 --frame-ps 10 --trajectory-ns 5 \
    --pairs 4961 --out "$work/data" --workers 2 --seed 1 --no-progress
# Two stages: 12 epochs at the default learning rate 1e-3 (the validation NLL levels off), then
# 12 more at 2e-4. A stage that has finished is skipped on a rerun (train resumes from last.pt).
resume=()
[ -f "$work/run/last.pt" ] && resume=(--resume)
python -m openmm_timewarp.cli train --data "$work/data" --out "$work/run" --epochs 12 --threads 2 \
    --seed 0 "${resume[@]}"
python -m openmm_timewarp.cli train --data "$work/data" --out "$work/run" --epochs 24 --lr 2e-4 \
    --threads 2 --seed 0 --resume
[ -f "$work/run/backbone.pt" ] || python -m openmm_timewarp.cli train-backbone --data "$work/data" \
    --out "$work/run/backbone.pt" --seed 0
python -m openmm_timewarp.cli export "$work/run/best.pt" "$work/ace-ala-nme.pt" --overwrite \
    --kernels 0 0.9 0.1 --local-step 0.3 --backbone "$work/run/backbone.pt" --backbone-weight 1.0 --max-residues 1
python benchmarks/ala_sampling.py --model "$work/ace-ala-nme.pt" --seconds 300 --json "$work/benchmark.json"
