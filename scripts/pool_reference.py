"""Pool several ``make_reference.py`` runs of one peptide into one reference.

Every run samples the same distribution through its own frozen bias, so each is an estimator of
it: its frames keep their weights exp(+beta V) normalised within the run, and the runs enter in
proportion to their Kish effective sizes (inverse-variance weighting when the frames of every run
are equally correlated).  Block b of the pool holds block b of every run, so the block errors and
the half-vs-half JSD still compare independent stretches of sampling.  The runs must share the
sequence and temperature (read from each work folder's ``config.json``).

    PYTHONPATH=. python scripts/pool_reference.py --sequence KM \\
        --work runs/reference/ace-lys-met-nme_310K runs/reference/ace-lys-met-nme_310K.res
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List

import numpy as np
from make_reference import build_ns, kish_size, load_production, log, saved_command, system_metadata, write_reference

from openmm_timewarp.analysis.reference import reference_name
from openmm_timewarp.systems import peptide_from_sequence


def read_run(work: str) -> Dict[str, object]:
    """A run's settings, frames and normalised weights."""
    path = os.path.join(work, "config.json")
    if not os.path.exists(path):
        raise SystemExit(f"{work}: no config.json, not a make_reference.py work folder")
    with open(path) as f:
        config = json.load(f)
    phi, psi, weights, n_chunks = load_production(work, config["temperature"])
    if n_chunks < 2:
        raise SystemExit(f"{work}: fewer than 2 production chunks")
    return {"work": work, "config": config, "phi": phi, "psi": psi, "weights": weights / weights.sum(),
            "production_ns": n_chunks * config["chunk_ns"],
            "kish": kish_size(weights)}


def pool(runs: List[Dict[str, object]], shares: List[float], n_blocks: int):
    """(phi, psi, weights) of the pool, ordered block by block (block b of every run, in turn);
    run i's weights sum to ``shares[i]``."""
    parts = []
    for r, share in zip(runs, shares):
        n = len(r["weights"]) // n_blocks * n_blocks  # equal blocks; at most n_blocks - 1 frames dropped
        parts.append([np.array_split(a[:n], n_blocks) for a in (r["phi"], r["psi"], r["weights"] * share)])
    return tuple(np.concatenate([p[k][b] for b in range(n_blocks) for p in parts]) for k in range(3))


def main(argv: List[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", required=True, help="one-letter residues between the caps")
    parser.add_argument("--work", nargs="+", required=True, help="the runs' work folders")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per run for the error bars (even)")
    parser.add_argument("--out", default=None, help="default: openmm_timewarp/reference/<name>.npz")
    args = parser.parse_args(argv)
    if args.blocks < 2 or args.blocks % 2:
        parser.error("--blocks must be even: the halves of the pool are its first and last blocks")
    sequence = args.sequence.upper()
    runs = [read_run(w) for w in args.work]
    for r in runs:
        config = r["config"]
        if config["sequence"] != sequence or config["temperature"] != runs[0]["config"]["temperature"]:
            raise SystemExit(f"{r['work']}: sequence {config['sequence']} at {config['temperature']} K, not "
                             f"{sequence} at {runs[0]['config']['temperature']} K as the first run")
    first = argparse.Namespace(**runs[0]["config"])
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = args.out or os.path.join(root, "openmm_timewarp", "reference",
                                   reference_name(sequence, first.temperature) + ".npz")
    total_kish = sum(r["kish"] for r in runs)
    shares = [r["kish"] / total_kish for r in runs]
    phi, psi, weights = pool(runs, shares, args.blocks)
    described = [{"work": os.path.relpath(r["work"], root), "settings": r["config"], "command": saved_command(r["work"]),
                  "production_ns": r["production_ns"], "simulated_ns": build_ns(r["config"]) + r["production_ns"],
                  "kish_effective_frames": r["kish"], "share": share} for r, share in zip(runs, shares)]
    metadata = system_metadata(peptide_from_sequence(sequence)[0], sequence, first)
    for key, setting in (("timestep_fs", "timestep_fs"), ("friction_per_ps", "friction"), ("hydrogen_mass_amu", "hmr")):
        values = sorted({r["config"][setting] for r in runs})
        if len(values) > 1:  # the runs' own settings are in "runs"
            metadata[key] = values
    metadata.update({
        "method": "pooled static-bias runs of make_reference.py (see runs)",
        "estimator": "each run's frames weighted by exp(+beta V_frozen), normalised within the run, runs "
                     "weighted by their Kish sizes; errors: standard error of block means, block b = block b "
                     "of every run",
        "runs": described,
        "production_ns": sum(r["production_ns"] for r in runs),
        "simulated_ns": sum(d["simulated_ns"] for d in described),
        "command": " ".join(["python"] + sys.argv),
    })
    sizes = ", ".join(f"{r['kish']:.0f}" for r in runs)
    log(f"{sequence}: pooling {len(runs)} runs, Kish sizes {sizes}")
    write_reference(out, phi, psi, weights, args.blocks, metadata)


if __name__ == "__main__":
    main(sys.argv[1:])
