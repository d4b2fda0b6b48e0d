"""Shared pieces of the benchmarks (``benchmarks/``): equal-wall-time runs of MD, replica exchange and
Timewarp on one machine, and the bookkeeping that turns their frames into ESS per second and basin visits.

Every run records positions after each advance until its wall-clock budget is spent, so methods
compare at equal wall time on the same System.
"""
from __future__ import annotations

import math
import random
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import openmm as mm
from openmm import app, unit

from . import analysis, systems

__all__ = ["TEMPERATURE", "thermalized_peptide", "fastest_platform", "run_for", "md_run", "temperature_ladder", "timewarp_temperature_ladder", "remd_run", "timewarp_remd_run",
           "replica_exchange", "timewarp_run",
           "generous_ess_per_second", "strongest_baseline", "MISSED_BASIN_ENTRIES", "basin_labels", "first_visit_all", "required_basins",
           "indicator_name", "evaluate_run", "bound"]

#: Temperature of every benchmark: that of the shipped models and references.
TEMPERATURE = 310.0 * unit.kelvin

#: The practitioner's MD settings the HMR baselines and replica exchange use: HBonds, 4 amu hydrogens, 4 fs.
USER_PRACTICE = {"constraints": app.HBonds, "hydrogen_mass": 4.0}
USER_PRACTICE_STEP_FS = 4.0


def thermalized_peptide(sequence: str, seed: int) -> Tuple[app.Topology, mm.System, np.ndarray]:
    """Capped ``sequence`` as every benchmark starts it: topology, System (no constraints) and
    positions after 20 ps of MD at :data:`TEMPERATURE`."""
    topology, positions = systems.peptide_from_sequence(sequence, seed=seed)
    system = systems.create_system(topology)
    return topology, system, systems.thermalize(system, positions, TEMPERATURE, picoseconds=20.0, seed=seed)


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


def run_for(seconds: float, advance: Callable[[], None], context: Optional[mm.Context],
            stop: Optional[Callable[[np.ndarray], bool]] = None, check_every: int = 50,
            record: Optional[Callable[[], np.ndarray]] = None, began: Optional[float] = None,
            many: bool = False) -> Dict:
    """Call ``advance`` and record positions until ``seconds`` of wall time have passed.

    ``stop``, given the frames recorded so far every ``check_every`` frames, may end the run early.
    ``record`` returns the frame to keep (nm) when it is not ``context``'s positions, or with
    ``many`` the frames (k, atoms, 3) of this advance, all stamped with its end time.  ``began``
    (a ``time.perf_counter()`` value) starts the clock earlier, so that set-up such as loading a
    model counts in the budget and in the times.

    Returns
    -------
    dict
        ``frames`` (n, atoms, 3) nm, ``times`` (n,) s since the start, and ``seconds`` spent.
    """
    frames, times = [], []
    start = time.perf_counter() if began is None else began
    while (elapsed := time.perf_counter() - start) < seconds:
        advance()
        now = time.perf_counter() - start
        if many:
            got = list(record())
            frames.extend(got)
            times.extend([now] * len(got))
            continue
        frames.append(record() if record is not None else
                      context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        times.append(now)
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
    kwargs = USER_PRACTICE if user_practice else {}
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


def temperature_ladder(system: mm.System, positions, platform: mm.Platform, t_max: float = 450.0,
                       acceptance: float = 0.3, pilot_ps: float = 50.0, seed: int = 1,
                       step_fs: float = USER_PRACTICE_STEP_FS) -> List[float]:
    """A geometric temperature ladder from :data:`TEMPERATURE` to ``t_max`` (K) for replica exchange.

    A Langevin pilot of ``pilot_ps`` at 310 K measures the standard deviation sigma of the potential
    energy.  For Gaussian energies of constant heat capacity (sigma proportional to T), neighbours
    exchange with probability erfc(d_beta sigma / 2); solving that for ``acceptance`` gives a
    constant ratio T_(k+1) / T_k = 1 + 2 erfcinv(acceptance) R T / sigma, so the ladder is geometric
    and its length follows from ``t_max``.  ``step_fs`` is the pilot's time step, which must suit
    ``system`` (4 fs for :data:`USER_PRACTICE`, 2 fs without constraints but with 4 amu hydrogens).

    Returns
    -------
    list of float
        Temperatures in K, the first 310.
    """
    from scipy.special import erfcinv

    t0 = TEMPERATURE.value_in_unit(unit.kelvin)
    integrator = mm.LangevinMiddleIntegrator(TEMPERATURE, 1 / unit.picosecond, step_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = mm.Context(system, integrator, platform)
    context.setPositions(positions)
    context.applyConstraints(1e-6)
    context.setVelocitiesToTemperature(TEMPERATURE, seed)
    integrator.step(max(1, round(1000 / step_fs)))  # 1 ps
    energies = []
    for _ in range(max(20, int(pilot_ps * 10))):  # every 0.1 ps
        integrator.step(max(1, round(100 / step_fs)))
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    sigma = float(np.std(energies))
    rt = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin) * t0
    ratio = 1.0 + 2.0 * float(erfcinv(acceptance)) * rt / sigma
    n = max(2, int(math.ceil(math.log(t_max / t0) / math.log(ratio))) + 1)
    return [float(t) for t in np.geomspace(t0, t_max, n)]


def timewarp_temperature_ladder(topology: app.Topology, positions, platform: mm.Platform, t_max: float = 450.0,
                                acceptance: float = 0.3, seed: int = 1) -> List[float]:
    """:func:`temperature_ladder` sized on the System Timewarp samples (no constraints), whose energy
    fluctuates more than with HBonds; the pilot uses 4 amu hydrogens and 2 fs steps, masses leaving
    the distribution unchanged."""
    return temperature_ladder(systems.create_system(topology, hydrogen_mass=4.0), positions, platform, t_max,
                              acceptance, seed=seed, step_fs=2.0)


def remd_run(topology: app.Topology, positions, seconds: float, frame_ps: float, platform: mm.Platform, seed: int,
             temperatures: List[float]) -> Dict:
    """Temperature replica exchange (``openmm.app.ReplicaExchangeSampler``) for ``seconds`` of wall time.

    Every replica runs the practitioner's MD (:data:`USER_PRACTICE`, Langevin, friction 1/ps) for
    ``frame_ps`` per iteration; see :func:`replica_exchange` for the samples and the bookkeeping.
    """
    system = systems.create_system(topology, **USER_PRACTICE)
    integrator = mm.LangevinMiddleIntegrator(TEMPERATURE, 1 / unit.picosecond, USER_PRACTICE_STEP_FS * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(topology, system, integrator, platform)
    simulation.context.setPositions(positions)
    simulation.context.applyConstraints(1e-6)
    simulation.context.setVelocitiesToTemperature(TEMPERATURE, seed)
    steps = max(1, round(frame_ps * 1000 / USER_PRACTICE_STEP_FS))
    result = replica_exchange(simulation, temperatures, steps, seconds, seed)
    result.update(step_fs=USER_PRACTICE_STEP_FS, simulated_ns=result["iterations"] * steps * USER_PRACTICE_STEP_FS * 1e-6
                  * len(temperatures))
    return result


def timewarp_remd_run(model: str, topology: app.Topology, system: mm.System, positions, seconds: float, seed: int,
                      temperatures: List[float], steps: int, platform: Optional[mm.Platform] = None,
                      every_step: bool = False) -> Dict:
    """Temperature replica exchange with ``TimewarpIntegrator`` as every replica's move: OpenMM's own
    ``ReplicaExchangeSampler`` around an unchanged Simulation, ``steps`` Timewarp steps (Metropolis-
    Hastings at the replica's temperature, and the model's hybrid Monte Carlo) per replica and
    iteration.  Each replica's moves are exact at its temperature and the exchanges are exact, so the
    310 K state samples the Boltzmann distribution.  The clock starts before the model loads.
    See :func:`replica_exchange` for the samples (``every_step``) and the bookkeeping; also returns
    ``acceptance``.
    """
    from .integrator import TimewarpIntegrator

    began = time.perf_counter()
    integrator = TimewarpIntegrator(model, topology, TEMPERATURE, random_seed=seed, hmc_interval=None)
    simulation = app.Simulation(topology, system, integrator, platform or mm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(positions)
    result = replica_exchange(simulation, temperatures, steps, seconds, seed, began, every_step)
    result.update(acceptance=integrator.getAcceptanceRate(), hmc_acceptance=integrator.getHMCAcceptanceRate(),
                  proposals=integrator.getNumProposed())
    return result


class _StateZeroRecorder(app.ReplicaExchangeSampler):
    """The sampler, unchanged, except that the replica holding state 0 is advanced one step at a time
    and its conformation kept after every step (``frames``): each is a sample of state 0."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.frames: List[np.ndarray] = []

    def simulateReplica(self, index: int, steps: Optional[int] = None):
        if self.replicaStateIndex[index] != 0:
            return super().simulateReplica(index, steps)
        for _ in range(self.stepsPerIteration if steps is None else steps):
            super().simulateReplica(index, 1)
            self.frames.append(self.replicaConformation[index].getPositions(asNumpy=True).value_in_unit(unit.nanometer))


def replica_exchange(simulation: app.Simulation, temperatures: List[float], steps: int, seconds: float, seed: int,
                     began: Optional[float] = None, every_step: bool = False) -> Dict:
    """Run ``app.ReplicaExchangeSampler`` over ``temperatures`` (K) with ``steps`` of ``simulation``'s
    integrator per replica and iteration, for ``seconds`` of wall time (from ``began``, if given).

    The replicas run one after another in one Context, so all replicas' time is on the clock; the
    frames are the 310 K state's conformation after each iteration's exchanges, or with
    ``every_step`` after every step of the replica that holds 310 K (``steps`` frames per iteration).

    Returns
    -------
    dict
        :func:`run_for`'s dict with ``temperatures``, ``iterations``, ``stride`` (steps per iteration),
        ``state0_changes`` (fraction of iterations after which another replica holds 310 K) and
        ``round_trips`` (replicas that went from 310 K to the top and back).
    """
    random.seed(seed)  # the sampler draws its exchanges from Python's random module
    kind = _StateZeroRecorder if every_step else app.ReplicaExchangeSampler
    sampler = kind([{"temperature": t * unit.kelvin} for t in temperatures], simulation, steps)
    holders, top = [0], len(temperatures) - 1
    # A round trip: a replica goes from 310 K to the top state and back.
    reached_top, trips = [False] * len(temperatures), 0
    been_bottom = [replica == 0 for replica in range(len(temperatures))]

    def record() -> np.ndarray:
        nonlocal trips
        states = sampler.replicaStateIndex
        for replica, state in enumerate(states):
            been_bottom[replica] |= state == 0
            reached_top[replica] |= state == top and been_bottom[replica]
        holder = states.index(0)
        if reached_top[holder]:
            trips += 1
            reached_top[holder] = False
        holders.append(holder)
        if every_step:
            frames, sampler.frames = sampler.frames, []
            return np.array(frames)
        return sampler.replicaConformation[holder].getPositions(asNumpy=True).value_in_unit(unit.nanometer)

    result = run_for(seconds, lambda: sampler.simulate(1), None, record=record, began=began, many=every_step)
    n = len(holders) - 1
    result.update(temperatures=list(temperatures), iterations=n, stride=steps,
                  state0_changes=float(np.mean(np.diff(holders) != 0)) if n else 0.0, round_trips=trips)
    return result


def timewarp_run(model: str, topology: app.Topology, system: mm.System, positions, seconds: float, seed: int,
                 explore: bool = False, batch: int = 0, hmc_interval: Optional[int] = 1,
                 stop: Optional[Callable[[np.ndarray], bool]] = None, platform: Optional[mm.Platform] = None,
                 hmc: Optional[Dict] = None) -> Dict:
    """``TimewarpIntegrator`` on ``platform`` (default Reference) for ``seconds``, a frame every step; the
    clock starts before the model loads, so loading and the Context's creation are in the budget.

    ``explore`` switches Metropolis-Hastings off (exploration mode); ``batch`` > 0 fixes the
    proposals per model call; ``hmc_interval`` None takes the model's recommendation, and ``hmc``
    (``hmc_steps``, ``hmc_step_size``, ``hmc_minimum_mass``) overrides its other hybrid Monte Carlo
    settings.  Returns :func:`run_for`'s dict with ``acceptance``, ``proposals`` and ``hmc_acceptance``.
    """
    from .integrator import TimewarpIntegrator

    began = time.perf_counter()
    options = {"proposals_per_batch": batch, "adaptive_batch_size": False} if batch > 0 else {}
    options.update(hmc or {})
    integrator = TimewarpIntegrator(model, topology, TEMPERATURE, random_seed=seed, metropolis_hastings=not explore,
                                    hmc_interval=hmc_interval, **options)
    context = mm.Context(system, integrator, platform or mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    result = run_for(seconds, lambda: integrator.step(1), context, stop, began=began)
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


def strongest_baseline(results: Dict[str, Dict], seconds: Dict[str, float],
                       required: Iterable[str]) -> Tuple[str, float, bool]:
    """The baseline with the highest ESS per second among ``results`` (name -> a result with
    ``ess_per_second`` and ``ess``), its ESS per second, and whether that is a bound: when no
    baseline entered every required basin, each is credited :data:`MISSED_BASIN_ENTRIES` entries
    for the basins it missed (:func:`generous_ess_per_second`) and the strongest bound is returned,
    so that a ratio against it is a lower bound."""
    required = list(required)
    measured = {m: r["ess_per_second"] for m, r in results.items()}
    bounded = {m: generous_ess_per_second(r, seconds[m], required) for m, r in results.items()}
    name = max(results, key=lambda m: (measured[m], bounded[m]))
    if measured[name] > 0:
        return name, measured[name], False
    return name, bounded[name], True


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


def required_basins(reference: analysis.Reference, min_population: float) -> List[Tuple[int, str]]:
    """(residue, basin) pairs the reference populates at ``min_population`` or more."""
    return [(r, name) for r, pops in enumerate(reference.residue_populations)
            for name, (p, _) in pops.items() if name in analysis.BASIN_NAMES and p >= min_population]


def indicator_name(residue: int, basin: str, n_residues: int) -> str:
    """The name :func:`analysis.observables` gives a basin indicator."""
    return f"basin:{basin}" + ("" if n_residues == 1 else f":{residue}")


def evaluate_run(run: Dict, topology: app.Topology, reference: analysis.Reference, tica_model,
                 basins: List[Tuple[int, str]]) -> Dict:
    """ESS (every observable, and the minimum per second, also without the basin indicators), JSD per
    residue to ``reference`` and the wall time by which every (residue, basin) of ``basins`` was visited
    (None if never) of one run."""
    phi, psi = analysis.backbone_dihedrals(run["frames"], topology)
    n_res = phi.shape[1]
    required = [indicator_name(r, b, n_res) for r, b in basins]
    ess = analysis.ess_report(analysis.observables(phi, psi, tica_model), required)
    visited = first_visit_all(analysis.assign_basins(phi, psi), basins)
    return {
        "frames": len(phi),
        "ess": {k: v for k, v in ess.items() if k != "min"},
        "ess_min": ess["min"],
        "ess_per_second": ess["min"] / run["seconds"],
        # sin/cos of phi and psi and TICA-1, which every run samples
        "smooth_ess_per_second": min(v for k, v in ess.items() if k != "min" and not k.startswith("basin:"))
        / run["seconds"],
        "jsd": [analysis.jensen_shannon(analysis.ramachandran_histogram(phi[:, r], psi[:, r]), reference.histograms[r])
                for r in range(n_res)],
        "all_basins_seconds": float(run["times"][visited]) if visited is not None else None,
    }


def bound(value: Optional[float], lower: bool) -> str:
    """A ratio or time for a table: ``never`` for None, ``>=`` before a lower bound."""
    return "never" if value is None else (">=" if lower else "") + f"{value:.1f}"
