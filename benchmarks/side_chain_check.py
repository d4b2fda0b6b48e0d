"""One residue's backbone sub-state and side-chain rotamers: MD with HBonds + HMR against a Timewarp chain.

Both start from the same thermalized structure and run for ``--seconds`` of wall time on one
core. For ``--residue`` (0-based, between the caps) it prints the share of frames in a region of
the Ramachandran map (default: the alpha_R psi range with phi below -110 deg, where the CHRN
reference puts 17% of Arg and the model's chains 1.5-9%, docs/tetrapeptides.md) with the two
halves' shares, and each chi angle's g-/t/g+ populations (g- in [-120, 0), g+ in [0, 120)).
The reference runs of make-reference save only phi and psi, so this pair is the check on
the side chain.

    OPENMM_CPU_THREADS=1 python benchmarks/side_chain_check.py --sequence CHRN --residue 2
"""
from __future__ import annotations

import argparse
import json

import mdtraj as md
import numpy as np
import openmm as mm
import torch

from openmm_timewarp import analysis
from openmm_timewarp.benchmarking import USER_PRACTICE_STEP_FS, md_run, thermalized_peptide, timewarp_run

CHI_FUNCTIONS = (md.compute_chi1, md.compute_chi2, md.compute_chi3, md.compute_chi4)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default="CHRN", help="one-letter sequence between the caps")
    parser.add_argument("--residue", type=int, default=2, help="0-based residue between the caps")
    parser.add_argument("--model", default="dipeptides-compiled")
    parser.add_argument("--seconds", type=float, default=300.0, help="wall time of each run")
    parser.add_argument("--phi-below", type=float, default=-110.0, help="the region: phi below this (deg) ...")
    parser.add_argument("--psi-range", type=float, nargs=2, default=(-120.0, 50.0), help="... and psi in this range")
    parser.add_argument("--runs", nargs="+", choices=("md-hmr", "timewarp"), default=["md-hmr", "timewarp"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write the numbers here")
    return parser.parse_args()


def rotamers(chi: np.ndarray) -> dict:
    """g-, t and g+ populations of chi angles in degrees."""
    minus, plus = (chi >= -120) & (chi < 0), (chi >= 0) & (chi < 120)
    return {"g-": float(minus.mean()), "t": float((~minus & ~plus).mean()), "g+": float(plus.mean())}


def describe(frames: np.ndarray, topology, residue: int, args: argparse.Namespace) -> dict:
    """The region's share (and its halves') and the chi rotamer populations of ``residue``."""
    phi, psi = (a[:, residue] for a in analysis.backbone_dihedrals(frames, topology))  # degrees
    inside = (phi < args.phi_below) & (psi > args.psi_range[0]) & (psi < args.psi_range[1])
    n = len(inside)
    result = {"frames": n, "region": float(inside.mean()),
              "halves": [float(inside[: n // 2].mean()), float(inside[n // 2:].mean())]}
    halves = {}
    trajectory = md.Trajectory(frames, md.Topology.from_openmm(topology))
    target = [r for r in trajectory.topology.residues if r.name not in ("ACE", "NME")][residue]
    for k, compute in enumerate(CHI_FUNCTIONS, 1):
        indices, angles = compute(trajectory)
        for j, quad in enumerate(indices):
            if trajectory.topology.atom(quad[1]).residue == target:
                chi = np.degrees(angles[:, j])
                result[f"chi{k}"] = rotamers(chi)
                halves[f"chi{k}"] = [rotamers(chi[: n // 2]), rotamers(chi[n // 2:])]
    result["chi_halves"] = halves
    return result


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    topology, system, start = thermalized_peptide(args.sequence, args.seed)
    launch = {"md-hmr": lambda: md_run(topology, start, args.seconds, USER_PRACTICE_STEP_FS, 1.0,
                                       mm.Platform.getPlatformByName("CPU"), args.seed, True),
              "timewarp": lambda: timewarp_run(args.model, topology, system, start, args.seconds, args.seed)}
    runs = {name: launch[name]() for name in args.runs}
    results = {}
    for name, run in runs.items():
        frames = run["frames"]
        frames = frames[:: max(1, len(frames) // 60000)]  # at most about 60,000 frames for mdtraj
        results[name] = describe(frames, topology, args.residue, args)
        r = results[name]
        chis = "  ".join(f"{k} " + "/".join(f"{r[k][s]:.2f}" for s in ("g-", "t", "g+"))
                         + " (halves " + ", ".join("/".join(f"{h[s]:.2f}" for s in ("g-", "t", "g+"))
                                                   for h in r["chi_halves"][k]) + ")"
                         for k in sorted(r) if k.startswith("chi") and k != "chi_halves")
        print(f"{name}: {r['frames']} frames, region {r['region']:.3f} (halves {r['halves'][0]:.3f}, "
              f"{r['halves'][1]:.3f});  g-/t/g+: {chis}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
