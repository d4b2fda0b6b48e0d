"""Long unbiased MD of a capped peptide, in resumable chunks, and one residue's sub-state and rotamers from it.

The CHRN reference (biased MD reweighted on phi and psi) puts 17% of Arg in a sub-state of alpha_R
with phi below -110 deg; 4.8 ns of unbiased MD and the model's chains put about 5% there, and MD and
the chain disagree on Arg's chi2/chi3 rotamers (docs/tetrapeptides.md). This script runs the
check that settles it: unbiased Langevin MD of the System Timewarp samples (amber14 + OBC2, no
constraints), with 4 amu hydrogens (masses do not change the configurational distribution) and
2 fs steps, as the reference runs use, saving every frame's positions.

Each chunk (``chunk_NNNNN.npz``: positions in nm as float32, and an OpenMM checkpoint) is written
atomically; rerunning the command resumes from the last complete chunk exactly as an uninterrupted
run would continue. ``--report`` reads the chunks and prints :func:`side_chain_check.describe`
for the residue, with the spread of the region's share over ``--blocks`` blocks, and every
residue's basin populations (standard errors from the blocks) and JSD to the shipped reference.

    OPENMM_CPU_THREADS=1 nohup nice -n 10 python -u benchmarks/long_md.py --sequence CHRN \\
        --work runs/longmd/CHRN --ns 200 --max-wall-minutes 150 >> runs/longmd/CHRN.log 2>&1 &
    python benchmarks/long_md.py --sequence CHRN --work runs/longmd/CHRN --report 2
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import openmm as mm
from openmm import unit

from openmm_timewarp import analysis, systems
from openmm_timewarp.benchmarking import TEMPERATURE
from openmm_timewarp.reference.finalize import POPULATION_NAMES, block_populations
from openmm_timewarp.reference.production import chunk_paths
from openmm_timewarp.reference.simulation import save_atomic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_chain_check import describe  # noqa: E402  (a sibling script)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", default="CHRN", help="one-letter sequence between the caps")
    parser.add_argument("--work", required=True, help="run folder (chunks and checkpoints)")
    parser.add_argument("--ns", type=float, default=200.0, help="total simulated time")
    parser.add_argument("--chunk-ns", type=float, default=1.0)
    parser.add_argument("--frame-ps", type=float, default=1.0)
    parser.add_argument("--timestep-fs", type=float, default=2.0)
    parser.add_argument("--max-wall-minutes", type=float, default=1e9, help="stop between chunks after this")
    parser.add_argument("--platform", default="Reference",
                        help="OpenMM platform; Reference runs this size 3.4x faster than CPU here (one core)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--report", type=int, metavar="RESIDUE", help="0-based residue between the caps: report, do not run")
    parser.add_argument("--blocks", type=int, default=10, help="blocks for the spread of the region's share")
    parser.add_argument("--phi-below", type=float, default=-110.0, help="the region: phi below this (deg) ...")
    parser.add_argument("--psi-range", type=float, nargs=2, default=(-120.0, 50.0), help="... and psi in this range")
    parser.add_argument("--json", help="with --report: write the numbers here")
    return parser.parse_args()


def run(args: argparse.Namespace) -> None:
    os.makedirs(args.work, exist_ok=True)
    topology, positions = systems.peptide_from_sequence(args.sequence, seed=args.seed)
    system = systems.create_system(topology, hydrogen_mass=4.0)
    integrator = mm.LangevinMiddleIntegrator(TEMPERATURE, 1 / unit.picosecond, args.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(args.seed)
    platform = mm.Platform.getPlatformByName(args.platform)
    context = mm.Context(system, integrator, platform, {"Threads": "1"} if args.platform == "CPU" else {})
    done = chunk_paths(args.work)
    if done:
        context.loadCheckpoint(np.load(done[-1])["checkpoint"].tobytes())
    else:
        start = systems.thermalize(systems.create_system(topology), positions, TEMPERATURE, picoseconds=20.0,
                                   seed=args.seed)
        context.setPositions(start)
        context.setVelocitiesToTemperature(TEMPERATURE, args.seed)
    stride = int(round(args.frame_ps * 1000 / args.timestep_fs))
    per_chunk = int(round(args.chunk_ns * 1000 / args.frame_ps))
    total = int(round(args.ns / args.chunk_ns))
    began = time.time()
    for k in range(len(done), total):
        if (time.time() - began) / 60 > args.max_wall_minutes:
            print(f"wall-time limit reached after chunk {k}; rerun the command to continue", flush=True)
            return
        frames = np.empty((per_chunk, topology.getNumAtoms(), 3), np.float32)
        for i in range(per_chunk):
            integrator.step(stride)
            frames[i] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        if not np.isfinite(frames).all():
            raise SystemExit(f"chunk {k}: non-finite positions; nothing of this chunk was saved")
        save_atomic(os.path.join(args.work, f"chunk_{k:05d}.npz"), positions=frames,
                    checkpoint=np.frombuffer(context.createCheckpoint(), np.uint8))
        rate = (k + 1 - len(done)) * args.chunk_ns / (time.time() - began) * 60
        print(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}] chunk {k + 1}/{total}: {(k + 1) * args.chunk_ns:.1f} ns, "
              f"{rate:.2f} ns/min", flush=True)


def report(args: argparse.Namespace) -> None:
    paths = chunk_paths(args.work)
    if not paths:
        raise SystemExit(f"no chunks in {args.work}")
    topology, _ = systems.peptide_from_sequence(args.sequence, seed=args.seed)
    frames = np.concatenate([np.load(p)["positions"] for p in paths])
    result = describe(frames, topology, args.report, args)
    blocks = [describe(b, topology, args.report, args)["region"] for b in np.array_split(frames, args.blocks)]
    result.update(simulated_ns=len(paths) * args.chunk_ns, block_regions=blocks,
                  region_standard_error=float(np.std(blocks, ddof=1) / np.sqrt(len(blocks))))
    chis = "  ".join(f"{k} " + "/".join(f"{result[k][s]:.2f}" for s in ("g-", "t", "g+"))
                     for k in sorted(result) if k.startswith("chi") and k != "chi_halves")
    print(f"{result['simulated_ns']:.0f} ns, {result['frames']} frames: region {result['region']:.3f} "
          f"+- {result['region_standard_error']:.3f} (blocks {', '.join(f'{b:.3f}' for b in blocks)});  g-/t/g+: {chis}")
    result["basins"] = basin_report(frames, topology, args.sequence, args.blocks)
    for r, row in enumerate(result["basins"]):
        print(f"residue {r + 1}: " + ", ".join(f"{name} {row['populations'][name]:.3f} +- {row['errors'][name]:.3f}"
                                               for name in analysis.BASIN_NAMES)
              + (f"; JSD to the shipped reference {row['jsd_reference']:.3f}" if "jsd_reference" in row else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


def basin_report(frames: np.ndarray, topology, sequence: str, blocks: int) -> list:
    """Every residue's basin populations with the standard errors of ``blocks`` contiguous blocks
    (:func:`~openmm_timewarp.reference.finalize.block_populations`),
    and the JSD of its (phi, psi) histogram to the shipped reference where there is one."""
    phi, psi = analysis.backbone_dihedrals(frames, topology)
    try:
        reference = analysis.load_reference(analysis.reference_name(sequence))
    except FileNotFoundError:
        reference = None
    rows = []
    for r in range(phi.shape[1]):
        # The references' own block estimator, with every frame weighted alike.
        labels = analysis.assign_basins(phi[:, r], psi[:, r])
        total, errors, per_block = block_populations(labels, np.ones(len(labels)), blocks)
        row = {"populations": dict(zip(POPULATION_NAMES, total.tolist())),
               "errors": dict(zip(POPULATION_NAMES, errors.tolist())), "block_populations": per_block.tolist()}
        if reference is not None:
            row["jsd_reference"] = analysis.jensen_shannon(analysis.ramachandran_histogram(phi[:, r], psi[:, r]),
                                                           reference.histograms[r])
        rows.append(row)
    return rows


if __name__ == "__main__":
    arguments = parse_args()
    report(arguments) if arguments.report is not None else run(arguments)
