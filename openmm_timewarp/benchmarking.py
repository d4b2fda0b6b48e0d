"""Shared pieces of the benchmarks (``benchmarks/``): equal-wall-time runs of MD and Timewarp on one
machine, and the bookkeeping that turns their frames into ESS per second and basin visits.

Every run records positions after each advance until its wall-clock budget is spent, so methods
compare at equal wall time on the same System.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import openmm as mm
from openmm import app, unit

from . import analysis, systems

__all__ = ["TEMPERATURE", "fastest_platform", "run_for", "md_run", "timewarp_run", "generous_ess_per_second",
           "MISSED_BASIN_ENTRIES", "basin_labels", "first_visit_all"]

#: Temperature of every benchmark: that of the shipped models and references.
TEMPERATURE = 310.0 * unit.kelvin


def fastest_platform(system: mm.System, positions) -> mm.Platform:
    """Reference or CPU, whichever runs this System's MD faster here (2,000 steps of 1 fs each)."""
    best, best_time = None, math.inf
    for name in ("Reference", "CPU"):
        platform = mm.Platform.getPlatformByName(name)
        context = mm.Context(system, mm.LangevinMiddleIntegrator(TEMPERATURE, 1 / unit.picosecond,
                                                                 0.001 * unit.picosecond), platform)
        context.setPositions(positions)
        context.getIntegrator().step(100)
        start = time.perf_counter()
        context.getIntegrator().step(2000)
        elapsed = time.perf_counter() - start
        if elapsed < best_time:
            best, best_time = platform, elapsed
    return best


def run_for(seconds: float, advance: Callable[[], None], context: mm.Context,
            stop: Optional[Callable[[np.ndarray], bool]] = None, check_every: int = 50) -> Dict:
    """Call ``advance`` and record positions until ``seconds`` of wall time have passed.

    ``stop``, given the frames recorded so far every ``check_every`` frames, may end the run early.

    Returns
    -------
    dict
        ``frames`` (n, atoms, 3) nm, ``times`` (n,) s since the start, and ``seconds`` spent.
    """
    frames, times = [], []
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        advance()
        frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        times.append(time.perf_counter() - start)
        if stop is not None and len(frames) % check_every == 0 and stop(np.array(frames)):
            elapsed = time.perf_counter() - start
            break
    return {"frames": np.array(frames), "times": np.array(times), "seconds": elapsed}


def md_run(topology: app.Topology, positions, seconds: float, step_fs: float, frame_ps: float,
           platform: mm.Platform, seed: int, user_practice: bool) -> Dict:
    """Langevin MD (friction 1/ps) for ``seconds``, a frame every ``frame_ps``.

    With ``user_practice`` the System has HBonds constraints and hydrogen mass 4 amu (what a user
    would run), else it is the System Timewarp samples.  Returns :func:`run_for`'s dict with
    ``step_fs``, ``stride`` (steps per frame) and ``simulated_ns``.
    """
    kwargs = {"constraints": app.HBonds, "hydrogen_mass": 4.0} if user_practice else {}
    system = systems.create_system(topology, **kwargs)
    integrator = mm.LangevinMiddleIntegrator(TEMPERATURE, 1 / unit.picosecond, step_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = mm.Context(system, integrator, platform)
    context.setPositions(positions)
    context.setVelocitiesToTemperature(TEMPERATURE, seed)
    stride = max(1, round(frame_ps * 1000 / step_fs))
    result = run_for(seconds, lambda: integrator.step(stride), context)
    result.update(step_fs=step_fs, stride=stride, simulated_ns=len(result["frames"]) * stride * step_fs * 1e-6)
    return result


def timewarp_run(model: str, topology: app.Topology, system: mm.System, positions, seconds: float, seed: int,
                 explore: bool = False, batch: int = 0, hmc_interval: Optional[int] = 1,
                 stop: Optional[Callable[[np.ndarray], bool]] = None) -> Dict:
    """``TimewarpIntegrator`` on the Reference platform for ``seconds``, a frame every step.

    ``explore`` switches Metropolis-Hastings off (exploration mode); ``batch`` > 0 fixes the
    proposals per model call; ``hmc_interval`` None takes the model's recommendation.  Returns
    :func:`run_for`'s dict with ``acceptance``, ``proposals`` and ``hmc_acceptance``.
    """
    from .integrator import TimewarpIntegrator

    options = {"proposals_per_batch": batch, "adaptive_batch_size": False} if batch > 0 else {}
    integrator = TimewarpIntegrator(model, topology, TEMPERATURE, random_seed=seed, metropolis_hastings=not explore,
                                    hmc_interval=hmc_interval, **options)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    result = run_for(seconds, lambda: integrator.step(1), context, stop)
    result.update(acceptance=integrator.getAcceptanceRate(), proposals=integrator.getNumProposed(),
                  hmc_acceptance=integrator.getHMCAcceptanceRate())
    return result


#: Entries credited to a baseline run for a basin it never entered: zero events observed are
#: consistent, at 95% confidence, with a Poisson mean of up to 3 (-ln 0.05 = 3.0).
MISSED_BASIN_ENTRIES = 3.0


def generous_ess_per_second(result: Dict, seconds: float, required: Iterable[str]) -> float:
    """Minimum ESS per second of a run's ``result["ess"]`` with every required basin indicator the
    run never entered credited :data:`MISSED_BASIN_ENTRIES` entries: a 95% upper bound for a run
    that missed a basin, so that a ratio against it is a lower bound."""
    required = set(required)
    counted = [(v if v > 0 else MISSED_BASIN_ENTRIES) if k in required else v for k, v in result["ess"].items()
               if not k.startswith("basin:") or k in required]
    return min(counted) / seconds


def basin_labels(frames: np.ndarray, topology: app.Topology) -> np.ndarray:
    """Basin index of every residue in every frame, (n_frames, n_residues)."""
    return analysis.assign_basins(*analysis.backbone_dihedrals(frames, topology))


def first_visit_all(labels: np.ndarray, basins: List[Tuple[int, str]]) -> Optional[int]:
    """Frame index by which every (residue, basin) of ``basins`` has been visited, or None."""
    last = 0
    for r, name in basins:
        hits = np.flatnonzero(labels[:, r] == analysis.BASIN_NAMES.index(name))
        if not len(hits):
            return None
        last = max(last, int(hits[0]))
    return last
