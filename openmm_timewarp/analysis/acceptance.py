"""Metropolis-Hastings acceptance of a model's proposals, by the basin they propose a residue into.

From states of a short Timewarp chain on ACE-<sequence>-NME, proposals are drawn straight from the
model file (the proposal-model contract: ``forward(positions, atom_types, n)``) and scored with
OpenMM's energy as the integrator scores them, min(1, exp(-beta dE + log_ratio)).  A basin whose
proposals all score near zero is one the chain can only enter by rare luck.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Dict, List, Tuple

import numpy as np

from ..errors import InputError
from .basins import BASIN_NAMES, assign_basins
from .dihedrals import backbone_dihedrals

__all__ = ["AcceptanceSettings", "basin_acceptance"]

log = logging.getLogger("openmm_timewarp.analysis")


@dataclasses.dataclass(frozen=True)
class AcceptanceSettings:
    """Which proposals :func:`basin_acceptance` scores.

    ``residue`` is 1-based; ``states`` chain states, ``steps_between`` Timewarp steps apart, each
    with ``proposals`` scored proposals; temperature in K.

    Raises
    ------
    InputError
        On construction, if ``residue`` is not a residue of ``sequence``.
    """

    sequence: str
    residue: int = 1
    model: str = "dipeptides"
    states: int = 6
    steps_between: int = 1500
    proposals: int = 1024
    temperature: float = 310.0
    seed: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequence", self.sequence.upper())
        if not 1 <= self.residue <= len(self.sequence):
            raise InputError(f"residue must lie in 1..{len(self.sequence)} for {self.sequence}, got {self.residue}")


def _score(module, reduced_energy, x: np.ndarray, types, n: int) -> Tuple[np.ndarray, np.ndarray]:
    """Proposals from ``x`` and their log acceptance min(0, -beta dU + log_ratio)."""
    import torch

    with torch.no_grad():
        moves, log_ratio = module(torch.tensor(x, dtype=torch.float64), types, n)
    moves = moves.numpy()
    beta_u = reduced_energy.energies_and_forces(np.concatenate([x[None], moves]))[0]
    return moves, np.minimum(0.0, beta_u[0] - beta_u[1:] + log_ratio.numpy())


def basin_acceptance(settings: AcceptanceSettings) -> Tuple[Dict[str, List[float]], float]:
    """Score a model's proposals from states of its own chain.

    Returns
    -------
    acceptance : dict
        Basin name -> log MH acceptance of every scored proposal that puts residue
        ``settings.residue`` in that basin.
    chain_rate : float
        The chain's own acceptance rate over the steps it made.
    """
    import openmm
    import torch
    from openmm import unit

    from .. import systems
    from ..integrator import TimewarpIntegrator
    from ..model_file import ModelFile
    from ..training.energies import OpenMMReducedEnergy

    topology, positions = systems.peptide_from_sequence(settings.sequence, seed=settings.seed)
    system = systems.create_system(topology)
    start = systems.thermalize(system, positions, settings.temperature, picoseconds=20.0, seed=settings.seed)
    model = ModelFile.open(settings.model)
    integrator = TimewarpIntegrator(model.path, topology, settings.temperature * unit.kelvin,
                                    random_seed=settings.seed)
    chain = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    chain.setPositions(start)
    reduced_energy = OpenMMReducedEnergy(system, settings.temperature)
    torch.manual_seed(settings.seed)
    if model.module is None:
        raise InputError(f"{model.name} is a compiled (contract v2) file; analyse the TorchScript file it was "
                         "compiled from, which proposes the same law")
    model.check_elements([a.element.symbol for a in topology.atoms()])
    types = torch.tensor([model.elements.index(a.element.symbol) for a in topology.atoms()], dtype=torch.int64)
    acceptance: Dict[str, List[float]] = {name: [] for name in BASIN_NAMES}
    for state in range(settings.states):
        integrator.step(settings.steps_between)
        x = chain.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        moves, log_accept = _score(model.module, reduced_energy, x, types, settings.proposals)
        labels = assign_basins(*backbone_dihedrals(moves, topology))[:, settings.residue - 1]
        for value, label in zip(log_accept, labels):
            acceptance[BASIN_NAMES[label]].append(float(value))
        log.info("state %d/%d scored", state + 1, settings.states)
    return acceptance, integrator.getAcceptanceRate()
