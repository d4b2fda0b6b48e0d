"""``TitoIntegrator``: TITO surrogate dynamics in an OpenMM ``Simulation``, one lag per step."""
from __future__ import annotations

import io
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from openmm import app, unit

from .analysis import residues_with_phi_and_psi
from .integrator import Energy, Mass, ModelLike, Temperature, TimewarpIntegrator, Time, _value_in
from .model_file import ModelFile, save_model

__all__ = ["TitoIntegrator", "tito_model_at_lag"]

BasinPopulations = Union[Sequence[Sequence[float]], np.ndarray]
"""Equilibrium basin populations, one row (beta, alpha_R, alpha_L, PII_L) per residue."""


def tito_model_at_lag(model: ModelLike, lag_ps: Optional[float] = None,
                      basin_populations: Optional[BasinPopulations] = None) -> Tuple[ModelFile, float]:
    """A TITO model whose moves have lag ``lag_ps`` (the model itself at its own lag), optionally
    told each residue's equilibrium basin populations.

    Another lag, or populations, give a new model held in memory: the module with
    ``set_lag_ps(lag_ps)`` and ``set_basin_populations`` applied, saved with the original's
    settings entry. Nothing is written to disk; the integrator (and its XML serialization) keep the
    bytes, populations included.

    Parameters
    ----------
    model
        A shipped name, a path or an open :class:`~openmm_timewarp.model_file.ModelFile`.
    lag_ps
        The lag, ps, within the model's trained range; None for the lag the file was exported with.
    basin_populations
        (residues, 4) populations of beta, alpha_R, alpha_L and PII_L (``analysis.BASIN_NAMES``),
        e.g. from an exact ``sample`` run; the model then keeps a residue's basin change with a
        probability that makes its basin populations these (``docs/tito.md``).

    Returns
    -------
    model_file, lag_ps

    Raises
    ------
    ValueError
        If the file cannot be read (an :class:`~openmm_timewarp.errors.InputError`), is not a TITO
        model, ``lag_ps`` is outside its trained range, or the model takes no basin populations or
        they are malformed.
    """
    model_file = ModelFile.open(model)
    if not hasattr(model_file.module, "set_lag_ps"):
        raise ValueError(f"TitoIntegrator: {model_file.path or model_file.name} is not a TITO model (it has no "
                         "set_lag_ps method); use TimewarpIntegrator for Timewarp models")
    low, high = model_file.module.lag_range_ps()
    same_lag = lag_ps is None or lag_ps == model_file.lag_time_ps
    if same_lag and basin_populations is None:
        return model_file, model_file.lag_time_ps
    if not same_lag and not low <= lag_ps <= high:
        raise ValueError(f"TitoIntegrator: lag {lag_ps:g} ps is outside the range the model was trained for, "
                         f"[{low:g}, {high:g}] ps")
    module = model_file.fresh_module()
    name = model_file.name
    if not same_lag:
        module.set_lag_ps(float(lag_ps))
        name += f" at lag {lag_ps:g} ps"
    if basin_populations is not None:
        if not hasattr(module, "set_basin_populations"):
            raise ValueError(f"TitoIntegrator: {name} takes no basin populations (only torsion TITO models do)")
        table = np.asarray(basin_populations, dtype=np.float64)
        try:
            module.set_basin_populations(torch.from_numpy(table))
        except (RuntimeError, torch.jit.Error) as error:  # the module's ValueError, raised through TorchScript
            message = str(error).strip().splitlines()[-1].replace("builtins.ValueError: ", "")
            raise ValueError(f"TitoIntegrator: {message}") from None
        name += " with basin populations"
    buffer = io.BytesIO()
    save_model(module, buffer, model_file.settings)
    lag = model_file.lag_time_ps if same_lag else float(lag_ps)
    return ModelFile.from_bytes(buffer.getvalue(), name=name), lag


class TitoIntegrator(TimewarpIntegrator):
    """Generate a trajectory with a TITO transfer operator: each step is one move of lag ``lag``.

    TITO (Viguera Diez et al.) learns x(t + lag) given x(t) for a range of lags; sampled one lag
    after another it is a surrogate of the dynamics, so a ``Simulation`` with reporters writes a
    TITO trajectory, and the simulation time advances by ``lag`` per step.  It is not exact:
    moves are taken without a Metropolis test, except that a move raising the potential energy by
    more than ``energy_threshold`` or inverting a chiral centre is refused (the state then stays
    for that step, as in Timewarp's exploration mode); ``getAcceptanceRate()`` tells how often the
    model's moves passed.

    A lag other than the file's own is applied to a copy of the model held in memory (see
    :func:`tito_model_at_lag`); ``getModelFile()`` is then empty and ``getModelData()`` holds
    the copy.

    Parameters
    ----------
    model
        A TITO model file exported by ``openmm-timewarp export``, a shipped name,
        or an open :class:`~openmm_timewarp.model_file.ModelFile`.
    topology
        The ``Topology`` of the System, or a sequence of element symbols, one per particle.
    temperature
        Temperature of the velocities the integrator draws after each step (kelvin if a float).
    lag
        Lag of each step (ps if a float), within the model's trained range; by default the lag
        the file was exported with.
    basin_populations
        Each residue's equilibrium populations of beta, alpha_R, alpha_L and PII_L, e.g. the
        ``populations`` of an exact :func:`~openmm_timewarp.run.sample` run of the same peptide;
        the model then keeps a residue's basin change with the probability that gives
        its basin chain these populations (``docs/tito.md``). None: the model's own populations.
    energy_threshold
        Largest energy increase a move may bring (kJ/mol if a float).
    random_seed
        Seed of the model's randomness and the velocities; 0 picks a unique one.
    chiral_centers
        ``(center, a, b, c)`` quadruplets whose handedness moves must keep; by default the
        C-alpha atoms of the topology's amino acids.
    hmc_interval, hmc_steps, hmc_step_size, hmc_minimum_mass
        The relaxation: a hybrid Monte Carlo move of ``hmc_steps`` leapfrog steps of
        ``hmc_step_size`` (ps if a float) after every ``hmc_interval`` steps, in the same
        ``Context``, with particles lighter than ``hmc_minimum_mass`` (daltons if a float) moving
        with that mass; by default the model's recommendation (a torsion model, whose moves keep
        bond lengths and angles, recommends one after every step; the Cartesian model none).
    """

    def __init__(self, model: ModelLike, topology: Union[app.Topology, Sequence[str]],
                 temperature: Temperature = 310.0 * unit.kelvin, lag: Optional[Time] = None, *,
                 basin_populations: Optional[BasinPopulations] = None,
                 energy_threshold: Energy = 300.0 * unit.kilojoule_per_mole, random_seed: int = 0,
                 chiral_centers: Optional[Iterable[Tuple[int, int, int, int]]] = None,
                 hmc_interval: Optional[int] = None, hmc_steps: Optional[int] = None,
                 hmc_step_size: Optional[Time] = None, hmc_minimum_mass: Optional[Mass] = None):
        if basin_populations is not None and isinstance(topology, app.Topology):
            rows, expected = np.shape(basin_populations)[0], len(residues_with_phi_and_psi(topology)[0])
            if np.ndim(basin_populations) == 2 and rows != expected:
                raise ValueError(f"TitoIntegrator: basin populations for {rows} residues, but the topology has "
                                 f"{expected} residues with both phi and psi")
        model_file, _ = tito_model_at_lag(model, None if lag is None else _value_in(lag, unit.picosecond),
                                          basin_populations)
        super().__init__(model_file, topology, temperature, metropolis_hastings=False, proposals_per_batch=1,
                         adaptive_batch_size=False, exploration_energy_threshold=energy_threshold,
                         random_seed=random_seed, chiral_centers=chiral_centers, hmc_interval=hmc_interval,
                         hmc_steps=hmc_steps, hmc_step_size=hmc_step_size,
                         hmc_minimum_mass=hmc_minimum_mass)
