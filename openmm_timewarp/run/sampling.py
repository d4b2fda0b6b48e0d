"""Sampling a peptide from a PDB file with a Timewarp model: :func:`sample`.

>>> from openmm_timewarp.run import sample
>>> result = sample("examples/data/ace-ala-nme.pdb", steps=20_000, out="ala-timewarp")
>>> result.acceptance, result.populations[0]["alpha_R"], result.trajectory.n_frames
"""
from __future__ import annotations

import os
from typing import Optional, Union

import openmm
from openmm import app, unit

from ..errors import InputError
from ..integrator import TimewarpIntegrator
from ..model_file import DEFAULT_MODEL, ModelFile, ModelLike
from ..peptide import prepare_peptide
from ..systems import create_system, thermalize
from .recording import base_summary, check_request, finish, kelvin, record
from .results import SamplingResult

__all__ = ["sample"]

PathLike = Union[str, os.PathLike]
_LOG_COLUMNS = ("step", "time_ps", "potential_energy_kJ_mol", "acceptance")


def _open_model(model: ModelLike) -> ModelFile:
    """The model file, with a hint on how to get one when the default model is not shipped."""
    try:
        return ModelFile.open(model)
    except InputError as error:
        if isinstance(model, (str, os.PathLike)) and os.fspath(model) == DEFAULT_MODEL:
            raise InputError(f"{error}; the default model is not shipped in this build yet: pass --model FILE.pt "
                             "(train one with `openmm-timewarp generate-data`, `train` and `export`)") from None
        raise


def _integrator(model: ModelFile, topology: app.Topology, temperature_K: float, explore: bool, seed: int,
                hmc_interval: Optional[int]) -> TimewarpIntegrator:
    """The integrator, with the model's recommended hybrid Monte Carlo settings where not overridden."""
    settings = model.integrator_settings
    # The ModelFile is path-like, so the integrator takes it whether it reads ModelFiles or paths; the
    # settings are passed explicitly so that the run records and uses the same ones either way.
    # prepare_peptide has noted the domain warnings already, hence warn_outside_domain=False.
    return TimewarpIntegrator(model, topology, temperature_K, metropolis_hastings=not explore, random_seed=seed,
                              hmc_interval=settings["hmc_interval"] if hmc_interval is None else hmc_interval,
                              hmc_steps=settings["hmc_steps"],
                              hmc_step_size=settings["hmc_step_size_ps"] * unit.picosecond,
                              warn_outside_domain=False)


def sample(pdb: PathLike, model: ModelLike = DEFAULT_MODEL, steps: int = 10_000, out: Optional[PathLike] = None,
           explore: bool = False, seed: int = 1, temperature: Union[float, unit.Quantity] = 310.0,
           frame_every: int = 10, strip_solvent: bool = False, overwrite: bool = False, progress: bool = False,
           threads: int = 1, platform: str = "Reference", hmc_interval: Optional[int] = None) -> SamplingResult:
    """Sample a peptide from a PDB file with a Timewarp model and Metropolis-Hastings.

    Prepare the file (:func:`~openmm_timewarp.peptide.prepare_peptide`), build the reference System
    (amber14 + OBC2, no constraints: :func:`~openmm_timewarp.systems.create_system`), minimize and
    thermalize it, and run a :class:`~openmm_timewarp.TimewarpIntegrator` chain.

    Parameters
    ----------
    pdb
        PDB file of one peptide chain; see :func:`~openmm_timewarp.peptide.prepare_peptide`.
    model
        Shipped model name, model file, or an open :class:`~openmm_timewarp.model_file.ModelFile`.
    steps
        Metropolis-Hastings steps (proposals); each advances the time by the model's lag.
    out
        Folder for the output files (:mod:`openmm_timewarp.run.folder`); nothing is written if None.
    explore
        Exploration mode: no Metropolis-Hastings, fast but **biased** (labelled so in every output).
    seed
        Seed of the chain (0 picks a unique one) and of pdbfixer's added atoms.
    temperature
        Kelvin if a float.
    frame_every
        Steps between recorded frames.
    strip_solvent
        Remove waters and ions from the file instead of refusing it.
    overwrite
        Replace an existing ``out`` folder (otherwise refused).
    progress
        Show a progress bar with the time left on stderr.
    threads
        Torch threads for the model (process-wide); 1 is fastest where cores are shared.
    platform
        OpenMM platform; Reference is the fastest for small peptides on CPUs.
    hmc_interval
        Steps between the integrator's hybrid Monte Carlo moves (0: none); by default the model's
        recommendation (:attr:`ModelFile.integrator_settings`).

    Raises
    ------
    InputError
        For a missing or unreadable model, a refused input (see ``prepare_peptide``), an existing
        ``out`` or bad counts.
    """
    import torch

    temperature_K = kelvin(temperature)
    check_request(pdb, out, overwrite, steps, frame_every)
    model_file = _open_model(model)
    torch.set_num_threads(threads)
    prepared = prepare_peptide(pdb, model_file, strip_solvent=strip_solvent, seed=seed)
    system = create_system(prepared.topology)
    integrator = _integrator(model_file, prepared.topology, temperature_K, explore, seed, hmc_interval)
    simulation = app.Simulation(prepared.topology, system, integrator, openmm.Platform.getPlatformByName(platform))
    # Minimize and give bonds and angles their thermal spread with 2 ps of MD (see systems.thermalize).
    simulation.context.setPositions(thermalize(system, prepared.positions, temperature_K, seed=seed))
    recording = record(simulation, steps, frame_every, _LOG_COLUMNS,
                       lambda state: round(integrator.getAcceptanceRate(), 6), progress,
                       "timewarp" + (" (explore)" if explore else ""))
    summary = base_summary("sample", pdb, prepared, temperature_K, seed, steps, frame_every, model_file.lag_time_ps,
                           platform)
    summary.update(hmc_interval=integrator.getHMCInterval(),
                   hmc_acceptance=round(integrator.getHMCAcceptanceRate(), 6), model=model_file.name,
                   model_path=model_file.path, lag_time_ps=model_file.lag_time_ps,
                   model_temperature_K=model_file.temperature_K,
                   mode="exploration" if explore else "metropolis-hastings")
    title = "Timewarp exploration (BIASED)" if explore else "Timewarp MH"
    return finish(SamplingResult, prepared.topology, recording, prepared.notes, summary, out, overwrite, title,
                  acceptance=integrator.getAcceptanceRate(), num_accepted=integrator.getNumAccepted(),
                  num_proposed=integrator.getNumProposed(), biased=explore)
