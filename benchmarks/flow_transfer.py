"""How well internal-coordinate flows transfer: MH acceptance of each proposal kernel on peptides.

For every peptide it runs a short MD at 310 K (thermalized start, 1 fs Langevin steps, Reference
platform), takes a frame every picosecond, and asks each flow checkpoint for proposals from every
frame with each kernel (full, torsion, local); the mean MH acceptance probability against the
peptide's own energy, and the expected squared jump (acceptance times the mean square atom
displacement), say how useful the flow is there. A peptide outside a flow's training data
measures transfer. Usage::

    PYTHONPATH=. python benchmarks/flow_transfer.py --checkpoints RUN_A/best.pt RUN_B/finetuned.pt \\
        [--sequences AC DE GM KM ML PS] [--frames 64] [--proposals 4]

Prints one table per checkpoint; --json writes the numbers.
"""
import argparse
import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import openmm
import torch
from openmm import unit

from openmm_timewarp import systems
from openmm_timewarp.proposals.export import load_checkpoint
from openmm_timewarp.training.dataset import element_types
from openmm_timewarp.training.energies import OpenMMReducedEnergy

KERNELS = {"full": (1.0, 0.0, 0.0), "torsion": (0.0, 1.0, 0.0), "local 0.3": (0.0, 0.0, 1.0)}
"""Kernel weights (full, torsion, local) of each measured kernel; local steps at 0.3 of the move scale."""


def md_frames(sequence: str, frames: int, seed: int) -> Dict:
    """``frames`` MD frames 1 ps apart (nm), the element symbols and the System of a capped peptide."""
    topology, positions = systems.peptide_from_sequence(sequence, seed=seed)
    system = systems.create_system(topology)
    start = systems.thermalize(system, positions, 310.0, picoseconds=10.0, seed=seed)
    integrator = openmm.LangevinMiddleIntegrator(310.0 * unit.kelvin, 1.0 / unit.picosecond, 1.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(start)
    context.setVelocitiesToTemperature(310.0 * unit.kelvin, seed)
    out = []
    for _ in range(frames):
        integrator.step(1000)
        out.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
    return {"frames": np.array(out), "elements": [a.element.symbol for a in topology.atoms()], "system": system}


def kernel_acceptance(flow: torch.nn.Module, peptide: Dict, proposals: int, seed: int) -> Dict[str, Dict[str, float]]:
    """Per kernel of ``flow``, from every frame: the mean MH acceptance probability and the expected
    squared jump, E[alpha * mean square atom displacement] (nm^2), which stays small for a kernel
    that is accepted only because its moves are tiny."""
    frames = torch.tensor(peptide["frames"], dtype=torch.float64)
    types = torch.from_numpy(element_types(peptide["elements"], flow.element_symbols, "the flow"))
    energy = OpenMMReducedEnergy(peptide["system"], 310.0)
    result = {}
    for name, weights in KERNELS.items():
        flow.set_kernels(*weights, local_step=0.3)
        torch.manual_seed(seed)
        alphas, jumps = [], []
        with torch.no_grad():
            for x in frames:
                y, log_ratio = flow.propose(x, types, proposals)
                log_alpha = torch.clamp(energy(x[None]) - energy(y.double()) + log_ratio, max=0.0)
                alpha = torch.exp(torch.where(torch.isfinite(log_alpha), log_alpha, torch.full_like(log_alpha, -1e30)))
                alphas.append(alpha)
                jumps.append(alpha * ((y.double() - x) ** 2).sum(-1).mean(-1))
        result[name] = {"acceptance": float(torch.cat(alphas).mean()), "jump_nm2": float(torch.cat(jumps).mean())}
    return result


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True,
                        help="training checkpoints of internal-coordinate flows (RUN/best.pt, RUN/finetuned.pt)")
    parser.add_argument("--sequences", nargs="+", default=["AC", "DE", "GM", "KM", "ML", "PS"],
                        help="peptides (default: the validation dipeptides with a shipped reference)")
    parser.add_argument("--frames", type=int, default=64, help="MD frames per peptide, 1 ps apart")
    parser.add_argument("--proposals", type=int, default=4, help="proposals per frame and kernel")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    peptides = {s: md_frames(s, args.frames, args.seed) for s in args.sequences}
    results = {}
    for checkpoint in args.checkpoints:
        flow, info = load_checkpoint(checkpoint)
        flow.eval()
        trained = set(info.get("sequences", []))
        print(f"\n{checkpoint} (trained on {len(trained)} sequences); {args.frames} frames x {args.proposals} "
              f"proposals per kernel")
        print(f"{'peptide':8s} {'seen':>5s} " + " ".join(f"{k + ' acc.':>15s} {'jump nm2':>9s}" for k in KERNELS))
        rows = {}
        for sequence, peptide in peptides.items():
            rows[sequence] = kernel_acceptance(flow, peptide, args.proposals, args.seed)
            print(f"{sequence:8s} {'yes' if sequence in trained else 'no':>5s} "
                  + " ".join(f"{rows[sequence][k]['acceptance']:15.2e} {rows[sequence][k]['jump_nm2']:9.1e}"
                             for k in KERNELS), flush=True)
        for k in KERNELS:
            print(f"median {k}: acceptance {np.median([r[k]['acceptance'] for r in rows.values()]):.2e}, "
                  f"jump {np.median([r[k]['jump_nm2'] for r in rows.values()]):.1e} nm^2")
        results[str(checkpoint)] = rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
