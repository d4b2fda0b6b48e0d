#!/usr/bin/env bash
# The recipe of the shipped default model openmm_timewarp/trained/dipeptides.pt, from nothing:
# MD data of 24 train dipeptides (chosen by the fixed rule of make_dipeptide_data.py) and of
# ACE-ALA-NME, the transferable backbone (Ramachandran) density fitted to all of it, the transferable
# flow fitted to the dipeptides (it moves molecules without a backbone), their export, the references
# of the validation dipeptides and the validation benchmarks.
# About 2 h of dipeptide MD on one core, the ACE-ALA-NME recipe for its data and flow (see
# train_ace_ala_nme.sh), 2 min of density and 30 min of flow training, 6.5 h of references and 45 min
# of benchmarks;
# every step resumes or is skipped when done.
#   bash scripts/train_dipeptides.sh [WORKDIR]
set -euo pipefail
work=${1:-work}
split=../shared/data/dipeptide_split.json
bash scripts/train_ace_ala_nme.sh "$work/ace-ala-nme"   # ACE-ALA-NME data and flow
python scripts/make_dipeptide_data.py --split "$split" --out "$work/dipeptides" --count 14
folders=$(python -c "import json, sys; print(' '.join(sys.argv[1] + '/' + s for s in json.load(open(sys.argv[1] + '/sequences.json'))['sequences']))" "$work/dipeptides")
[ -f "$work/dipeptides-backbone.pt" ] || python -m openmm_timewarp.cli train-backbone \
    --data "$work/ace-ala-nme/data" $folders --out "$work/dipeptides-backbone.pt" --seed 0 --rare-start-weight 0.1
# The transferable flow: all dipeptide folders (in alphabetical order), likelihood, then the acceptance loss.
[ -f "$work/tflow/run/finetuned.pt" ] || OMP_NUM_THREADS=1 python -m openmm_timewarp.cli train \
    --data $(ls -d "$work"/dipeptides/*/) --out "$work/tflow/run" --epochs 40 --acceptance-epochs 3 --seed 0 --threads 1
python -m openmm_timewarp.cli export "$work/tflow/run/finetuned.pt" "$work/dipeptides.pt" --overwrite \
    --kernels 0 0.9 0.1 --local-step 0.3 --backbone "$work/dipeptides-backbone.pt" --backbone-weight 1.0 \
    --max-residues 4 --side-chains 0.3 0.5 0.2 0.0 --basin-prior 0.1 0.35
# References of every 5th validation dipeptide (see openmm_timewarp/reference/README.md):
# independent static-bias runs per peptide (metadynamics on two torsions, PS also on three, and, but for
# glycine-containing GM, --residue-bias runs), then pooled into the shipped files. Every run resumes.
ref() { python -m openmm_timewarp.cli make-reference --bias-factor 3 --chunk-ns 1 --save-ps 1 --finalize-every 2 "$@"; }
ref --sequence AC DE GM KM ML PS --build-ns 3 --production-ns 6
ref --sequence GM ML PS --build-ns 3 --production-ns 12
ref --sequence KM --build-ns 3 --production-ns 23
ref --sequence PS --build-ns 3 --production-ns 12 --bias-torsions psi1 phi2 psi2 --grid 37 \
    --work runs/reference/ace-pro-ser-nme_310K.psi --out runs/extended/ace-pro-ser-nme_310K.psi.npz
for spec in KM:8 ML:8 AC:8 DE:6 PS:6; do
  s=${spec%%:*}; name=$(PYTHONPATH=. python -c "from openmm_timewarp import analysis; print(analysis.reference_name('$s'))")
  ref --sequence "$s" --residue-bias --production-ns "${spec##*:}" --work "runs/reference/$name.res" \
      --out "runs/extended/$name.res.npz"
  python -m openmm_timewarp.cli pool-reference --sequence "$s" --work runs/reference/"$name"{,.res} \
      $([ "$s" = PS ] && echo "runs/reference/$name.psi")
done
# TT: each Thr's chi1 holds its backbone for ns (residue-bias runs stayed in one rotamer), so its runs add
# metadynamics on both chi1 under the residue bias (seeds 3 and 4 at 1.5 fs: two of three runs at 2 fs blew up).
tt=runs/reference/ace-thr-thr-nme_310K
for spec in 2:2 3:1.5 4:1.5; do
  ref --sequence TT --residue-bias --bias-torsions chi1_1 chi1_2 --build-ns 3 --production-ns 8 --seed "${spec%%:*}" \
      --timestep-fs "${spec##*:}" --work "$tt.chi-seed${spec%%:*}" --out "runs/extended/ace-thr-thr-nme_310K.chi-seed${spec%%:*}.npz"
done
python -m openmm_timewarp.cli pool-reference --sequence TT --work "$tt".chi-seed{2,3,4}
# RW: Trp's chi1 holds both residues' backbones (with it frozen, Arg stayed in alpha_R), so its runs add
# metadynamics on Trp's chi1 alone under the residue bias, at 1.5 fs.
rw=runs/reference/ace-arg-trp-nme_310K
for seed in 1 2 3 4; do
  ref --sequence RW --residue-bias --bias-torsions chi1_2 --build-ns 3 --production-ns 8 --seed "$seed" \
      --timestep-fs 1.5 --work "$rw.trp-seed$seed" --out "runs/extended/ace-arg-trp-nme_310K.trp-seed$seed.npz"
done
python -m openmm_timewarp.cli pool-reference --sequence RW --work "$rw".trp-seed{1,2,3,4}
PYTHONPATH=. python benchmarks/flow_transfer.py --checkpoints "$work/ace-ala-nme/run/best.pt" \
    "$work/tflow/run/best.pt" "$work/tflow/run/finetuned.pt"
PYTHONPATH=. python benchmarks/dipeptide_validation.py --model "$work/dipeptides.pt" --seconds 300 \
    --json "$work/dipeptide-validation.json" --dihedrals "$work/dipeptide-validation-dihedrals.npz"
