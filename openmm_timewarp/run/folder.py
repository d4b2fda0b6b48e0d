"""The folder a run writes: trajectory, log, checkpoint, plots, populations and summaries.

A run folder holds ``topology.pdb`` (the minimized start, the topology of the trajectory),
``trajectory.dcd`` and ``log.csv`` (written as the frames come), ``checkpoint.zip`` (what
``--resume`` continues from), and at the end, or when the run is stopped,
``ramachandran_<residue>.png`` per residue, ``populations.csv``, ``summary.txt`` and
``summary.json``.  :func:`load_run` reads one back (``compare`` does).
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mdtraj as md
import numpy as np

from ..analysis import plot_free_energy
from ..analysis.msm import plot_implied_timescales
from ..errors import InputError

__all__ = ["FILE_NAMES", "check_folder", "write_results", "load_run", "summary_text"]

PathLike = Union[str, os.PathLike]
#: The files of every run folder, by role (plots come on top, one per residue).
FILE_NAMES = {"topology": "topology.pdb", "trajectory": "trajectory.dcd", "log": "log.csv",
              "checkpoint": "checkpoint.zip", "populations": "populations.csv", "summary_txt": "summary.txt",
              "summary_json": "summary.json"}


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


def _write_csv(path: str, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)


def _population_lines(summary: Dict) -> List[str]:
    lines = []
    for label, pops in zip(summary["residues"], summary["populations"]):
        if pops:
            lines.append(f"basin populations of {label} (standard error from the indicator ESS):")
        for name, (p, e) in pops.items():
            # A basin the run never entered has no error estimate: say so instead of "+- nan".
            if math.isfinite(e):
                lines.append(f"  {name:8s} {p:.4f} +- {e:.4f}")
            else:
                lines.append(f"  {name:8s} " + (f"{p:.4f} (too few samples for an error bar)" if p > 0
                                                else "0 (never visited)"))
    if not summary["residues"]:
        lines.append("no residue has both backbone dihedrals (phi and psi): no basin populations")
    elif not summary["n_frames"]:
        lines.append("no frames recorded: no basin populations")
    return lines


def _progress_line(summary: Dict) -> str:
    if summary.get("status") != "interrupted":
        return ""
    command = summary["command"]
    return (f"INTERRUPTED ({summary.get('interrupted_by', 'stopped')}) after {summary['steps_done']} of "
            f"{summary['steps']} steps: the statistics are those of the partial run; continue it with "
            f"'openmm-timewarp {command} --resume {summary.get('folder', 'FOLDER')}'")


def _largest_error_text(largest: Optional[Dict]) -> str:
    """The equilibrium run's largest population error, as the summary states it (runs written before
    it was recorded have none)."""
    if not largest:
        return ""
    return (f"; largest standard error {largest['standard_error']:.3f} (residue {largest['residue']} "
            f"{largest['basin']})")


def summary_text(summary: Dict) -> str:
    """The human-readable ``summary.txt`` of a run's summary (as in ``summary.json``)."""
    lines = [f"openmm-timewarp {summary['command']}: {summary['input']} ({summary['sequence']}, "
             f"{summary['n_atoms']} atoms, termini: {summary.get('termini', 'ACE/NME caps')}) at "
             f"{summary['temperature_K']:g} K"]
    lines += [line for line in [_progress_line(summary)] if line]
    if summary.get("mode") == "tito-surrogate":
        lines.append("TITO SURROGATE DYNAMICS: moves from a learned transfer operator, without Metropolis-Hastings; "
                     "not an exact sampler of the Boltzmann distribution.")
    elif summary.get("biased"):
        lines.append("EXPLORATION MODE: proposals accepted without Metropolis-Hastings; the frames are BIASED "
                     "and the populations below are NOT Boltzmann populations.")
    lines += [f"warning: {warning}" for warning in summary.get("domain_warnings", [])]
    lines += [f"note: {note}" for note in summary["notes"]]
    if summary["command"] == "sample":
        lines.append(f"model {summary['model']} (lag {summary['lag_time_ps']:g} ps)")
        lines.append(f"acceptance {summary['acceptance']:.4g} ({summary['num_accepted']} of "
                     f"{summary['num_proposed']} proposals)")
    elif summary["command"] == "tito":
        lines.append(f"TITO model {summary['model']}, lag {summary['lag_time_ps']:g} ps per step; relaxation: a hybrid "
                     f"Monte Carlo move of {summary['hmc_steps']} steps after every {summary['hmc_interval']} "
                     f"(accepted {summary['hmc_acceptance']:.3g})")
        lines.append(f"moves kept {summary['acceptance']:.4g} ({summary['num_accepted']} of {summary['num_proposed']}; "
                     "the others raised the energy past the threshold or inverted a chiral centre)")
        equilibrium = summary.get("equilibrium")
        if equilibrium:
            table = "; ".join(" ".join(f"{p:.3f}" for p in row) for row in summary["basin_populations"])
            lines.append(f"basin populations kept (beta alpha_R alpha_L PII_L per residue: {table}) from an exact "
                         f"chain: {equilibrium['source']}, {equilibrium['n_frames']} frames"
                         + (f", {equilibrium['wall_time_s']:.1f} s" if equilibrium.get("wall_time_s") else "")
                         + _largest_error_text(equilibrium.get("largest_error")))
        else:
            lines.append("basin populations: the model's own (no exact equilibrium run)")
    else:
        lines.append(f"Langevin MD, step {summary['step_fs']:g} fs, friction {summary['friction_per_ps']:g}/ps")
    lines.append(f"{summary.get('steps_done', summary['steps'])} steps ({summary['simulated_time_ps']:g} ps), "
                 f"{summary['n_frames']} frames every {summary['frame_every']} steps, sampling wall time "
                 f"{summary['wall_time_s']:.2f} s")
    return "\n".join(lines + _population_lines(summary) + _timescale_lines(summary)) + "\n"


def _timescale_lines(summary: Dict) -> List[str]:
    its = summary.get("implied_timescales")
    if not its:
        return []
    lines = ["implied timescales of each residue's basin MSM, ps (t1 / t2) at MSM lags "
             + ", ".join(f"{lag:g}" for lag in its["lags_ps"]) + " ps (implied_timescales.png):"]
    for label, rows in zip(summary["residues"], its["timescales_ps"]):
        lines.append(f"  {label:8s} " + "  ".join(" / ".join("-" if not math.isfinite(t) else f"{t:.4g}" for t in row)
                                                  for row in rows))
    return lines


def write_results(out: PathLike, trajectory: md.Trajectory, phi: np.ndarray, psi: np.ndarray, summary: Dict,
                  title: str) -> Dict[str, str]:
    """Write the statistics files of a run folder whose frames and log are written; returns file role -> path.

    Parameters
    ----------
    out
        The run folder.
    trajectory
        Every recorded frame.
    phi, psi
        The trajectory's backbone dihedrals, degrees, shape (n_frames, n_residues).
    summary
        The run's settings and statistics, ``residues``, ``populations``, ``temperature_K`` and
        the keys of :func:`summary_text` included; this adds ``files`` and ``folder`` to it.
    title
        Names the run in the plots' titles.
    """
    out = os.fspath(out)
    files = {role: os.path.join(out, name) for role, name in FILE_NAMES.items()}
    labels = summary["residues"]
    for r, label in enumerate(labels if trajectory.n_frames else ()):
        files[f"ramachandran_{label}"] = os.path.join(out, f"ramachandran_{label}.png")
        plot_free_energy(files[f"ramachandran_{label}"], phi[:, r], psi[:, r], temperature=summary["temperature_K"],
                         title=f"{label}: {title}, {trajectory.n_frames} frames")
    if summary.get("implied_timescales"):
        its = summary["implied_timescales"]
        files["implied_timescales"] = os.path.join(out, "implied_timescales.png")
        plot_implied_timescales(files["implied_timescales"], its["lags_ps"],
                                {label: np.array(t) for label, t in zip(labels, its["timescales_ps"])},
                                title=f"{title}: basin MSM of each residue")
    _write_csv(files["populations"], ["residue", "basin", "population", "standard_error"],
               [[label, name, p, e] for label, pops in zip(labels, summary["populations"])
                for name, (p, e) in pops.items()])
    summary["files"] = {k: os.path.basename(v) for k, v in files.items()}
    summary["folder"] = os.path.abspath(out)
    _atomic_write(files["summary_txt"], summary_text(summary))
    _atomic_write(files["summary_json"], json.dumps(summary, indent=1))
    return files


def _atomic_write(path: str, text: str) -> None:
    with open(path + ".partial", "w") as f:
        f.write(text)
    os.replace(path + ".partial", path)


def load_run(folder: PathLike) -> Tuple[Dict, md.Trajectory]:
    """Read a run folder back: its summary (``summary.json``) and its trajectory.

    Raises
    ------
    InputError
        If ``folder`` is not a run folder.
    """
    from .writer import load_frames

    folder = os.fspath(folder)
    for name in ("summary.json", "trajectory.dcd", "topology.pdb"):
        if not os.path.isfile(os.path.join(folder, name)):
            unfinished = name == "summary.json" and os.path.isfile(os.path.join(folder, FILE_NAMES["checkpoint"]))
            raise InputError(f"{folder}: " + (
                "an unfinished run (still running, or killed): continue it with 'openmm-timewarp sample --resume "
                f"{folder}' (or md --resume)" if unfinished
                else f"not a run folder of openmm-timewarp sample or md (no {name})"))
    with open(os.path.join(folder, "summary.json")) as f:
        summary = json.load(f)
    trajectory = load_frames(os.path.join(folder, "trajectory.dcd"), os.path.join(folder, "topology.pdb"))
    return summary, trajectory
