"""What a run returns: its frames, backbone dihedrals, basin populations and settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

import mdtraj as md
import numpy as np

from ..analysis import basin_populations, residues_with_phi_and_psi

__all__ = ["RunResult", "SamplingResult", "MDResult", "residue_labels", "residue_dihedrals", "residue_populations"]


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
        What was changed in the input (caps, hydrogens, stripped solvent), and why the peptide lies
        outside the model's training domain if it does.
    files : dict
        File role -> path of what was written; empty without ``out``.
    summary : dict
        Everything above that fits in JSON, plus the settings (as in ``summary.json``).
    interrupted : bool
        Whether the run was stopped (SIGINT, SIGTERM) before its last step: the frames and
        statistics are those of the partial run, and ``resume`` continues it from its folder.
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
    interrupted: bool = False


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


def residue_labels(topology: md.Topology) -> List[str]:
    """Names like ``ALA2`` of the residues between the caps, in chain order."""
    return [f"{r.name}{r.resSeq}" for r in topology.residues if r.name not in ("ACE", "NME")]


def residue_populations(phi: np.ndarray, psi: np.ndarray) -> List[Dict[str, List[float]]]:
    """Per residue: basin name -> [population, standard error] (lists, so that JSON keeps them).

    Empty dicts for a run without frames, which has no populations.
    """
    if phi.shape[0] == 0:
        return [{} for _ in range(phi.shape[1])]
    return [{name: [p, e] for name, (p, e) in basin_populations(phi[:, r], psi[:, r]).items()}
            for r in range(phi.shape[1])]


def residue_dihedrals(trajectory: md.Trajectory) -> Tuple[List[str], np.ndarray, np.ndarray]:
    """Labels, phi and psi (degrees, in [-180, 180)) of the residues that have both dihedrals.

    For a capped peptide these are the residues between the caps (as
    :func:`~openmm_timewarp.analysis.backbone_dihedrals` computes them); with charged termini the
    first residue has no phi and the last no psi, so they are left out.
    """
    both, *quadruplets = residues_with_phi_and_psi(trajectory.topology)
    angles = []
    for indices in quadruplets:
        degrees = np.degrees(md.compute_dihedrals(trajectory, indices, periodic=False)) if len(both) else \
            np.zeros((trajectory.n_frames, 0))
        angles.append((degrees + 180.0) % 360.0 - 180.0)
    return [f"{r.name}{r.resSeq}" for r in both], angles[0], angles[1]
