"""The plain-MD baseline on the very System :func:`~openmm_timewarp.run.sample` samples: :func:`run_md`."""
from __future__ import annotations

import os
from typing import Optional, Union

import openmm
from openmm import app, unit

from ..peptide import prepare_peptide
from ..systems import create_system
from .recording import base_summary, check_request, finish, kelvin, record
from .results import MDResult

__all__ = ["run_md"]

PathLike = Union[str, os.PathLike]
_R = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)
_LOG_COLUMNS = ("step", "time_ps", "potential_energy_kJ_mol", "temperature_K")


def _value_in(value: Union[float, unit.Quantity], units: unit.Unit) -> float:
    return value.value_in_unit(units) if unit.is_quantity(value) else float(value)


def run_md(pdb: PathLike, steps: int = 100_000, out: Optional[PathLike] = None,
           step_fs: Union[float, unit.Quantity] = 1.0, friction_per_ps: Union[float, unit.Quantity] = 1.0,
           seed: int = 1, temperature: Union[float, unit.Quantity] = 310.0, frame_every: int = 1000,
           strip_solvent: bool = False, overwrite: bool = False, progress: bool = False,
           platform: str = "Reference") -> MDResult:
    """Run ``LangevinMiddleIntegrator`` MD on the System :func:`~openmm_timewarp.run.sample` builds.

    Parameters are those of :func:`~openmm_timewarp.run.sample`, without the model, plus
    ``step_fs`` (the time step, femtoseconds if a float; the System has no constraints, so keep it
    at 1-2 fs) and ``friction_per_ps`` (1/ps if a float).  The log's last column is the
    instantaneous kinetic temperature instead of the acceptance.

    Raises
    ------
    InputError
        For a refused input (see ``prepare_peptide``), an existing ``out`` or bad counts.
    """
    temperature_K = kelvin(temperature)
    step_fs = _value_in(step_fs, unit.femtosecond)
    friction_per_ps = _value_in(friction_per_ps, unit.picosecond**-1)
    check_request(pdb, out, overwrite, steps, frame_every)
    prepared = prepare_peptide(pdb, None, strip_solvent=strip_solvent, seed=seed)
    system = create_system(prepared.topology)
    integrator = openmm.LangevinMiddleIntegrator(temperature_K * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 step_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(prepared.topology, system, integrator, openmm.Platform.getPlatformByName(platform))
    simulation.context.setPositions(prepared.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(temperature_K * unit.kelvin, seed)
    # No constraints; the CMMotionRemover takes 3 degrees of freedom.
    dof = 3 * system.getNumParticles() - 3

    def kinetic_temperature(state: openmm.State) -> float:
        return round(2.0 * state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) / (dof * _R), 3)

    recording = record(simulation, steps, frame_every, _LOG_COLUMNS, kinetic_temperature, progress, "md")
    summary = base_summary("md", pdb, prepared, temperature_K, seed, steps, frame_every, step_fs / 1000.0, platform)
    summary.update(step_fs=step_fs, friction_per_ps=friction_per_ps)
    return finish(MDResult, prepared.topology, recording, prepared.notes, summary, out, overwrite, "Langevin MD",
                  step_fs=step_fs)
