"""A run's checkpoint: what ``--resume`` needs to continue the same chain in the same folder.

``checkpoint.zip`` in the run folder holds ``progress.json`` (the run's settings, the steps and
frames done, the sampling wall time so far), ``context.chk`` (OpenMM's ``Context`` checkpoint: positions,
velocities and the integrator's state, random streams and pending proposals included) and
``input.pdb`` (the input file as it was, so that the same peptide is prepared again).  It is
written to a temporary file and renamed, so a kill while writing leaves the previous one whole.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from typing import Dict, Union

from ..errors import InputError

__all__ = ["CHECKPOINT_NAME", "Checkpoint", "write_checkpoint", "read_checkpoint"]

PathLike = Union[str, os.PathLike]
#: The checkpoint's file name in a run folder.
CHECKPOINT_NAME = "checkpoint.zip"
_FORMAT = 1


@dataclass
class Checkpoint:
    """The state of a run at a frame boundary.

    Attributes
    ----------
    settings : dict
        The run's settings (``command``, ``input``, ``steps``, ``frame_every``, ``seed`` ...), as
        the run function took them; ``resume`` runs with these.
    step, n_frames : int
        Steps done and frames written when the checkpoint was taken.
    wall_time_s : float
        Sampling wall time so far, seconds.
    context : bytes
        ``Context.createCheckpoint()``.
    input_pdb : bytes
        The input PDB file.
    """

    settings: Dict
    step: int
    n_frames: int
    wall_time_s: float
    context: bytes
    input_pdb: bytes

    @property
    def complete(self) -> bool:
        """Whether every requested step is done."""
        return self.step >= self.settings["steps"]


def write_checkpoint(folder: PathLike, checkpoint: Checkpoint) -> str:
    """Write ``checkpoint`` to ``folder``/checkpoint.zip atomically; returns the path."""
    path = os.path.join(os.fspath(folder), CHECKPOINT_NAME)
    progress = dict(format=_FORMAT, settings=checkpoint.settings, step=checkpoint.step, n_frames=checkpoint.n_frames,
                    wall_time_s=checkpoint.wall_time_s)
    temporary = path + ".partial"
    with zipfile.ZipFile(temporary, "w") as archive:
        archive.writestr("progress.json", json.dumps(progress, indent=1))
        archive.writestr("context.chk", checkpoint.context)
        archive.writestr("input.pdb", checkpoint.input_pdb)
    with open(temporary, "rb") as f:
        os.fsync(f.fileno())
    os.replace(temporary, path)
    return path


def read_checkpoint(folder: PathLike) -> Checkpoint:
    """The checkpoint of a run folder.

    Raises
    ------
    InputError
        If the folder has no checkpoint, or it is unreadable or of another format.
    """
    path = os.path.join(os.fspath(folder), CHECKPOINT_NAME)
    if not os.path.isfile(path):
        raise InputError(f"{folder}: no {CHECKPOINT_NAME}; only a folder written by 'sample' or 'md' of this version "
                         "can be resumed")
    try:
        with zipfile.ZipFile(path) as archive:
            progress = json.loads(archive.read("progress.json"))
            context, input_pdb = archive.read("context.chk"), archive.read("input.pdb")
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise InputError(f"{path}: unreadable checkpoint ({error})") from None
    if progress.get("format") != _FORMAT:
        raise InputError(f"{path}: checkpoint format {progress.get('format')}; this version reads {_FORMAT}")
    return Checkpoint(progress["settings"], int(progress["step"]), int(progress["n_frames"]),
                      float(progress["wall_time_s"]), context, input_pdb)
