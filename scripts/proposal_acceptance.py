"""Metropolis-Hastings acceptance of a model's proposals, by the basin they propose a residue into.

From states of a short Timewarp chain on ACE-<sequence>-NME, draws proposals straight from the
model file (the proposal-model contract: ``forward(positions, atom_types, n)``), scores each with
OpenMM's energy as the integrator does, min(1, exp(-beta dE + log_ratio)), and reports, for every
(phi, psi) basin of ``--residue``, how many proposals landed there and their mean acceptance. A
basin whose proposals all score near zero is one the chain can only enter by rare luck: e.g. for RW
the pivots that carry Trp to phi > 0 mostly clash (log acceptance -56 to -71 in the median)::

    PYTHONPATH=. python scripts/proposal_acceptance.py --sequence RW --residue 2
"""
import argparse
from typing import Dict, List, Tuple

import numpy as np
import openmm
import torch
from openmm import unit

from openmm_timewarp import analysis, systems
from openmm_timewarp.integrator import TimewarpIntegrator, _element_symbols
from openmm_timewarp.trained import load_module, model_path
from openmm_timewarp.training.energies import OpenMMReducedEnergy


def basin_acceptance(sequence: str, residue: int, model: str = "dipeptides", states: int = 6,
                     steps_between: int = 1500, proposals: int = 1024, temperature: float = 310.0,
                     seed: int = 1) -> Tuple[Dict[str, List[float]], float]:
    """log MH acceptance of every scored proposal, grouped by the basin it gives residue ``residue``
    (1-based), and the chain's own acceptance rate over the steps it made."""
    if not 1 <= residue <= len(sequence):
        raise ValueError(f"residue must lie in 1..{len(sequence)} for {sequence}, got {residue}")
    topology, positions = systems.peptide_from_sequence(sequence, seed=seed)
    system = systems.create_system(topology)
    start = systems.thermalize(system, positions, temperature, picoseconds=20.0, seed=seed)
    path = model_path(model)
    integrator = TimewarpIntegrator(path, topology, temperature * unit.kelvin, random_seed=seed)
    chain = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    chain.setPositions(start)
    reduced_energy = OpenMMReducedEnergy(system, temperature)
    torch.manual_seed(seed)
    module = load_module(path)
    elements = list(module.elements())
    types = torch.tensor([elements.index(e) for e in _element_symbols(topology)], dtype=torch.int64)
    acceptance: Dict[str, List[float]] = {name: [] for name in analysis.BASIN_NAMES}
    for state in range(states):
        integrator.step(steps_between)
        x = chain.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        with torch.no_grad():
            moves, log_ratio = module(torch.tensor(x, dtype=torch.float64), types, proposals)
        moves = moves.numpy()
        beta_u = reduced_energy.energies_and_forces(np.concatenate([x[None], moves]))[0]
        log_accept = np.minimum(0.0, beta_u[0] - beta_u[1:] + log_ratio.numpy())
        labels = analysis.assign_basins(*analysis.backbone_dihedrals(moves, topology))[:, residue - 1]
        for value, label in zip(log_accept, labels):
            acceptance[analysis.BASIN_NAMES[label]].append(float(value))
        print(f"state {state + 1}/{states} scored", flush=True)
    return acceptance, integrator.getAcceptanceRate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequence", required=True, help="one-letter residues between the caps")
    parser.add_argument("--residue", type=int, default=1, help="residue whose basin is reported, 1-based")
    parser.add_argument("--model", default="dipeptides", help="model file or shipped model name")
    parser.add_argument("--states", type=int, default=6, help="chain states the proposals start from")
    parser.add_argument("--steps-between", type=int, default=1500, help="Timewarp steps between those states")
    parser.add_argument("--proposals", type=int, default=1024, help="proposals scored per state")
    parser.add_argument("--temperature", type=float, default=310.0, help="kelvin")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    try:
        acceptance, chain_rate = basin_acceptance(args.sequence, args.residue, args.model, args.states,
                                                  args.steps_between, args.proposals, args.temperature, args.seed)
    except ValueError as error:
        parser.error(str(error))
    total = args.states * args.proposals
    print(f"{args.sequence} residue {args.residue}: {total} proposals from {args.states} states "
          f"(the chain itself accepted {chain_rate:.3f})")
    print(f"{'basin':8s} {'share':>7s} {'mean acceptance':>16s} {'max':>6s} {'median log acc.':>16s}")
    for name, values in acceptance.items():
        if values:
            accept = np.exp(values)
            print(f"{name:8s} {len(values) / total:7.4f} {accept.mean():16.3g} {accept.max():6.3f} "
                  f"{np.median(values):16.1f}")


if __name__ == "__main__":
    main()
