"""The plain-MD baseline on the very System :func:`~openmm_timewarp.run.sample` samples: :func:`run_md`."""
from __future__ import annotations

import os
from typing import Dict, Optional, Union

import openmm
from openmm import app, unit

from ..errors import InputError
from ..integrator import _value_in
from ..peptide import prepare_peptide
from .checkpoint import Checkpoint
from .recording import Chain, base_summary, build_system, check_request, finish, kelvin, record
from .results import MDResult

__all__ = ["run_md"]

PathLike = Union[str, os.PathLike]
_R = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)
_LOG_COLUMNS = ("step", "time_ps", "potential_energy_kJ_mol", "temperature_K")


def _chain(settings: Dict, pdb: str, fresh: bool) -> Chain:
    """Prepare the peptide, build System, integrator and Simulation; minimize and draw velocities for a fresh run."""
    prepared = prepare_peptide(pdb, None, strip_solvent=settings["strip_solvent"], seed=settings["seed"],
                               cap_termini=settings["cap_termini"])
    system = build_system(prepared, settings["input"])
    kelvin_ = settings["temperature_K"] * unit.kelvin
    integrator = openmm.LangevinMiddleIntegrator(kelvin_, settings["friction_per_ps"] / unit.picosecond,
                                                 settings["step_fs"] * unit.femtosecond)
    integrator.setRandomNumberSeed(settings["seed"])
    simulation = app.Simulation(prepared.topology, system, integrator,
                                openmm.Platform.getPlatformByName(settings["platform"]))
    if fresh:
        simulation.context.setPositions(prepared.positions)
        simulation.minimizeEnergy()
        simulation.context.setVelocitiesToTemperature(kelvin_, settings["seed"])
    # No constraints; the CMMotionRemover takes 3 degrees of freedom.
    dof = 3 * system.getNumParticles() - 3

    def kinetic_temperature(state: openmm.State) -> float:
        return round(2.0 * state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole) / (dof * _R), 3)

    return Chain(prepared, simulation, _LOG_COLUMNS, kinetic_temperature, settings, "md", "Langevin MD")


def run_molecular_dynamics(settings: Dict, pdb: str, out: Optional[PathLike], overwrite: bool, progress: bool,
                           checkpoint_every_s: float, resumed: Optional[Checkpoint] = None) -> MDResult:
    """Run (or, given its checkpoint, continue) the MD that ``settings`` describe; see :func:`run_md`."""
    with open(pdb, "rb") as f:
        input_pdb = f.read()
    chain = _chain(settings, pdb, fresh=resumed is None)
    recording = record(chain, out, overwrite, progress, checkpoint_every_s, resumed, input_pdb)
    return finish(MDResult, chain, recording, base_summary(settings, chain.prepared), out,
                  settings["step_fs"] / 1000.0, step_fs=settings["step_fs"])


def run_md(pdb: PathLike, steps: int = 100_000, out: Optional[PathLike] = None,
           step_fs: Union[float, unit.Quantity] = 1.0, friction_per_ps: Union[float, unit.Quantity] = 1.0,
           seed: int = 1, temperature: Union[float, unit.Quantity] = 310.0, frame_every: int = 1000,
           strip_solvent: bool = False, overwrite: bool = False, progress: bool = False,
           platform: str = "Reference", cap_termini: bool = False, checkpoint_every_s: float = 300.0) -> MDResult:
    """Run ``LangevinMiddleIntegrator`` MD on the System :func:`~openmm_timewarp.run.sample` builds.

    Parameters are those of :func:`~openmm_timewarp.run.sample`, without the model, plus
    ``step_fs`` (the time step, femtoseconds if a float; the System has no constraints, so keep it
    at 1-2 fs) and ``friction_per_ps`` (1/ps if a float).  The log's last column is the
    instantaneous kinetic temperature instead of the acceptance.  Like ``sample``, it stops
    cleanly on SIGINT or SIGTERM (the result is ``interrupted``) and checkpoints to ``out``.

    Raises
    ------
    InputError
        For a refused input (see ``prepare_peptide``), an existing ``out`` or a bad setting.
    """
    temperature_K = kelvin(temperature)
    step_fs = _value_in(step_fs, unit.femtosecond)
    friction_per_ps = _value_in(friction_per_ps, unit.picosecond**-1)
    check_request(pdb, out, overwrite, steps, frame_every, temperature_K, platform, checkpoint_every_s, seed)
    if not step_fs > 0 or not friction_per_ps >= 0:
        raise InputError(f"need a positive time step and a friction >= 0 (got {step_fs:g} fs, {friction_per_ps:g}/ps)")
    settings = dict(command="md", input=os.path.abspath(os.fspath(pdb)), steps=steps, frame_every=frame_every,
                    temperature_K=temperature_K, seed=seed, strip_solvent=strip_solvent, cap_termini=cap_termini,
                    platform=platform, step_fs=step_fs, friction_per_ps=friction_per_ps)
    return run_molecular_dynamics(settings, os.fspath(pdb), out, overwrite, progress, checkpoint_every_s)
