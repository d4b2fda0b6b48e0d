#!/usr/bin/env bash
# Regenerate the shipped TITO model openmm_timewarp/trained/dipeptides-tito.pt from nothing:
# MD data of 24 train dipeptides and ACE-ALA-NME, training, export. Usage:
#   bash scripts/train_tito_model.sh WORKDIR [OUT.pt]
# About 75 min of MD and 10 min of training on 2 cores. Every step resumes when rerun.
set -euo pipefail
work=${1:?usage: train_tito_model.sh WORKDIR [OUT.pt]}
out=${2:-$work/dipeptides-tito.pt}
split=$(dirname "$0")/../../shared/data/dipeptide_split.json
export OMP_NUM_THREADS=1
# 24 train dipeptides chosen (seed 7, the best of 2,000 draws) to cover every amino acid in both positions.
sequences="AP CS DQ EN FP GT HP ID IL KR LT LV LW MC NM PF QA RC SG TL TQ WI WP YY"
openmm-timewarp generate-data --split "$split" --sequence $sequences --out "$work/data" --pairs 400 \
    --lag-ps 10 --frame-ps 10 --trajectory-ns 2 --workers 2 --seed 11
openmm-timewarp generate-data --sequence A --out "$work/data/A" --pairs 800 --lag-ps 10 --frame-ps 10 \
    --trajectory-ns 2 --workers 1 --seed 12
if [ -f "$work/run/last.pt" ]; then resume=--resume; else resume=; fi
openmm-timewarp train-tito --data "$work/data" --out "$work/run" --epochs 24 --steps-per-epoch 250 \
    --max-lag-ps 1500 --lag-ps 1000 --seed 0 --threads 2 $resume
openmm-timewarp export "$work/run/best.pt" "$out" --lag-ps 1000 --tito-sampling 10 4 --hmc-interval 1 \
    --hmc-steps 60 --hmc-step-size-ps 0.002 --hmc-minimum-mass-amu 4 --max-residues 2 --overwrite
