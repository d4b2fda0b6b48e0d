"""A model on capped peptides longer than it was trained on (issue 20, point 7: reported, not a goal).

For random sequences of 5, 6 and 8 residues (held out: the splits hold 2- and 4-residue peptides
only), drawn with ``--seed``, on one core (``OPENMM_CPU_THREADS=1``) and the platform, Reference or
CPU, that runs the System's MD faster:

* ``timewarp``: ``TimewarpIntegrator`` with Metropolis-Hastings for ``--seconds`` (model loading
  included): acceptance, hybrid Monte Carlo acceptance, steps per second, and the wall time until
  every basin was visited;
* ``explore``: the same in exploration mode (biased), stopped once every basin was visited;
* ``md-hmr``: MD as a user would run it (HBonds, hydrogen mass 4 amu, 4 fs) for ``--seconds``.

"Every basin" has no reference here: it is beta, alpha_R and alpha_L of every residue but proline
(whose phi is held by its ring: beta and alpha_R).  What limits a long peptide is read from the
model's proposals themselves (``analysis.acceptance``): the median log Metropolis-Hastings acceptance
of proposals from states of its own chain, by the basin they put the first and the middle residue
in.

    python -u benchmarks/longer_peptides.py --lengths 5 6 8 --seconds 120 --json longer.json
"""
from __future__ import annotations

import argparse
import json
import warnings
from typing import Dict, List, Tuple

import numpy as np
import torch

from openmm_timewarp import analysis, systems
from openmm_timewarp.analysis.acceptance import AcceptanceSettings, basin_acceptance
from openmm_timewarp.benchmarking import (TEMPERATURE, basin_labels, fastest_platform, first_visit_all, md_run,
                                          timewarp_run)
from openmm_timewarp.domain import ModelDomainWarning
from openmm_timewarp.model_file import DEFAULT_MODEL

#: The 20 residue letters of systems.ONE_TO_THREE (H is HIE, C reduced cysteine).
LETTERS = "ACDEFGHIKLMNPQRSTVWY"


def every_basin(sequence: str) -> List[Tuple[int, str]]:
    """(residue, basin) pairs a run must visit: beta, alpha_R, alpha_L; proline only beta, alpha_R."""
    return [(r, b) for r, letter in enumerate(sequence)
            for b in (("beta", "alpha_R") if letter == "P" else ("beta", "alpha_R", "alpha_L"))]


def visited_time(run: Dict, topology, basins) -> Tuple[float, int]:
    """Wall time by which every basin was visited (nan if not), and how many of them were."""
    labels = basin_labels(run["frames"], topology)
    done = first_visit_all(labels, basins)
    seen = sum(bool(np.any(labels[:, r] == analysis.BASIN_NAMES.index(b))) for r, b in basins)
    return (float(run["times"][done]) if done is not None else float("nan")), seen


def measure(sequence: str, args: argparse.Namespace) -> Dict:
    topology, positions = systems.peptide_from_sequence(sequence, seed=args.seed)
    system = systems.create_system(topology)
    start = systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=args.seed)
    basins = every_basin(sequence)
    platform = fastest_platform(system, start)
    explored = (lambda frames: first_visit_all(basin_labels(frames, topology), basins) is not None)
    tw = timewarp_run(args.model, topology, system, start, args.seconds, args.seed, hmc_interval=None,
                      platform=platform)
    explore = timewarp_run(args.model, topology, system, start, args.seconds, args.seed, explore=True,
                           hmc_interval=None, stop=explored, platform=platform)
    md = md_run(topology, start, args.seconds, 4.0, 1.0, platform, args.seed, True)
    row = {"sequence": sequence, "atoms": topology.getNumAtoms(), "basins": len(basins), "platform": platform.getName(),
           "acceptance": tw["acceptance"], "hmc_acceptance": tw["hmc_acceptance"],
           "steps_per_second": tw["proposals"] / tw["seconds"]}
    for name, run in (("timewarp", tw), ("explore", explore), ("md-hmr", md)):
        row[f"{name}_all_basins_s"], row[f"{name}_basins_seen"] = visited_time(run, topology, basins)
    middle = (len(sequence) + 1) // 2
    for residue in sorted({1, middle}):
        scores, _ = basin_acceptance(AcceptanceSettings(sequence, residue, args.model, states=3,
                                                        steps_between=300, proposals=256, seed=args.seed))
        row[f"log_acceptance_residue_{residue}"] = {b: (float(np.median(v)) if v else None, len(v))
                                                    for b, v in scores.items()}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model file or shipped model name")
    parser.add_argument("--lengths", type=int, nargs="+", default=[5, 6, 8], help="residues between the caps")
    parser.add_argument("--sequences", nargs="+", help="sequences instead of random ones")
    parser.add_argument("--seconds", type=float, default=120.0, help="wall-clock budget of every run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the results here (after every peptide)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # Every peptide here is longer than the model's training peptides: the warning says what this measures.
    warnings.simplefilter("ignore", ModelDomainWarning)
    rng = np.random.default_rng(args.seed)
    sequences = ([s.upper() for s in args.sequences] if args.sequences else
                 ["".join(rng.choice(list(LETTERS), n)) for n in args.lengths])
    print(f"model {args.model}; {args.seconds:.0f} s per run; {', '.join(sequences)}", flush=True)
    rows = []
    for sequence in sequences:
        row = measure(sequence, args)
        rows.append(row)
        print(f"{sequence} ({row['atoms']} atoms, {row['basins']} basins, {row['platform']}): acceptance {row['acceptance']:.3f}, "
              f"HMC {row['hmc_acceptance']:.3f}, {row['steps_per_second']:.0f} steps/s; every basin after "
              + ", ".join(f"{m} {row[f'{m}_all_basins_s']:.0f} s ({row[f'{m}_basins_seen']}/{row['basins']})"
                          for m in ("timewarp", "explore", "md-hmr")), flush=True)
        for key, scores in row.items():
            if key.startswith("log_acceptance_residue_"):
                print(f"  residue {key.rsplit('_', 1)[1]}: median log acceptance by proposed basin "
                      + ", ".join(f"{b} {m:.1f} (n={n})" for b, (m, n) in scores.items() if m is not None), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"model": args.model, "seconds": args.seconds, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
