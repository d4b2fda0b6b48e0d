"""Differentiable reduced energies beta * U from an OpenMM System, for the acceptance loss.

OpenMM has no batched energy API; for small peptides a Reference-platform Context evaluated one
configuration at a time costs about 40 us (DESIGN.md section 4), cheap next to the flow. Gradients
come from OpenMM's forces.
"""
import io
from pathlib import Path
from typing import Dict, List

import numpy as np
import openmm
import torch
from openmm import app, unit
from torch import Tensor

from ..errors import InputError


class OpenMMReducedEnergy:
    """Callable returning beta * U (B,) for positions (B, n, 3) nm, differentiable through forces.

    Parameters
    ----------
    system : openmm.System
        The system that generated the training data (no constraints, non-periodic).
    temperature_kelvin : float
        Temperature that defines beta.
    platform : str
        OpenMM platform; Reference is the fastest for small peptides on a CPU.
    """

    def __init__(self, system: openmm.System, temperature_kelvin: float, platform: str = "Reference") -> None:
        self.context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
        kt = (unit.MOLAR_GAS_CONSTANT_R * temperature_kelvin * unit.kelvin).value_in_unit(unit.kilojoule_per_mole)
        self.beta = 1.0 / kt

    def energies_and_forces(self, positions: np.ndarray) -> tuple:
        """Reduced energies (B,) and reduced forces -d(beta U)/dx (B, n, 3) in float64."""
        energies = np.empty(len(positions))
        forces = np.empty(positions.shape)
        for i, xyz in enumerate(positions):
            self.context.setPositions(xyz)
            state = self.context.getState(getEnergy=True, getForces=True)
            energies[i] = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
            forces[i] = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
        return self.beta * energies, self.beta * forces

    def __call__(self, positions: Tensor) -> Tensor:
        return _ReducedEnergyFunction.apply(positions, self)


class _ReducedEnergyFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, positions: Tensor, energy: OpenMMReducedEnergy) -> Tensor:
        values, forces = energy.energies_and_forces(positions.detach().cpu().double().numpy())
        forces = np.where(np.isfinite(forces), forces, 0.0)
        ctx.save_for_backward(torch.from_numpy(forces).to(positions.device, positions.dtype))
        return torch.from_numpy(values).to(positions.device)

    @staticmethod
    def backward(ctx, grad_output: Tensor):
        (forces,) = ctx.saved_tensors
        return -forces * grad_output.to(forces.dtype)[:, None, None], None


def load_system(path: Path) -> openmm.System:
    """Deserialise an OpenMM System from XML."""
    return openmm.XmlSerializer.deserialize(Path(path).read_text())


def molecule_energies(molecules: List[Dict], temperature_kelvin: float) -> Dict[int, OpenMMReducedEnergy]:
    """A reduced energy for each shard's molecule, one OpenMM Context per distinct System.

    The System comes from ``system_xml`` in the shard metadata (a path relative to the shard's
    ``directory``) or else is rebuilt with ``openmm_timewarp.systems.create_system`` from its
    ``topology_pdb``.
    """
    cache: Dict[str, OpenMMReducedEnergy] = {}
    energies = {}
    for i, meta in enumerate(molecules):
        if "system_xml" in meta:
            key = "xml:" + str(Path(meta["directory"]) / meta["system_xml"])
        elif "topology_pdb" in meta:
            key = "pdb:" + meta["topology_pdb"]
        else:
            raise InputError(f"shard {meta['shard']} has neither system_xml nor topology_pdb: no energies")
        if key not in cache:
            cache[key] = OpenMMReducedEnergy(_build_system(meta), temperature_kelvin)
        energies[i] = cache[key]
    return energies


def _build_system(meta: Dict) -> openmm.System:
    if "system_xml" in meta:
        return load_system(Path(meta["directory"]) / meta["system_xml"])
    from ..systems import create_system  # the project's force-field recipe, the one the data used

    return create_system(app.PDBFile(io.StringIO(meta["topology_pdb"])).topology)
