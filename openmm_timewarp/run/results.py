"""What a run returns: its frames, backbone dihedrals, basin populations and settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import mdtraj as md
import numpy as np

from ..analysis import basin_populations

__all__ = ["RunResult", "SamplingResult", "MDResult", "residue_labels", "residue_populations"]


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


def residue_labels(topology: md.Topology) -> List[str]:
    """Names like ``ALA2`` of the residues between the caps, in chain order."""
    return [f"{r.name}{r.resSeq}" for r in topology.residues if r.name not in ("ACE", "NME")]


def residue_populations(phi: np.ndarray, psi: np.ndarray) -> List[Dict[str, List[float]]]:
    """Per residue: basin name -> [population, standard error] (lists, so that JSON keeps them)."""
    return [{name: [p, e] for name, (p, e) in basin_populations(phi[:, r], psi[:, r]).items()}
            for r in range(phi.shape[1])]
