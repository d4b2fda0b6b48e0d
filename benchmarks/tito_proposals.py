"""Are a TITO model's moves physical? Energy change and bond-length error of its proposals, per lag.

From one thermalized structure of the peptide, ``--proposals`` moves at each lag: the change of
the potential energy (the System of ``openmm_timewarp.systems``), the r.m.s. error of the bond
lengths against the start (bonds barely change over any lag), and the fraction of moves that
``TitoIntegrator`` would keep at its energy threshold.

    python benchmarks/tito_proposals.py --model tito.pt --sequence A --lags-ps 20 100 1000
"""
from __future__ import annotations

import argparse

import numpy as np
import openmm as mm
import torch
from openmm import unit

from openmm_timewarp import systems
from openmm_timewarp.model_file import ModelFile, resolve_model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="TITO model file")
    parser.add_argument("--sequence", default="A")
    parser.add_argument("--lags-ps", type=float, nargs="+", default=[20.0, 100.0, 1000.0])
    parser.add_argument("--proposals", type=int, default=32)
    parser.add_argument("--threshold", type=float, default=300.0, help="kJ/mol, as TitoIntegrator's default")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    path = resolve_model_path(args.model)
    with open(path, "rb") as f:  # a module of its own, not ModelFile.open's shared one: set_lag_ps changes it
        module = ModelFile.from_bytes(f.read(), path=path).module
    topology, positions = systems.peptide_from_sequence(args.sequence, seed=args.seed)
    system = systems.create_system(topology)
    start = systems.thermalize(system, positions, 310.0, picoseconds=5.0, seed=args.seed).value_in_unit(unit.nanometer)
    types = torch.tensor([module.elements().index(atom.element.symbol) for atom in topology.atoms()])
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    bonds = np.array([(a.index, b.index) for a, b in topology.bonds()])

    def energy(x: np.ndarray) -> float:
        context.setPositions(x)
        return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)

    def bond_lengths(x: np.ndarray) -> np.ndarray:
        return np.linalg.norm(x[bonds[:, 0]] - x[bonds[:, 1]], axis=-1)

    e0, b0 = energy(start), bond_lengths(start)
    print(f"{'lag ps':>8s} {'dE median':>10s} {'dE min':>8s} {'bond rms nm':>12s} {'kept':>6s}")
    for lag in args.lags_ps:
        module.set_lag_ps(lag)
        proposals, _ = module(torch.tensor(start, dtype=torch.float64), types, args.proposals)
        de = np.array([energy(x) - e0 for x in proposals.numpy()])
        rms = np.mean([np.sqrt(np.mean((bond_lengths(x) - b0) ** 2)) for x in proposals.numpy()])
        print(f"{lag:8g} {np.median(de):10.1f} {de.min():8.1f} {rms:12.4f} {np.mean(de < args.threshold):6.2f}")


if __name__ == "__main__":
    main()
