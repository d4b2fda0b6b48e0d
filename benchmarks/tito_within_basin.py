"""Where TITO's stationary error lies: the basin populations it is told, or the shape within a basin.

For one capped peptide (amber14 + built-in OBC2, 310 K, Reference platform):

* TITO (``TitoIntegrator``, ``--lag-ps`` per step) is told basin populations: those of the shipped
  reference (``--pi-from-reference``, which removes the exact chain's own error) or those of an
  exact Timewarp chain of ``--equilibrium-seconds`` (as ``openmm-timewarp tito`` does);
* after every TITO move, ``K`` exact Timewarp moves (``--exact-model``, Metropolis-Hastings, no
  hybrid Monte Carlo of their own) restricted to the residues' current basins: a move that changes
  any residue's basin is undone. Metropolis-Hastings times the indicator of a symmetric relation
  is Metropolis-Hastings for the target restricted to the basin, so with enough moves the
  distribution within each basin becomes exact while the basin labels keep TITO's kinetics;
* for each ``K`` of ``--k``: ``--seconds`` of this loop, the Ramachandran JSD of every residue to
  the reference, the JSD a perfect sampler would have with as many independent frames (TITO's
  frames at 1.5 ns are nearly independent), the JSD of the phi and psi marginals, the
  populations and the cost of a move.

    OMP_NUM_THREADS=1 python benchmarks/tito_within_basin.py --sequence TT --k 0 16 --seconds 90 \\
        --pi-from-reference --json tt.json

A diagnostic, not a sampler the package offers: the loop runs in Python between two integrators of
a ``CompoundIntegrator``. Findings: ``docs/tito.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import TimewarpIntegrator, TitoIntegrator, analysis
from openmm_timewarp.analysis.dihedrals import residues_with_phi_and_psi
from openmm_timewarp.benchmarking import TEMPERATURE, thermalized_peptide
from openmm_timewarp.errors import NonErgodicWarning
from openmm_timewarp.proposals.geometry import dihedral

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tito_kinetics import equilibrium_run, jsd_floor  # noqa: E402  (a sibling script)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default="TT", help="one-letter sequence between the caps (with a reference)")
    parser.add_argument("--k", type=int, nargs="+", default=[0, 16], help="exact moves after every TITO move")
    parser.add_argument("--seconds", type=float, default=90.0, help="wall time of each K's run")
    parser.add_argument("--model", default="dipeptides-tito", help="TITO model")
    parser.add_argument("--exact-model", default="dipeptides-compiled", help="Timewarp model of the exact moves")
    parser.add_argument("--lag-ps", type=float, default=1500.0)
    parser.add_argument("--pi-from-reference", action="store_true",
                        help="tell TITO the reference's basin populations instead of an exact chain's")
    parser.add_argument("--equilibrium-seconds", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    return parser.parse_args()


def scores(phi: np.ndarray, psi: np.ndarray, reference, seed: int) -> list:
    """Per residue: JSD to the reference, a perfect sampler's JSD with as many frames, marginal JSDs."""
    rows = []
    for r in range(phi.shape[1]):
        h = analysis.ramachandran_histogram(phi[:, r], psi[:, r])
        ref = reference.histograms[r] / reference.histograms[r].sum()
        rows.append({"jsd": analysis.jensen_shannon(h, ref), "jsd_perfect_sampler": jsd_floor(ref, len(phi), seed),
                     "jsd_phi": analysis.jensen_shannon(h.sum(1), ref.sum(1)),
                     "jsd_psi": analysis.jensen_shannon(h.sum(0), ref.sum(0)),
                     "populations": {n: p for n, (p, _) in analysis.basin_populations(phi[:, r], psi[:, r]).items()}})
    return rows


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    topology, system, start = thermalized_peptide(args.sequence, args.seed)
    reference = analysis.load_reference(analysis.reference_name(args.sequence))
    _, phi_atoms, psi_atoms = residues_with_phi_and_psi(topology)
    phi_atoms, psi_atoms = torch.from_numpy(phi_atoms), torch.from_numpy(psi_atoms)

    def basins(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x)
        angles = [np.degrees(-dihedral(*(t[q[:, i]] for i in range(4))).numpy()) for q in (phi_atoms, psi_atoms)]
        return analysis.assign_basins(*angles)

    if args.pi_from_reference:
        pi = [[reference.residue_populations[r][n][0] for n in analysis.BASIN_NAMES]
              for r in range(len(reference.residue_populations))]
        source = "reference"
    else:
        pi = equilibrium_run(topology, system, start, args.equilibrium_seconds, args.seed)["basin_populations"]
        source = f"exact chain of {args.equilibrium_seconds:g} s"
    results = {"settings": vars(args), "basin_populations": pi, "runs": {}}
    print(f"{analysis.reference_name(args.sequence)}: basin populations told ({source}) {np.round(pi, 3).tolist()}", flush=True)
    for k in args.k:
        tito = TitoIntegrator(args.model, topology, TEMPERATURE, args.lag_ps * unit.picosecond,
                              random_seed=args.seed, basin_populations=pi)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonErgodicWarning)  # TITO's own relaxation moves bonds and angles
            exact = TimewarpIntegrator(args.exact_model, topology, TEMPERATURE, random_seed=args.seed + 7,
                                       hmc_interval=0)
        compound = mm.CompoundIntegrator()
        compound.addIntegrator(tito)
        compound.addIntegrator(exact)
        context = mm.Context(system, compound, mm.Platform.getPlatformByName("Reference"))
        context.setPositions(start)

        def positions_now() -> np.ndarray:
            return context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)

        frames, moved, tried = [], 0, 0
        began = time.perf_counter()
        while time.perf_counter() - began < args.seconds:
            compound.setCurrentIntegrator(0)
            compound.step(1)
            x = positions_now()
            if k:
                compound.setCurrentIntegrator(1)
                labels = basins(x)
                for _ in range(k):
                    compound.step(1)
                    y = positions_now()
                    tried += 1
                    if (basins(y) != labels).any():
                        context.setPositions(x)
                    else:
                        moved += not np.array_equal(x, y)
                        x = y
            frames.append(x)
        seconds = time.perf_counter() - began
        phi, psi = analysis.backbone_dihedrals(np.array(frames), topology)
        run = {"moves": len(frames), "ms_per_move": 1000 * seconds / len(frames),
               "exact_moves_kept": moved / max(tried, 1), "residues": scores(phi, psi, reference, args.seed)}
        results["runs"][k] = run
        print(f"K = {k}: {run['moves']} TITO moves, {run['ms_per_move']:.1f} ms each, exact moves kept "
              f"{run['exact_moves_kept']:.2f}", flush=True)
        for r, row in enumerate(run["residues"]):
            print(f"  residue {r + 1}: JSD {row['jsd']:.4f} (perfect sampler {row['jsd_perfect_sampler']:.4f}; "
                  f"phi {row['jsd_phi']:.4f}, psi {row['jsd_psi']:.4f}); "
                  + ", ".join(f"{n} {p:.3f}" for n, p in row["populations"].items()), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1, default=float)


if __name__ == "__main__":
    main()
