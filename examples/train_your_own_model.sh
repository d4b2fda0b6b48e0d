#!/usr/bin/env bash
# Train a small Timewarp model of your own end to end and sample with it (a few minutes on 2 cores):
#   MD pairs -> maximum-likelihood training -> TorchScript export -> sampling with Metropolis-Hastings.
# The sizes here are a toy run to show the pipeline: expect a low acceptance rate. For a real model
# generate far more data (see docs/proposals-notes.md) and train longer.
#   bash examples/train_your_own_model.sh [WORKDIR]
set -euo pipefail
work=${1:-my-timewarp-model}
if [ -e "$work" ]; then
    echo "$work exists; give another folder (nothing is overwritten)" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
openmm-timewarp generate-data --sequence A --out "$work/data" --pairs 800 --lag-ps 2 --frame-ps 0.5 \
    --trajectory-ns 0.1 --seed 1
openmm-timewarp train --data "$work/data" --out "$work/run" --epochs 3 --seed 0 --threads 1
openmm-timewarp export "$work/run/best.pt" "$work/model.pt"
openmm-timewarp sample "$here/data/ace-ala-nme.pdb" --model "$work/model.pt" --steps 300 --frame-every 10 \
    --out "$work/sample" --no-progress
cat "$work/sample/summary.txt"
