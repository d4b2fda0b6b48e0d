"""TITO surrogate dynamics of a peptide from a PDB file: :func:`tito`.

>>> from openmm_timewarp.run import tito
>>> result = tito("examples/data/ace-ala-nme.pdb", steps=2_000, lag=1000.0, out="ala-tito")
>>> result.summary["implied_timescales"], result.populations[0]["alpha_L"]

Same preparation, folder, checkpoints and ``resume`` as :func:`~openmm_timewarp.run.sample`; each
step is one move of the lag, followed by the model's relaxation (hybrid Monte Carlo in the same
Context), and the folder gets the implied timescales of each residue's basin Markov state model.
"""
from __future__ import annotations

import os
from typing import Optional, Union

from openmm import unit

from ..errors import InputError
from ..integrator import _value_in
from ..model_file import DEFAULT_TITO_MODEL, ModelLike
from .recording import check_request, kelvin
from .results import SamplingResult
from .sampling import _open_model, _settings, run_sampling

__all__ = ["tito"]

PathLike = Union[str, os.PathLike]


def tito(pdb: PathLike, model: ModelLike = DEFAULT_TITO_MODEL, steps: int = 2_000,
         lag: Optional[Union[float, unit.Quantity]] = None, out: Optional[PathLike] = None, seed: int = 1,
         temperature: Union[float, unit.Quantity] = 310.0, frame_every: int = 1, strip_solvent: bool = False,
         overwrite: bool = False, progress: bool = False, threads: int = 1, platform: str = "Reference",
         hmc_steps: Optional[int] = None, cap_termini: bool = False,
         checkpoint_every_s: float = 300.0) -> SamplingResult:
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

    Returns
    -------
    SamplingResult
        ``biased`` is True: TITO is a surrogate of the dynamics, not an exact sampler. The summary
        holds ``implied_timescales`` (see :func:`~openmm_timewarp.analysis.msm.residue_timescales`).

    Raises
    ------
    InputError
        As :func:`~openmm_timewarp.run.sample`, and for a model that is not a TITO model or a lag
        outside its trained range.
    """
    temperature_K = kelvin(temperature)
    check_request(pdb, out, overwrite, steps, frame_every, temperature_K, platform, checkpoint_every_s, seed)
    model_file = _open_model(model)
    lag_ps = model_file.lag_time_ps if lag is None else _value_in(lag, unit.picosecond)
    if not lag_ps > 0:
        raise InputError(f"the lag must be positive (got {lag_ps:g} ps)")
    if hmc_steps is not None and hmc_steps < 1:
        raise InputError(f"hmc_steps must be at least 1 (got {hmc_steps})")
    settings = _settings(pdb, model_file, steps, frame_every, temperature_K, seed, False, strip_solvent, cap_termini,
                         platform, None, threads)
    settings.update(command="tito", lag_ps=lag_ps)
    if hmc_steps is not None:
        settings["hmc_steps"] = hmc_steps
    return run_sampling(settings, os.fspath(pdb), model_file, out, overwrite, progress, threads, checkpoint_every_s)
