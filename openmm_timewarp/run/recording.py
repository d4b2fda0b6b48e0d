"""What :func:`~openmm_timewarp.run.sample` and :func:`~openmm_timewarp.run.run_md` share.

The cheap checks made before any slow set-up, the loop that steps a ``Simulation`` and records
frames and a log, and the result (and run folder) built from what was recorded.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Type, TypeVar, Union

import mdtraj as md
import numpy as np
import openmm
from openmm import app, unit

from ..analysis import backbone_dihedrals, to_mdtraj
from ..errors import InputError
from ..peptide import Prepared, check_readable
from .folder import check_folder, write_run
from .results import RunResult, residue_labels, residue_populations

__all__ = ["Recording", "check_request", "kelvin", "record", "base_summary", "finish"]

PathLike = Union[str, os.PathLike]
Result = TypeVar("Result", bound=RunResult)
_KJ = unit.kilojoule_per_mole


@dataclass
class Recording:
    """What a run recorded: the start and the frames (nm), a log row per frame, the wall time."""

    start_xyz: np.ndarray
    xyz: np.ndarray
    log_columns: Sequence[str]
    log_rows: List[list]
    wall_time_s: float


def kelvin(temperature: Union[float, unit.Quantity]) -> float:
    """A temperature in kelvin from a Quantity, or a float taken to be in kelvin already."""
    return temperature.value_in_unit(unit.kelvin) if unit.is_quantity(temperature) else float(temperature)


def check_request(pdb: PathLike, out: Optional[PathLike], overwrite: bool, steps: int, frame_every: int) -> None:
    """Refuse a missing input, an existing output folder or bad counts (an :class:`InputError`), cheaply."""
    check_readable(pdb)
    if out is not None:
        check_folder(out, overwrite)
    if frame_every < 1 or steps < frame_every:
        raise InputError(f"need steps >= frame interval >= 1 (got {steps} steps, a frame every {frame_every})")


def record(simulation: app.Simulation, steps: int, frame_every: int, log_columns: Sequence[str],
           last_column: Callable[[openmm.State], float], progress: bool = False, desc: str = "") -> Recording:
    """Step ``simulation``, keeping a frame and a log row every ``frame_every`` steps.

    A log row is (step, time in ps, potential energy in kJ/mol, ``last_column(state)``).  Steps
    past the last whole frame interval are run but not recorded.  ``progress`` shows a bar on stderr.
    """
    from tqdm import tqdm

    start = simulation.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    n_frames = steps // frame_every
    xyz = np.empty((n_frames, simulation.topology.getNumAtoms(), 3), dtype=np.float32)
    rows = []
    dt_ps = simulation.integrator.getStepSize().value_in_unit(unit.picosecond)
    began = time.perf_counter()
    with tqdm(total=steps, unit="step", desc=desc, disable=not progress, file=sys.stderr, smoothing=0.1) as bar:
        for i in range(n_frames):
            simulation.step(frame_every)
            state = simulation.context.getState(getPositions=True, getEnergy=True)
            xyz[i] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            step = (i + 1) * frame_every
            rows.append([step, round(step * dt_ps, 6), state.getPotentialEnergy().value_in_unit(_KJ),
                         last_column(state)])
            bar.update(frame_every)
        if steps > n_frames * frame_every:
            simulation.step(steps - n_frames * frame_every)
            bar.update(steps - n_frames * frame_every)
    return Recording(start, xyz, list(log_columns), rows, time.perf_counter() - began)


def base_summary(command: str, pdb: PathLike, prepared: Prepared, temperature_K: float, seed: int, steps: int,
                 frame_every: int, dt_ps: float, platform: str) -> Dict:
    """The settings every run's ``summary.json`` records."""
    return dict(command=command, input=os.path.abspath(os.fspath(pdb)), sequence=prepared.sequence,
                n_atoms=prepared.topology.getNumAtoms(), temperature_K=temperature_K, seed=seed, steps=steps,
                frame_every=frame_every, simulated_time_ps=steps * dt_ps, platform=platform)


def finish(result_type: Type[Result], topology: app.Topology, recording: Recording, notes: List[str], summary: Dict,
           out: Optional[PathLike], overwrite: bool, title: str, **fields) -> Result:
    """The result of a recorded run, with its statistics added to ``summary``; written to ``out`` if given.

    ``fields`` are the result type's own fields (acceptance, step size), recorded in the summary too.
    """
    start = to_mdtraj(recording.start_xyz, topology)
    times = np.array([row[1] for row in recording.log_rows])
    trajectory = md.Trajectory(recording.xyz, start.topology, time=times)
    phi, psi = backbone_dihedrals(trajectory)
    residues, populations = residue_labels(trajectory.topology), residue_populations(phi, psi)
    summary.update(wall_time_s=recording.wall_time_s, notes=notes, n_frames=trajectory.n_frames,
                   residues=residues, populations=populations, **fields)
    files = {}
    if out is not None:
        files = write_run(out, overwrite, start, trajectory, phi, psi, recording.log_columns, recording.log_rows,
                          summary, title)
    return result_type(trajectory, phi, psi, residues, populations, recording.wall_time_s, notes, files, summary,
                       **fields)
