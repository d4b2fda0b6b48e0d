"""TITO surrogate dynamics of a peptide from a PDB file: :func:`tito`.

>>> from openmm_timewarp.run import tito
>>> result = tito("examples/data/ace-ala-nme.pdb", steps=2_000, lag=1000.0, out="ala-tito")
>>> result.summary["implied_timescales"], result.populations[0]["alpha_L"]

Same preparation, folder, checkpoints and ``resume`` as :func:`~openmm_timewarp.run.sample`; each
step is one move of the lag, followed by the model's relaxation (hybrid Monte Carlo in the same
Context), and the folder gets the implied timescales of each residue's basin Markov state model.

Thermodynamics come from an exact sampler, kinetics from the model: before the TITO run, an exact
Timewarp chain of the same peptide (``equilibrium_steps`` steps of the default model, or an earlier
``sample`` run folder) gives each residue's basin populations, and the TITO model keeps basin
changes with the probability that makes them its own (``docs/tito.md``).
"""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple, Union

from openmm import unit

from ..analysis import BASIN_NAMES
from ..errors import InputError, UncertainPopulationsWarning
from ..integrator import _value_in
from ..model_file import DEFAULT_MODEL, DEFAULT_TITO_MODEL, ModelLike
from ..peptide import prepare_peptide
from .folder import load_run
from .recording import check_request, kelvin
from .results import SamplingResult
from .sampling import _open_model, _settings, run_sampling, sample

__all__ = ["tito", "basin_table", "equilibrium_populations", "largest_population_error", "EQUILIBRIUM_STEPS",
           "POPULATION_TOLERANCE"]

EQUILIBRIUM_STEPS = 20_000
"""Steps of the exact chain run before a TITO run whose model keeps basin populations, by default."""

POPULATION_TOLERANCE = 0.03
"""Largest standard error of an equilibrium basin population that a TITO run takes without an
:class:`~openmm_timewarp.errors.UncertainPopulationsWarning`: the JSD goal of a TITO run is 0.03,
and the default 20,000-step chain leaves 0.039 on ACE-LYS-MET-NME (docs/tito.md)."""

PathLike = Union[str, os.PathLike]

BASINS = BASIN_NAMES[:4]
"""The basins a TITO model jumps among (beta, alpha_R, alpha_L, PII_L)."""


def basin_table(populations: Sequence[Dict[str, Sequence[float]]], n_frames: int) -> List[List[float]]:
    """Each residue's populations of :data:`BASINS` from a run's ``populations`` over ``n_frames``
    frames, with half a frame added to every basin: a basin the run never entered keeps a small
    population (about 1/(2 n_frames)) instead of being closed to the TITO chain for good."""
    if n_frames < 1:
        raise InputError("the equilibrium run recorded no frames: no basin populations")
    return [[(float(row[name][0]) * n_frames + 0.5) / (n_frames + 2.0) for name in BASINS] for row in populations]


def largest_population_error(populations: Sequence[Dict[str, Sequence[float]]]) -> Dict:
    """The largest standard error among the :data:`BASINS` populations of a run's ``populations``
    (rows of basin name -> (population, standard error)): its value, residue (from 1) and basin.
    Basins a run never entered have no error and are left out."""
    worst = dict(standard_error=0.0, residue=1, basin=BASINS[0], population=float(populations[0][BASINS[0]][0]))
    for r, row in enumerate(populations):
        for name in BASINS:
            population, error = float(row[name][0]), float(row[name][1])
            if math.isfinite(error) and error > worst["standard_error"]:
                worst = dict(standard_error=error, residue=r + 1, basin=name, population=population)
    return worst


def _check_uncertainty(populations: Sequence[Dict[str, Sequence[float]]], source: str) -> Dict:
    """:func:`largest_population_error`, with an UncertainPopulationsWarning above the tolerance."""
    worst = largest_population_error(populations)
    if worst["standard_error"] > POPULATION_TOLERANCE:
        warnings.warn(f"the basin populations from {source} are uncertain: residue {worst['residue']}'s "
                      f"{worst['basin']} population {worst['population']:.3f} has a standard error of "
                      f"{worst['standard_error']:.3f} (more than {POPULATION_TOLERANCE:g}), and the TITO chain keeps "
                      "them as they are; run a longer exact chain (--equilibrium-steps) or pass a longer 'sample' "
                      "run (--equilibrium FOLDER)", UncertainPopulationsWarning, stacklevel=4)
    return worst


def equilibrium_populations(pdb: PathLike, equilibrium: Optional[PathLike], steps: int, seed: int,
                            temperature_K: float, strip_solvent: bool, cap_termini: bool, platform: str,
                            threads: int, progress: bool) -> Tuple[List[List[float]], Dict]:
    """Basin populations (:func:`basin_table`) of the peptide of ``pdb`` from an exact Timewarp run:
    the ``sample`` run folder ``equilibrium``, or else a new in-memory chain of ``steps`` steps of
    the default model, a frame every step. Returns them and a record of where they come from,
    with the largest standard error of a population (:func:`largest_population_error`); above
    :data:`POPULATION_TOLERANCE` it warns (:class:`~openmm_timewarp.errors.UncertainPopulationsWarning`).

    Raises
    ------
    InputError
        For a folder that is not a finished, exact (Metropolis-Hastings) ``sample`` run of the same
        peptide (sequence, termini and atoms, as ``pdb`` is prepared) at the same temperature.
    """
    if equilibrium is not None:
        summary, _ = load_run(equilibrium)
        if summary.get("command") != "sample" or summary.get("mode") != "metropolis-hastings":
            raise InputError(f"{equilibrium}: the equilibrium populations must come from an exact 'sample' run "
                             f"(Metropolis-Hastings); this is a {summary.get('mode') or summary.get('command')} run")
        if not math.isclose(float(summary["temperature_K"]), temperature_K, abs_tol=1e-6):
            raise InputError(f"{equilibrium}: sampled at {summary['temperature_K']:g} K, the TITO run is at "
                             f"{temperature_K:g} K")
        prepared = prepare_peptide(pdb, strip_solvent=strip_solvent, seed=seed, cap_termini=cap_termini)
        here = (prepared.sequence, "ACE/NME caps" if prepared.capped else "charged", prepared.topology.getNumAtoms())
        there = (summary.get("sequence"), summary.get("termini", "ACE/NME caps"), summary.get("n_atoms"))
        if here != there:
            raise InputError(f"{equilibrium}: that run sampled another peptide ({there[0]}, {there[1]}, {there[2]} "
                             f"atoms) than {os.fspath(pdb)} ({here[0]}, {here[1]}, {here[2]} atoms)")
        table = basin_table(summary["populations"], int(summary["n_frames"]))
        record = dict(source=os.path.abspath(os.fspath(equilibrium)), sequence=summary.get("sequence"),
                      n_frames=summary["n_frames"], steps=summary.get("steps_done"),
                      wall_time_s=summary.get("wall_time_s"),
                      largest_error=_check_uncertainty(summary["populations"], f"the run {os.fspath(equilibrium)}"))
        return table, record
    began = time.perf_counter()
    result = sample(pdb, model=DEFAULT_MODEL, steps=steps, frame_every=1, seed=seed, temperature=temperature_K,
                    strip_solvent=strip_solvent, cap_termini=cap_termini, platform=platform, threads=threads,
                    progress=progress)
    table = basin_table(result.populations, int(result.summary["n_frames"]))
    record = dict(source=f"sample, {DEFAULT_MODEL} model, {steps} steps", sequence=result.summary.get("sequence"),
                  n_frames=result.summary["n_frames"], steps=steps, wall_time_s=time.perf_counter() - began,
                  acceptance=result.acceptance,
                  largest_error=_check_uncertainty(result.populations, f"the exact chain of {steps} steps"))
    return table, record


def tito(pdb: PathLike, model: ModelLike = DEFAULT_TITO_MODEL, steps: int = 2_000,
         lag: Optional[Union[float, unit.Quantity]] = None, out: Optional[PathLike] = None, seed: int = 1,
         temperature: Union[float, unit.Quantity] = 310.0, frame_every: int = 1, strip_solvent: bool = False,
         overwrite: bool = False, progress: bool = False, threads: int = 1, platform: str = "Reference",
         hmc_steps: Optional[int] = None, cap_termini: bool = False, checkpoint_every_s: float = 300.0,
         equilibrium: Optional[PathLike] = None, equilibrium_steps: Optional[int] = None) -> SamplingResult:
    """Generate a TITO trajectory of a peptide: one learned move of ``lag`` per step.

    Parameters
    ----------
    pdb, out, overwrite, seed, temperature, strip_solvent, cap_termini, progress, threads, platform,
    checkpoint_every_s
        As for :func:`~openmm_timewarp.run.sample`.
    model
        A TITO model (shipped name, file or open ``ModelFile``).
    steps, frame_every
        TITO steps, each advancing the time by the lag; steps between frames.
    lag
        Lag of each step (ps if a float), within the model's trained range; by default the model's.
    hmc_steps
        Leapfrog steps of the relaxation after each move; by default the model's recommendation.
    equilibrium, equilibrium_steps
        Where each residue's equilibrium basin populations come from: the folder of an earlier
        exact ``sample`` run of the same peptide, or else a new exact chain of
        ``equilibrium_steps`` steps with the default Timewarp model (None: :data:`EQUILIBRIUM_STEPS`
        for a model that keeps basin populations, none for one that does not, such as the Cartesian
        model; 0: none, and the TITO chain keeps the model's own populations, which are poor for
        basins its data rarely entered). They are stored with the run's settings, so ``resume``
        does not recompute them.

    Returns
    -------
    SamplingResult
        ``biased`` is True: TITO is a surrogate of the dynamics, not an exact sampler. The summary
        holds ``implied_timescales`` (see :func:`~openmm_timewarp.analysis.msm.residue_timescales`).

    Raises
    ------
    InputError
        As :func:`~openmm_timewarp.run.sample`, for a model that is not a TITO model or a lag
        outside its trained range, and for ``equilibrium`` or ``equilibrium_steps`` > 0 with a model
        that takes no basin populations.
    """
    temperature_K = kelvin(temperature)
    check_request(pdb, out, overwrite, steps, frame_every, temperature_K, platform, checkpoint_every_s, seed)
    model_file = _open_model(model)
    lag_ps = model_file.lag_time_ps if lag is None else _value_in(lag, unit.picosecond)
    if not lag_ps > 0:
        raise InputError(f"the lag must be positive (got {lag_ps:g} ps)")
    if hmc_steps is not None and hmc_steps < 1:
        raise InputError(f"hmc_steps must be at least 1 (got {hmc_steps})")
    if not (equilibrium_steps is None or (isinstance(equilibrium_steps, int) and equilibrium_steps >= 0)):
        raise InputError(f"equilibrium_steps must be a whole number >= 0 (got {equilibrium_steps})")
    keeps_populations = hasattr(model_file.module, "set_basin_populations")
    if not keeps_populations and (equilibrium is not None or (equilibrium_steps or 0) > 0):
        raise InputError(f"the TITO model {model_file.name} takes no basin populations (it moves Cartesian "
                         f"coordinates, not torsions between basins): leave out the equilibrium run or folder")
    if equilibrium_steps is None:
        equilibrium_steps = EQUILIBRIUM_STEPS if keeps_populations and equilibrium is None else 0
    settings = _settings(pdb, model_file, steps, frame_every, temperature_K, seed, False, strip_solvent, cap_termini,
                         platform, None, threads)
    settings.update(command="tito", lag_ps=lag_ps)
    if hmc_steps is not None:
        settings["hmc_steps"] = hmc_steps
    if equilibrium is not None or equilibrium_steps > 0:
        table, record = equilibrium_populations(pdb, equilibrium, equilibrium_steps, seed, temperature_K,
                                                strip_solvent, cap_termini, platform, threads, progress)
        settings.update(basin_populations=table, equilibrium=record)
    return run_sampling(settings, os.fspath(pdb), model_file, out, overwrite, progress, threads, checkpoint_every_s)
