"""The folder a run writes: trajectory, log, plots, populations and summaries.

A run folder holds ``topology.pdb`` (the minimized start, the topology of the trajectory),
``trajectory.dcd``, ``log.csv``, ``ramachandran_<residue>.png`` per residue, ``populations.csv``,
``summary.txt`` and ``summary.json``.  :func:`load_run` reads one back (``compare`` does).
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from typing import Dict, Sequence, Tuple, Union

import mdtraj as md
import numpy as np

from ..analysis import plot_free_energy
from ..errors import InputError

__all__ = ["check_folder", "write_run", "load_run", "summary_text"]

PathLike = Union[str, os.PathLike]


def check_folder(out: PathLike, overwrite: bool) -> None:
    """Refuse an existing ``out`` (an :class:`InputError`) unless ``overwrite`` allows replacing it.

    Runs check their folder before any slow set-up, and remove an old one only when the new files are ready.
    """
    out = os.fspath(out)
    if not os.path.lexists(out):
        return
    if not overwrite:
        raise InputError(f"output folder {out} exists; choose another --out or pass --overwrite to replace it")
    if not os.path.isdir(out) or os.path.islink(out):
        raise InputError(f"{out} exists and is not a folder; --overwrite replaces only output folders")


def _write_log(path: str, columns: Sequence[str], rows: Sequence[Sequence[float]]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def summary_text(summary: Dict) -> str:
    """The human-readable ``summary.txt`` of a run's summary (as in ``summary.json``)."""
    lines = [f"openmm-timewarp {summary['command']}: {summary['input']} ({summary['sequence']}, "
             f"{summary['n_atoms']} atoms) at {summary['temperature_K']:g} K"]
    if summary.get("biased"):
        lines.append("EXPLORATION MODE: proposals accepted without Metropolis-Hastings; the frames are BIASED "
                     "and the populations below are NOT Boltzmann populations.")
    lines += [f"note: {note}" for note in summary["notes"]]
    if summary["command"] == "sample":
        lines.append(f"model {summary['model']} (lag {summary['lag_time_ps']:g} ps)")
        lines.append(f"acceptance {summary['acceptance']:.4g} ({summary['num_accepted']} of "
                     f"{summary['num_proposed']} proposals)")
    else:
        lines.append(f"Langevin MD, step {summary['step_fs']:g} fs, friction {summary['friction_per_ps']:g}/ps")
    lines.append(f"{summary['steps']} steps ({summary['simulated_time_ps']:g} ps), {summary['n_frames']} frames "
                 f"every {summary['frame_every']} steps, sampling wall time {summary['wall_time_s']:.2f} s")
    for label, pops in zip(summary["residues"], summary["populations"]):
        lines.append(f"basin populations of {label} (standard error from the indicator ESS):")
        lines += [f"  {name:8s} {p:.4f} +- {e:.4f}" for name, (p, e) in pops.items()]
    return "\n".join(lines) + "\n"


def write_run(out: PathLike, overwrite: bool, start: md.Trajectory, trajectory: md.Trajectory, phi: np.ndarray,
              psi: np.ndarray, log_columns: Sequence[str], log_rows: Sequence[Sequence[float]], summary: Dict,
              title: str) -> Dict[str, str]:
    """Write every file of a run folder and return file role -> path.

    Parameters
    ----------
    out
        The folder; an existing one is replaced only with ``overwrite`` (see :func:`check_folder`).
    start
        The minimized starting structure, written as the trajectory's topology file.
    trajectory
        The recorded frames.
    phi, psi
        The trajectory's backbone dihedrals, degrees, shape (n_frames, n_residues).
    log_columns, log_rows
        The ``log.csv`` table, one row per frame.
    summary
        The run's settings and statistics, ``residues``, ``populations``, ``temperature_K`` and
        the keys of :func:`summary_text` included; this adds ``files`` to it.
    title
        Names the run in the plots' titles.
    """
    out = os.fspath(out)
    check_folder(out, overwrite)
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    files = {"topology": os.path.join(out, "topology.pdb"), "trajectory": os.path.join(out, "trajectory.dcd"),
             "log": os.path.join(out, "log.csv"), "populations": os.path.join(out, "populations.csv"),
             "summary_txt": os.path.join(out, "summary.txt"), "summary_json": os.path.join(out, "summary.json")}
    start.save_pdb(files["topology"])
    trajectory.save_dcd(files["trajectory"])
    _write_log(files["log"], log_columns, log_rows)
    labels = summary["residues"]
    for r, label in enumerate(labels):
        files[f"ramachandran_{label}"] = os.path.join(out, f"ramachandran_{label}.png")
        plot_free_energy(files[f"ramachandran_{label}"], phi[:, r], psi[:, r], temperature=summary["temperature_K"],
                         title=f"{label}: {title}, {trajectory.n_frames} frames")
    _write_log(files["populations"], ["residue", "basin", "population", "standard_error"],
               [[label, name, p, e] for label, pops in zip(labels, summary["populations"])
                for name, (p, e) in pops.items()])
    summary["files"] = {k: os.path.basename(v) for k, v in files.items()}
    with open(files["summary_txt"], "w") as f:
        f.write(summary_text(summary))
    with open(files["summary_json"], "w") as f:
        json.dump(summary, f, indent=1)
    return files


def load_run(folder: PathLike) -> Tuple[Dict, md.Trajectory]:
    """Read a run folder back: its summary (``summary.json``) and its trajectory.

    Raises
    ------
    InputError
        If ``folder`` is not a run folder.
    """
    folder = os.fspath(folder)
    for name in ("summary.json", "trajectory.dcd", "topology.pdb"):
        if not os.path.isfile(os.path.join(folder, name)):
            raise InputError(f"{folder}: not a run folder of openmm-timewarp sample or md (no {name})")
    with open(os.path.join(folder, "summary.json")) as f:
        summary = json.load(f)
    trajectory = md.load_dcd(os.path.join(folder, "trajectory.dcd"), top=os.path.join(folder, "topology.pdb"))
    return summary, trajectory
