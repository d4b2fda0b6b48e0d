"""Sampling a peptide from a PDB file with a Timewarp model: :func:`sample`.

>>> from openmm_timewarp.run import sample
>>> result = sample("examples/data/ace-ala-nme.pdb", steps=20_000, out="ala-timewarp")
>>> result.acceptance, result.populations[0]["alpha_R"], result.trajectory.n_frames
"""
from __future__ import annotations

import hashlib
import os
import warnings
from typing import Dict, Optional, Tuple, Union

import openmm
from openmm import app, unit

from ..errors import InputError, ModelDomainWarning
from ..integrator import TimewarpIntegrator
from ..tito_integrator import TitoIntegrator
from ..model_file import DEFAULT_MODEL, ModelFile, ModelLike
from ..peptide import prepare_peptide
from ..systems import thermalize
from .checkpoint import Checkpoint
from .recording import (Chain, base_summary, build_system, check_request, finish, kelvin, record,
                        warn_domain)
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


def model_digest(model: ModelFile) -> str:
    """SHA-256 of the model's bytes: a resumed run must use the very same model."""
    return hashlib.sha256(model.data).hexdigest()


def _integrator(model: ModelFile, topology: app.Topology, settings: Dict) -> TimewarpIntegrator:
    """The integrator (a ``TitoIntegrator`` for the ``tito`` command), with the model's recommended
    hybrid Monte Carlo settings where not overridden."""
    recommended = model.integrator_settings
    # Domain and temperature are reported by the run (domain_reasons) as ModelDomainWarnings, once:
    # the integrator's own warnings about them are dropped, any other is passed on.
    hmc = dict(hmc_interval=settings["hmc_interval"], hmc_steps=settings.get("hmc_steps", recommended["hmc_steps"]),
               hmc_step_size=recommended["hmc_step_size_ps"] * unit.picosecond)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if settings["command"] == "tito":
            try:
                integrator = TitoIntegrator(model, topology, settings["temperature_K"],
                                            settings["lag_ps"] * unit.picosecond, random_seed=settings["seed"],
                                            basin_populations=settings.get("basin_populations"), **hmc)
            except ValueError as error:  # not a TITO model, or a lag outside its range
                raise InputError(str(error).replace("TitoIntegrator: ", "")) from None
        else:
            integrator = TimewarpIntegrator(model, topology, settings["temperature_K"],
                                            metropolis_hastings=not settings["explore"], random_seed=settings["seed"],
                                            warn_outside_domain=False, **hmc)
    for warning in caught:
        if not (issubclass(warning.category, ModelDomainWarning) or "trained at" in str(warning.message)):
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return integrator


def _chain(settings: Dict, pdb: str, model: ModelFile, fresh: bool) -> Tuple[Chain, TimewarpIntegrator]:
    """Prepare the peptide, build System, integrator and Simulation; thermalize a fresh run."""
    prepared = prepare_peptide(pdb, model, strip_solvent=settings["strip_solvent"], seed=settings["seed"],
                               cap_termini=settings["cap_termini"])
    prepared.domain_warnings = model.domain_warnings(prepared.sequence, prepared.capped, settings["temperature_K"])
    warn_domain(prepared.domain_warnings)
    system = build_system(prepared, settings["input"])
    integrator = _integrator(model, prepared.topology, settings)
    simulation = app.Simulation(prepared.topology, system, integrator,
                                openmm.Platform.getPlatformByName(settings["platform"]))
    if fresh:
        # Minimize and give bonds and angles their thermal spread with 2 ps of MD (see systems.thermalize).
        simulation.context.setPositions(thermalize(system, prepared.positions, settings["temperature_K"],
                                                   seed=settings["seed"]))
    explore = settings["explore"]
    if settings["command"] == "tito":
        desc, title = "tito", "TITO surrogate dynamics (not an exact sampler)"
    else:
        desc, title = "timewarp" + (" (explore)" if explore else ""), \
            "Timewarp exploration (BIASED)" if explore else "Timewarp MH"
    chain = Chain(prepared, simulation, _LOG_COLUMNS, lambda state: round(integrator.getAcceptanceRate(), 6),
                  settings, desc, title)
    return chain, integrator


def run_sampling(settings: Dict, pdb: str, model: ModelFile, out: Optional[PathLike], overwrite: bool,
                 progress: bool, threads: int, checkpoint_every_s: float,
                 resumed: Optional[Checkpoint] = None) -> SamplingResult:
    """Run (or, given its checkpoint, continue) the sampling that ``settings`` describe; see :func:`sample`."""
    import torch

    torch.set_num_threads(threads)
    with open(pdb, "rb") as f:
        input_pdb = f.read()
    chain, integrator = _chain(settings, pdb, model, fresh=resumed is None)
    recording = record(chain, out, overwrite, progress, checkpoint_every_s, resumed, input_pdb)
    summary = base_summary(settings, chain.prepared)
    tito = settings["command"] == "tito"
    lag_ps = integrator.getStepSize().value_in_unit(unit.picosecond)
    summary.update(hmc_interval=integrator.getHMCInterval(), hmc_steps=integrator.getHMCSteps(),
                   hmc_minimum_mass_amu=integrator.getHMCMinimumMass().value_in_unit(unit.dalton),
                   hmc_acceptance=round(integrator.getHMCAcceptanceRate(), 6), model=model.name,
                   model_path=model.path, lag_time_ps=lag_ps, model_temperature_K=model.temperature_K,
                   mode="tito-surrogate" if tito else "exploration" if settings["explore"] else "metropolis-hastings")
    return finish(SamplingResult, chain, recording, summary, out, lag_ps, kinetics=tito,
                  acceptance=integrator.getAcceptanceRate(), num_accepted=integrator.getNumAccepted(),
                  num_proposed=integrator.getNumProposed(), biased=settings["explore"] or tito)


def _settings(pdb: PathLike, model: ModelFile, steps: int, frame_every: int, temperature_K: float, seed: int,
              explore: bool, strip_solvent: bool, cap_termini: bool, platform: str, hmc_interval: Optional[int],
              threads: int) -> Dict:
    """The settings of a new sampling run, checked: what its checkpoint keeps for ``resume``."""
    if hmc_interval is not None and hmc_interval < 0:
        raise InputError(f"hmc_interval must be 0 (no hybrid Monte Carlo moves) or positive (got {hmc_interval})")
    if threads < 1:
        raise InputError(f"threads must be at least 1 (got {threads})")
    return dict(command="sample", input=os.path.abspath(os.fspath(pdb)), model=model.path or model.name,
                model_sha256=model_digest(model), steps=steps, frame_every=frame_every, temperature_K=temperature_K,
                seed=seed, explore=explore, strip_solvent=strip_solvent, cap_termini=cap_termini, platform=platform,
                hmc_interval=model.integrator_settings["hmc_interval"] if hmc_interval is None else hmc_interval)


def sample(pdb: PathLike, model: ModelLike = DEFAULT_MODEL, steps: int = 10_000, out: Optional[PathLike] = None,
           explore: bool = False, seed: int = 1, temperature: Union[float, unit.Quantity] = 310.0,
           frame_every: int = 10, strip_solvent: bool = False, overwrite: bool = False, progress: bool = False,
           threads: int = 1, platform: str = "Reference", hmc_interval: Optional[int] = None,
           cap_termini: bool = False, checkpoint_every_s: float = 300.0) -> SamplingResult:
    """Sample a peptide from a PDB file with a Timewarp model and Metropolis-Hastings.

    Prepare the file (:func:`~openmm_timewarp.peptide.prepare_peptide`), build the reference System
    (amber14 + OBC2, no constraints: :func:`~openmm_timewarp.systems.create_system`), minimize and
    thermalize it, and run a :class:`~openmm_timewarp.TimewarpIntegrator` chain.  A peptide or
    temperature outside the model's training gets a :class:`~openmm_timewarp.errors.ModelDomainWarning`
    per reason (recorded in the summary's ``domain_warnings``).

    Parameters
    ----------
    pdb
        PDB file of one peptide chain; see :func:`~openmm_timewarp.peptide.prepare_peptide`.
    model
        Shipped model name, model file, or an open :class:`~openmm_timewarp.model_file.ModelFile`.
    steps, frame_every
        Metropolis-Hastings steps (each advances the time by the model's lag); steps between frames.
    out, overwrite
        Folder for the output files (:mod:`openmm_timewarp.run.folder`), written as the run goes
        (nothing is written if None); replace an existing one only with ``overwrite``.
    explore
        Exploration mode: no Metropolis-Hastings, fast but **biased** (labelled so in every output).
    seed, temperature
        Seed of the chain (0 picks a unique one) and of pdbfixer's added atoms; kelvin if a float.
    strip_solvent, cap_termini
        Remove waters and ions instead of refusing them; replace charged termini with ACE/NME caps
        (a different molecule; by default the termini stay as the file has them).
    progress, threads, platform
        A progress bar on stderr; torch threads (process-wide); the OpenMM platform (Reference is
        the fastest for small peptides on CPUs).
    hmc_interval
        Steps between hybrid Monte Carlo moves (0: none); by default the model's recommendation.
    checkpoint_every_s
        Seconds between checkpoints in ``out`` (also written at the start, when stopped and at the end).

    Returns
    -------
    SamplingResult
        ``interrupted`` if SIGINT or SIGTERM stopped the run: its folder then holds the partial
        run, and :func:`~openmm_timewarp.run.resume` continues it.

    Raises
    ------
    InputError
        For a missing or unreadable model, a refused input (see ``prepare_peptide``), an existing
        ``out``, or a setting the integrator would reject.
    """
    temperature_K = kelvin(temperature)
    check_request(pdb, out, overwrite, steps, frame_every, temperature_K, platform, checkpoint_every_s, seed)
    model_file = _open_model(model)
    settings = _settings(pdb, model_file, steps, frame_every, temperature_K, seed, explore, strip_solvent, cap_termini,
                         platform, hmc_interval, threads)
    return run_sampling(settings, os.fspath(pdb), model_file, out, overwrite, progress, threads, checkpoint_every_s)
