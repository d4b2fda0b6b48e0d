"""Python API: from a PDB file to samples, statistics and files, with Timewarp or plain MD.

>>> from openmm_timewarp.api import sample, run_md
>>> result = sample("examples/data/ace-ala-nme.pdb", steps=20_000, out="ala-timewarp")
>>> result.acceptance, result.populations[0]["alpha_R"], result.trajectory.n_frames

Both functions check and complete the PDB file (:mod:`openmm_timewarp.cli.prepare`), build the
reference System (amber14 + OBC2, no constraints: :func:`openmm_timewarp.systems.create_system`),
minimize, run, and return the frames as an ``mdtraj.Trajectory`` with the basin populations.  With
``out`` they also write a run folder (:mod:`openmm_timewarp.cli.outputs`).  The command line
``openmm-timewarp sample`` / ``md`` is a thin layer over them.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit

from .analysis import backbone_dihedrals, to_mdtraj
from .cli.outputs import check_folder, residue_labels, residue_populations, write_outputs
from .cli.prepare import InputError, ModelFacts, check_readable, model_facts, prepare_peptide
from .integrator import TimewarpIntegrator
from .systems import create_system, thermalize
from .trained import DEFAULT_MODEL, model_path

__all__ = ["DEFAULT_MODEL", "RunResult", "SamplingResult", "MDResult", "resolve_model", "sample", "run_md"]

_KJ = unit.kilojoule_per_mole
_R = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(_KJ / unit.kelvin)
PathLike = Union[str, os.PathLike]


@dataclass
class RunResult:
    """Frames and statistics of one run.

    Attributes
    ----------
    trajectory : mdtraj.Trajectory
        The recorded frames (nm); ``trajectory.topology`` is the prepared peptide.
    phi, psi : numpy.ndarray
        Backbone dihedrals of every frame, degrees, shape (n_frames, n_residues).
    residues : list of str
        Residue labels such as ``"ALA2"``, one per column of ``phi``.
    populations : list of dict
        Per residue, basin name -> [population, standard error].
    wall_time_s : float
        Wall-clock seconds of the run itself (after set-up and minimization).
    notes : list of str
        What was changed in the input (caps, hydrogens, stripped solvent).
    files : dict
        File role -> path of what was written; empty without ``out``.
    summary : dict
        Everything above that fits in JSON, plus the settings (as in ``summary.json``).
    """

    trajectory: md.Trajectory
    phi: np.ndarray
    psi: np.ndarray
    residues: List[str]
    populations: List[Dict[str, List[float]]]
    wall_time_s: float
    notes: List[str]
    files: Dict[str, str]
    summary: Dict


@dataclass
class SamplingResult(RunResult):
    """A Timewarp run: acceptance statistics too. ``biased`` is True in exploration mode."""

    acceptance: float = float("nan")
    num_accepted: int = 0
    num_proposed: int = 0
    biased: bool = False


@dataclass
class MDResult(RunResult):
    """A plain Langevin MD run."""

    step_fs: float = float("nan")


def resolve_model(model: PathLike) -> ModelFacts:
    """The facts of a model given by file path or shipped name, or an :class:`InputError` that says why not."""
    try:
        path = model_path(model)
    except FileNotFoundError as error:
        hint = ""
        if os.fspath(model) == DEFAULT_MODEL:
            hint = ("; the default model is not shipped in this build yet: pass --model FILE.pt (train one with "
                    "`openmm-timewarp generate-data`, `train` and `export`)")
        raise InputError(f"{error}{hint}") from None
    return model_facts(path)


def _prepare(pdb: PathLike, model: Optional[ModelFacts], strip_solvent: bool, seed: int):
    prepared = prepare_peptide(os.fspath(pdb), model, strip_solvent=strip_solvent, seed=seed)
    return prepared, create_system(prepared.topology)


def _check_request(pdb: PathLike, out: Optional[PathLike], overwrite: bool, steps: int, frame_every: int) -> None:
    """The cheap checks, made before any slow set-up."""
    check_readable(os.fspath(pdb))
    if out is not None:
        check_folder(os.fspath(out), overwrite)
    if frame_every < 1 or steps < frame_every:
        raise InputError(f"need steps >= frame interval >= 1 (got {steps} steps, a frame every {frame_every})")


def _run(simulation: app.Simulation, steps: int, frame_every: int, progress: bool, desc: str,
         extra: Callable[[openmm.State], float]) -> Tuple[np.ndarray, list, float]:
    """Step, keeping a frame and a log row every ``frame_every`` steps; returns (xyz nm, rows, wall s)."""
    from tqdm import tqdm

    n_frames = steps // frame_every
    xyz = np.empty((n_frames, simulation.topology.getNumAtoms(), 3), dtype=np.float32)
    rows = []
    dt_ps = simulation.integrator.getStepSize().value_in_unit(unit.picosecond)
    start = time.perf_counter()
    with tqdm(total=steps, unit="step", desc=desc, disable=not progress, file=sys.stderr, smoothing=0.1) as bar:
        for i in range(n_frames):
            simulation.step(frame_every)
            state = simulation.context.getState(getPositions=True, getEnergy=True)
            xyz[i] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            step = (i + 1) * frame_every
            rows.append([step, round(step * dt_ps, 6), state.getPotentialEnergy().value_in_unit(_KJ), extra(state)])
            bar.update(frame_every)
        if steps > n_frames * frame_every:
            simulation.step(steps - n_frames * frame_every)
            bar.update(steps - n_frames * frame_every)
    return xyz, rows, time.perf_counter() - start


def _finish(result_type, simulation: app.Simulation, start_xyz: np.ndarray, xyz: np.ndarray, wall: float,
            notes: List[str], summary: Dict, out: Optional[PathLike], overwrite: bool,
            log_columns: Sequence[str], rows: list, title: str, **fields) -> RunResult:
    start = to_mdtraj(start_xyz, simulation.topology)
    trajectory = md.Trajectory(xyz, start.topology, time=np.array([r[1] for r in rows]))
    phi, psi = backbone_dihedrals(trajectory)
    residues, populations = residue_labels(trajectory.topology), residue_populations(phi, psi)
    summary.update(wall_time_s=wall, notes=notes, n_frames=trajectory.n_frames, residues=residues,
                   populations=populations, **fields)
    files = {}
    if out is not None:
        files = write_outputs(os.fspath(out), overwrite, start, trajectory, phi, psi, log_columns, rows, summary, title)
    return result_type(trajectory, phi, psi, residues, populations, wall, notes, files, summary, **fields)


def _setup_summary(command: str, pdb: PathLike, prepared, temperature: float, seed: int, steps: int,
                   frame_every: int, dt_ps: float, platform: str) -> Dict:
    return dict(command=command, input=os.path.abspath(os.fspath(pdb)), sequence=prepared.sequence,
                n_atoms=prepared.topology.getNumAtoms(), temperature_K=temperature, seed=seed, steps=steps,
                frame_every=frame_every, simulated_time_ps=steps * dt_ps, platform=platform)


def sample(pdb: PathLike, model: PathLike = DEFAULT_MODEL, steps: int = 10_000, out: Optional[PathLike] = None,
           explore: bool = False, seed: int = 1, temperature: Union[float, unit.Quantity] = 310.0,
           frame_every: int = 10, strip_solvent: bool = False, overwrite: bool = False, progress: bool = False,
           threads: int = 1, platform: str = "Reference", hmc_interval: Optional[int] = None) -> SamplingResult:
    """Sample a peptide from a PDB file with a Timewarp model and Metropolis-Hastings.

    Parameters
    ----------
    pdb
        PDB file of one peptide chain; see :func:`openmm_timewarp.cli.prepare.prepare_peptide`.
    model
        Shipped model name or model file.
    steps
        Metropolis-Hastings steps (proposals); each advances the time by the model's lag.
    out
        Folder for the output files; nothing is written if None.
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
        recommendation (see :class:`~openmm_timewarp.TimewarpIntegrator`).

    Raises
    ------
    InputError
        For a missing model, a refused input (see ``prepare_peptide``), an existing ``out`` or bad counts.
    """
    import torch

    kelvin = temperature.value_in_unit(unit.kelvin) if unit.is_quantity(temperature) else float(temperature)
    _check_request(pdb, out, overwrite, steps, frame_every)
    facts = resolve_model(model)
    torch.set_num_threads(threads)
    prepared, system = _prepare(pdb, facts, strip_solvent, seed)
    # prepared.notes already holds the domain warnings (and reading them again would reload the model file).
    integrator = TimewarpIntegrator(facts.path, prepared.topology, kelvin, metropolis_hastings=not explore,
                                    random_seed=seed, hmc_interval=hmc_interval, warn_outside_domain=False)
    simulation = app.Simulation(prepared.topology, system, integrator, openmm.Platform.getPlatformByName(platform))
    # Minimize and give bonds and angles their thermal spread with 2 ps of MD (see systems.thermalize).
    simulation.context.setPositions(thermalize(system, prepared.positions, kelvin, seed=seed))
    start = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    xyz, rows, wall = _run(simulation, steps, frame_every, progress, "timewarp" + (" (explore)" if explore else ""),
                           lambda state: round(integrator.getAcceptanceRate(), 6))
    summary = _setup_summary("sample", pdb, prepared, kelvin, seed, steps, frame_every, facts.lag_time_ps, platform)
    summary.update(hmc_interval=integrator.getHMCInterval(), hmc_acceptance=round(integrator.getHMCAcceptanceRate(), 6))
    summary.update(model=os.fspath(model), model_path=facts.path, lag_time_ps=facts.lag_time_ps,
                   model_temperature_K=facts.temperature_K, mode="exploration" if explore else "metropolis-hastings")
    title = "Timewarp exploration (BIASED)" if explore else "Timewarp MH"
    return _finish(SamplingResult, simulation, start, xyz, wall, prepared.notes, summary, out, overwrite,
                   ["step", "time_ps", "potential_energy_kJ_mol", "acceptance"], rows, title,
                   acceptance=integrator.getAcceptanceRate(), num_accepted=integrator.getNumAccepted(),
                   num_proposed=integrator.getNumProposed(), biased=explore)


def run_md(pdb: PathLike, steps: int = 100_000, out: Optional[PathLike] = None, step_fs: float = 1.0,
           friction_per_ps: float = 1.0, seed: int = 1, temperature: Union[float, unit.Quantity] = 310.0,
           frame_every: int = 1000, strip_solvent: bool = False, overwrite: bool = False, progress: bool = False,
           platform: str = "Reference") -> MDResult:
    """The plain-MD baseline: ``LangevinMiddleIntegrator`` on the same System as :func:`sample`.

    Parameters are those of :func:`sample`, without the model, plus ``step_fs`` (the time step,
    femtoseconds; the System has no constraints, so keep it at 1-2 fs) and ``friction_per_ps``.
    The log's last column is the instantaneous kinetic temperature instead of the acceptance.
    """
    kelvin = temperature.value_in_unit(unit.kelvin) if unit.is_quantity(temperature) else float(temperature)
    _check_request(pdb, out, overwrite, steps, frame_every)
    prepared, system = _prepare(pdb, None, strip_solvent, seed)
    integrator = openmm.LangevinMiddleIntegrator(kelvin * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 step_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    simulation = app.Simulation(prepared.topology, system, integrator, openmm.Platform.getPlatformByName(platform))
    simulation.context.setPositions(prepared.positions)
    simulation.minimizeEnergy()
    simulation.context.setVelocitiesToTemperature(kelvin * unit.kelvin, seed)
    start = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    # No constraints; the CMMotionRemover takes 3 degrees of freedom.
    dof = 3 * system.getNumParticles() - 3

    def kinetic_temperature(state: openmm.State) -> float:
        return round(2.0 * state.getKineticEnergy().value_in_unit(_KJ) / (dof * _R), 3)

    xyz, rows, wall = _run(simulation, steps, frame_every, progress, "md", kinetic_temperature)
    summary = _setup_summary("md", pdb, prepared, kelvin, seed, steps, frame_every, step_fs / 1000.0, platform)
    summary.update(step_fs=step_fs, friction_per_ps=friction_per_ps)
    return _finish(MDResult, simulation, start, xyz, wall, prepared.notes, summary, out, overwrite,
                   ["step", "time_ps", "potential_energy_kJ_mol", "temperature_K"], rows, "Langevin MD", step_fs=step_fs)
