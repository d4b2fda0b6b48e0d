#!/usr/bin/env bash
# The recipe of the shipped default model openmm_timewarp/trained/dipeptides.pt, from nothing:
# MD data of 24 train dipeptides (chosen by the fixed rule of make_dipeptide_data.py) and of
# ACE-ALA-NME, the transferable backbone (Ramachandran) density fitted to all of it, the transferable
# flow fitted to the dipeptides (it moves molecules without a backbone), their export, the references
# of the validation dipeptides and the validation benchmarks.
# About 2 h of dipeptide MD on one core, the ACE-ALA-NME recipe for its data and flow (see
# train_ace_ala_nme.sh), 2 min of density and 30 min of flow training, 3 h of references and 40 min
# of benchmarks;
# every step resumes or is skipped when done.
#   bash scripts/train_dipeptides.sh [WORKDIR]
set -euo pipefail
work=${1:-work}
split=../shared/data/dipeptide_split.json
bash scripts/train_ace_ala_nme.sh "$work/ace-ala-nme"   # ACE-ALA-NME data and flow
python scripts/make_dipeptide_data.py --split "$split" --out "$work/dipeptides" --count 14
folders=$(python -c "import json, sys; print(' '.join(sys.argv[1] + '/' + s for s in json.load(open(sys.argv[1] + '/sequences.json'))['sequences']))" "$work/dipeptides")
[ -f "$work/dipeptides-backbone.pt" ] || python -m openmm_timewarp.training.backbone \
    --data "$work/ace-ala-nme/data" $folders --out "$work/dipeptides-backbone.pt" --seed 0 --rare-start-weight 0.1
# The transferable flow: all dipeptide folders (in alphabetical order), likelihood, then the acceptance loss.
[ -f "$work/tflow/run/finetuned.pt" ] || OMP_NUM_THREADS=1 python -m openmm_timewarp.training.train \
    --data $(ls -d "$work"/dipeptides/*/) --out "$work/tflow/run" --epochs 40 --acceptance-epochs 3 --seed 0 --threads 1
python -m openmm_timewarp.models.export "$work/tflow/run/finetuned.pt" "$work/dipeptides.pt" --overwrite \
    --kernels 0 0.9 0.1 --local-step 0.3 --backbone "$work/dipeptides-backbone.pt" --backbone-weight 1.0 \
    --max-residues 4 --side-chains 0.3 0.5 0.2 0.0 --basin-prior 0.1 0.35
# References of every 5th validation dipeptide but RW and TT (6 ns of this leaves those two unconverged; see
# openmm_timewarp/reference/README.md); GM, KM and ML extended to 12 ns (the run resumes); then the benchmarks.
PYTHONPATH=. python scripts/make_reference.py --sequence AC DE GM KM ML PS --bias-factor 3 --build-ns 3 \
    --production-ns 6 --chunk-ns 1 --save-ps 1 --finalize-every 2
PYTHONPATH=. python scripts/make_reference.py --sequence GM KM ML --bias-factor 3 --build-ns 3 \
    --production-ns 12 --chunk-ns 1 --save-ps 1 --finalize-every 2
PYTHONPATH=. python benchmarks/flow_transfer.py --checkpoints "$work/ace-ala-nme/run/best.pt" \
    "$work/tflow/run/best.pt" "$work/tflow/run/finetuned.pt"
PYTHONPATH=. python benchmarks/dipeptide_validation.py --model "$work/dipeptides.pt" --seconds 300 \
    --json "$work/dipeptide-validation.json"
