"""``TitoIntegrator``: TITO surrogate dynamics in an OpenMM ``Simulation``, one lag per step."""
from __future__ import annotations

import hashlib
import os
from typing import Iterable, Optional, Sequence, Tuple, Union

from openmm import app, unit

from .integrator import Energy, Temperature, TimewarpIntegrator, Time, _value_in
from .trained import load_module, model_path

__all__ = ["TitoIntegrator", "tito_model_at_lag"]

CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "openmm_timewarp", "tito")


def tito_model_at_lag(model: Union[str, os.PathLike], lag_ps: Optional[float] = None) -> Tuple[str, float]:
    """A copy of a TITO model file whose moves have lag ``lag_ps`` (the file itself at its own lag).

    The copy lives in ``~/.cache/openmm_timewarp/tito``, named by the model's content and the lag,
    so that the C++ integrator (which loads a file) and its XML serialization can refer to it.

    Returns
    -------
    path, lag_ps
    """
    import torch

    path = model_path(model)
    try:
        module = load_module(path)
    except ValueError as error:
        raise ValueError(f"TitoIntegrator: {error}") from None
    if not hasattr(module, "set_lag_ps"):
        raise ValueError(f"TitoIntegrator: {path} is not a TITO model (it has no set_lag_ps method); "
                         "use TimewarpIntegrator for Timewarp models")
    low, high = module.lag_range_ps()
    if lag_ps is None or lag_ps == module.lag_time_ps():
        return path, float(module.lag_time_ps())
    if not low <= lag_ps <= high:
        raise ValueError(f"TitoIntegrator: lag {lag_ps:g} ps is outside the range the model was trained for, "
                         f"[{low:g}, {high:g}] ps")
    with open(path, "rb") as f:
        digest = hashlib.sha1(f.read()).hexdigest()[:16]
    copy = os.path.join(CACHE_DIR, f"{digest}_lag{lag_ps:g}ps.pt")
    if not os.path.exists(copy):
        os.makedirs(CACHE_DIR, exist_ok=True)
        module.set_lag_ps(float(lag_ps))
        tmp = f"{copy}.{os.getpid()}.tmp"
        torch.jit.save(module, tmp)
        os.replace(tmp, copy)
    return copy, float(lag_ps)


class TitoIntegrator(TimewarpIntegrator):
    """Generate a trajectory with a TITO transfer operator: each step is one move of lag ``lag``.

    TITO (Viguera Diez et al.) learns x(t + lag) given x(t) for a range of lags; sampled one lag
    after another it is a surrogate of the dynamics, so a ``Simulation`` with reporters writes a
    TITO trajectory, and the simulation time advances by ``lag`` per step.  It is not exact:
    moves are taken without a Metropolis test, except that a move raising the potential energy by
    more than ``energy_threshold`` or inverting a chiral centre is refused (the state then stays
    for that step, as in Timewarp's exploration mode); ``getAcceptanceRate()`` tells how often the
    model's moves passed.

    Parameters
    ----------
    model
        A TITO model file exported by ``python -m openmm_timewarp.models.export`` (or a shipped name).
    topology
        The ``Topology`` of the System, or a sequence of element symbols, one per particle.
    temperature
        Temperature of the velocities the integrator draws after each step (kelvin if a float).
    lag
        Lag of each step (ps if a float), within the model's trained range; by default the lag
        the file was exported with.
    energy_threshold
        Largest energy increase a move may bring (kJ/mol if a float).
    random_seed
        Seed of the model's randomness and the velocities; 0 picks a unique one.
    chiral_centers
        ``(center, a, b, c)`` quadruplets whose handedness moves must keep; by default the
        C-alpha atoms of the topology's amino acids.
    """

    def __init__(self, model: Union[str, os.PathLike], topology: Union[app.Topology, Sequence[str]],
                 temperature: Temperature = 310.0 * unit.kelvin, lag: Optional[Time] = None, *,
                 energy_threshold: Energy = 300.0 * unit.kilojoule_per_mole, random_seed: int = 0,
                 chiral_centers: Optional[Iterable[Tuple[int, int, int, int]]] = None):
        path, _ = tito_model_at_lag(model, None if lag is None else _value_in(lag, unit.picosecond))
        super().__init__(path, topology, temperature, metropolis_hastings=False, proposals_per_batch=1,
                         adaptive_batch_size=False, exploration_energy_threshold=energy_threshold,
                         random_seed=random_seed, chiral_centers=chiral_centers, hmc_interval=0)
