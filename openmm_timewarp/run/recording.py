"""What :func:`~openmm_timewarp.run.sample` and :func:`~openmm_timewarp.run.run_md` share.

The cheap checks made before any slow set-up, the loop that steps a ``Simulation`` and records
frames and a log (streamed to the run folder, with checkpoints, stopping cleanly on SIGINT or
SIGTERM), and the result and run folder built from what was recorded.
"""
from __future__ import annotations

import math
import numbers
import os
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Type, TypeVar, Union

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit

from ..analysis import to_mdtraj
from ..analysis.msm import residue_timescales
from ..errors import InputError, ModelDomainWarning
from ..peptide import Prepared, check_readable
from ..systems import create_system, warn_if_slow
from .checkpoint import Checkpoint, write_checkpoint
from .folder import FILE_NAMES, check_folder, write_results
from .interrupt import StopRequest
from .results import RunResult, residue_dihedrals, residue_populations
from .writer import FrameWriter, load_frames, read_log

__all__ = ["Chain", "Recording", "check_request", "check_platform", "kelvin", "record", "base_summary", "finish",
           "build_system", "warn_domain", "FORCE_FIELD"]

PathLike = Union[str, os.PathLike]
Result = TypeVar("Result", bound=RunResult)
_KJ = unit.kilojoule_per_mole
#: How the runs' System is built (:func:`~openmm_timewarp.systems.create_system`); ``compare`` checks it.
FORCE_FIELD = "amber14-all.xml + GBSAOBCForce (OBC2 radii and scales), NoCutoff, no constraints"


@dataclass
class Chain:
    """A run set up and ready to record.

    Attributes
    ----------
    prepared
        The peptide.
    simulation
        Its Simulation, positions set (minimized, thermalized) for a new run.
    log_columns
        The log's columns: step, time (ps), potential energy (kJ/mol) and one of the run's own.
    last_column
        The last column's value from a State (and the integrator).
    settings
        What the run was asked for, JSON-ready: the checkpoint keeps it for ``resume``.
    desc, title
        Name the run in the progress bar and in the plots.
    """

    prepared: Prepared
    simulation: app.Simulation
    log_columns: Sequence[str]
    last_column: Callable[[openmm.State], float]
    settings: Dict
    desc: str
    title: str


@dataclass
class Recording:
    """What a run recorded: the start and every frame (nm), a log row per frame, the progress made."""

    start_xyz: np.ndarray
    xyz: List[np.ndarray]
    log_columns: Sequence[str]
    log_rows: List[list]
    step: int = 0
    wall_time_s: float = 0.0
    interrupted_by: Optional[str] = None
    files: Dict[str, str] = field(default_factory=dict)


def kelvin(temperature: Union[float, unit.Quantity]) -> float:
    """A temperature in kelvin from a Quantity, or a float taken to be in kelvin already."""
    return temperature.value_in_unit(unit.kelvin) if unit.is_quantity(temperature) else float(temperature)


def check_platform(name: str) -> None:
    """Refuse an OpenMM platform name this installation does not have (an :class:`InputError`)."""
    known = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name not in known:
        raise InputError(f"unknown OpenMM platform {name!r}; this installation has {', '.join(known)}")


def check_request(pdb: PathLike, out: Optional[PathLike], overwrite: bool, steps: int, frame_every: int,
                  temperature_K: float, platform: str, checkpoint_every_s: float = 300.0, seed: int = 1) -> None:
    """Refuse a missing input, an existing output folder or a setting the integrators would reject.

    Cheap, and made before any slow set-up, so that every refusal is one
    :class:`~openmm_timewarp.errors.InputError` and not an exception from deep inside OpenMM.
    """
    check_readable(pdb)
    if out is not None:
        check_folder(out, overwrite)
    if not (isinstance(steps, numbers.Integral) and steps >= 1):
        raise InputError(f"steps must be a positive whole number (got {steps})")
    if not (isinstance(frame_every, numbers.Integral) and 1 <= frame_every <= steps):
        raise InputError(f"need steps >= frame interval >= 1 (got {steps} steps, a frame every {frame_every})")
    if not (math.isfinite(temperature_K) and temperature_K > 0):
        raise InputError(f"temperature must be a positive number of kelvin (got {temperature_K:g})")
    if not (isinstance(seed, numbers.Integral) and -2**31 <= seed < 2**31):
        raise InputError(f"the seed must be a whole number that fits in 32 bits (got {seed})")
    if not checkpoint_every_s > 0:
        raise InputError(f"the checkpoint interval must be positive (got {checkpoint_every_s:g} s)")
    check_platform(platform)


def build_system(prepared: Prepared, source: str) -> openmm.System:
    """The run's System (:func:`~openmm_timewarp.systems.create_system`); the force field's refusal as an InputError."""
    try:
        system = create_system(prepared.topology)
    except ValueError as error:
        hint = "" if prepared.capped else "; for a peptide with charged termini pass --cap-termini (cap_termini=True)"
        raise InputError(f"{source}: the force field cannot build this peptide ({error}){hint}") from None
    warn_if_slow(system)
    return system


def warn_domain(reasons: Sequence[str]) -> None:
    """Show each reason why a run lies outside its model's domain once, as a ModelDomainWarning."""
    for reason in reasons:
        # Attributed to the caller of sample() or resume(): warn_domain <- _chain <- run_sampling <- those.
        warnings.warn(reason, ModelDomainWarning, stacklevel=5)


class _Sink:
    """The run folder while a run records: streamed frames and log, and checkpoints every so often."""

    def __init__(self, out: str, chain: Chain, writer: FrameWriter, every_s: float, input_pdb: bytes) -> None:
        self.out, self.chain, self.writer, self.every_s, self.input_pdb = out, chain, writer, every_s, input_pdb
        self.last = time.monotonic()

    def checkpoint(self, step: int, wall_time_s: float, force: bool = False) -> None:
        if not force and time.monotonic() - self.last < self.every_s:
            return
        self.writer.sync()
        context = self.chain.simulation.context.createCheckpoint()
        write_checkpoint(self.out, Checkpoint(self.chain.settings, step, self.writer.n_frames, wall_time_s, context,
                                              self.input_pdb))
        self.last = time.monotonic()


def _open_folder(out: str, overwrite: bool, chain: Chain, resumed: Optional[Checkpoint],
                 recording: Recording) -> FrameWriter:
    """A new run folder (replacing an old one only with ``overwrite``), or the resumed run's, cut to its checkpoint."""
    paths = {role: os.path.join(out, name) for role, name in FILE_NAMES.items()}
    n_atoms = chain.prepared.topology.getNumAtoms()
    if resumed is None:
        check_folder(out, overwrite)
        if os.path.isdir(out):
            shutil.rmtree(out)
        os.makedirs(out)
        to_mdtraj(recording.start_xyz, chain.prepared.topology).save_pdb(paths["topology"])
        return FrameWriter.create(paths["trajectory"], paths["log"], n_atoms, recording.log_columns)
    try:
        writer = FrameWriter.reopen(paths["trajectory"], paths["log"], n_atoms, resumed.n_frames)
    except (OSError, ValueError) as error:
        raise InputError(f"{out}: cannot continue the run: {error}") from None
    return writer


def record(chain: Chain, out: Optional[PathLike] = None, overwrite: bool = False, progress: bool = False,
           checkpoint_every_s: float = 300.0, resumed: Optional[Checkpoint] = None, input_pdb: bytes = b"",
           ) -> Recording:
    """Step ``chain``'s Simulation, keeping a frame and a log row every ``frame_every`` steps.

    A log row is (step, time in ps, potential energy in kJ/mol, ``last_column(state)``).  Steps
    past the last whole frame interval are run but not recorded.  With ``out``, frames and rows
    go to the folder as they come, with a checkpoint every ``checkpoint_every_s`` seconds, when
    stopped and at the end; ``resumed`` continues the run of that checkpoint.  SIGINT and
    SIGTERM stop the run after its current block of ``frame_every`` steps.
    """
    simulation = chain.simulation
    start = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    recording = Recording(start.astype(np.float32), [], list(chain.log_columns), [])
    sink = None
    if resumed is not None:
        simulation.context.loadCheckpoint(resumed.context)
        recording.step, recording.wall_time_s = resumed.step, resumed.wall_time_s
        recording.start_xyz = md.load(os.path.join(os.fspath(out), FILE_NAMES["topology"])).xyz[0]
    if out is not None:
        writer = _open_folder(os.fspath(out), overwrite, chain, resumed, recording)
        sink = _Sink(os.fspath(out), chain, writer, checkpoint_every_s, input_pdb)
        if resumed is None:  # a run killed before its first timed checkpoint can still be resumed
            sink.checkpoint(0, 0.0, force=True)
    try:
        _steps(chain, recording, sink, progress)
        if sink is not None:
            sink.checkpoint(recording.step, recording.wall_time_s, force=True)
    finally:
        if sink is not None:
            sink.writer.close()
    if sink is not None:
        # The frames went to the folder as they came, not into memory, where an hours-long run would
        # keep growing; the result reads them back once.
        folder = os.fspath(out)
        recording.log_rows = list(read_log(os.path.join(folder, FILE_NAMES["log"]))[1])
        if recording.log_rows:
            recording.xyz = list(load_frames(os.path.join(folder, FILE_NAMES["trajectory"]),
                                             os.path.join(folder, FILE_NAMES["topology"])).xyz)
    return recording


def _steps(chain: Chain, recording: Recording, sink: Optional[_Sink], progress: bool) -> None:
    """The recording loop of :func:`record`, from ``recording.step`` on."""
    from tqdm import tqdm

    simulation, steps, frame_every = chain.simulation, chain.settings["steps"], chain.settings["frame_every"]
    dt_ps = simulation.integrator.getStepSize().value_in_unit(unit.picosecond)
    n_frames, began, before = steps // frame_every, time.perf_counter(), recording.wall_time_s
    with StopRequest() as stop, tqdm(total=steps, initial=recording.step, unit="step", desc=chain.desc,
                                     disable=not progress, file=sys.stderr, smoothing=0.1) as bar:
        for _ in range(recording.step // frame_every, n_frames):
            if stop.requested:
                break
            simulation.step(frame_every)
            state = simulation.context.getState(getPositions=True, getEnergy=True)
            xyz = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer).astype(np.float32)
            recording.step += frame_every
            row = [recording.step, round(recording.step * dt_ps, 6), state.getPotentialEnergy().value_in_unit(_KJ),
                   chain.last_column(state)]
            recording.wall_time_s = before + time.perf_counter() - began
            if sink is None:
                recording.xyz.append(xyz)
                recording.log_rows.append(row)
            else:
                sink.writer.append(xyz, row)
                sink.checkpoint(recording.step, recording.wall_time_s)
            bar.update(frame_every)
        if not stop.requested and steps > recording.step:
            simulation.step(steps - recording.step)
            bar.update(steps - recording.step)
            recording.step = steps
        recording.wall_time_s = before + time.perf_counter() - began
        recording.interrupted_by = stop.requested if recording.step < steps else None


def base_summary(settings: Dict, prepared: Prepared) -> Dict:
    """The settings and input facts every run's ``summary.json`` records."""
    summary = dict(settings)
    summary.update(sequence=prepared.sequence, n_atoms=prepared.topology.getNumAtoms(),
                   termini="ACE/NME caps" if prepared.capped else "charged", atoms_added=prepared.atoms_added,
                   atoms_removed=prepared.atoms_removed, force_field=FORCE_FIELD,
                   domain_warnings=list(prepared.domain_warnings))
    return summary


def finish(result_type: Type[Result], chain: Chain, recording: Recording, summary: Dict, out: Optional[PathLike],
           dt_ps: float, kinetics: bool = False, **fields) -> Result:
    """The result of a recorded run, with its statistics added to ``summary``; its files written to ``out``.

    ``fields`` are the result type's own fields (acceptance, step size), recorded in the summary too.
    With ``kinetics`` the summary gets each residue's implied timescales (``analysis.msm``), which
    the folder plots: the frames are then a trajectory in time, not only samples.
    """
    topology = chain.prepared.topology
    start = to_mdtraj(recording.start_xyz, topology)
    times = np.array([row[1] for row in recording.log_rows])
    xyz = np.array(recording.xyz, dtype=np.float32).reshape(-1, topology.getNumAtoms(), 3)
    trajectory = md.Trajectory(xyz, start.topology, time=times)
    residues, phi, psi = residue_dihedrals(trajectory)
    populations = residue_populations(phi, psi)
    interrupted = recording.interrupted_by is not None
    summary.update(status="interrupted" if interrupted else "complete", steps_done=recording.step,
                   simulated_time_ps=recording.step * dt_ps, wall_time_s=recording.wall_time_s,
                   notes=chain.prepared.notes, n_frames=trajectory.n_frames, residues=residues,
                   populations=populations, **fields)
    if kinetics and trajectory.n_frames > 1:
        summary["implied_timescales"] = residue_timescales(phi, psi, dt_ps * chain.settings["frame_every"])
    if interrupted:
        summary["interrupted_by"] = recording.interrupted_by
    files = {}
    if out is not None:
        files = write_results(os.fspath(out), trajectory, phi, psi, summary, chain.title)
    return result_type(trajectory, phi, psi, residues, populations, recording.wall_time_s, chain.prepared.notes, files,
                       summary, interrupted=interrupted, **fields)
