"""Continuing an interrupted (or killed) run from the checkpoint in its folder: :func:`resume`.

The run continues with the settings it started with (from its checkpoint), in the same folder,
appending to its trajectory and log.  On the Reference platform the continued chain is the one an
uninterrupted run of the same seed would have produced, bit for bit: the checkpoint restores the
positions, velocities and the integrators' random streams (and the Timewarp integrator's pending
proposals).
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional, Union

from ..errors import InputError
from ..model_file import ModelFile
from .checkpoint import read_checkpoint
from .results import RunResult

__all__ = ["resume"]

PathLike = Union[str, os.PathLike]


def resume(folder: PathLike, progress: bool = False, threads: int = 1, checkpoint_every_s: float = 300.0,
           command: Optional[str] = None) -> RunResult:
    """Continue the run whose folder is ``folder``; returns the result of the whole run.

    Parameters
    ----------
    folder
        The run folder (``out`` of :func:`~openmm_timewarp.run.sample` or :func:`~openmm_timewarp.run.run_md`).
    progress, threads, checkpoint_every_s
        As for :func:`~openmm_timewarp.run.sample`: they do not change the chain.
    command
        ``"sample"``, ``"tito"`` or ``"md"`` to refuse a folder of another kind; None accepts any.

    Raises
    ------
    InputError
        If the folder has no readable checkpoint, is complete, is of the other command, or its
        model file has changed since the run started.
    """
    from .md import run_molecular_dynamics
    from .sampling import model_digest, run_sampling

    folder = os.fspath(folder)
    checkpoint = read_checkpoint(folder)
    settings = checkpoint.settings
    if command is not None and settings["command"] != command:
        raise InputError(f"{folder} is a run of '{settings['command']}': continue it with "
                         f"'openmm-timewarp {settings['command']} --resume {folder}'")
    if checkpoint.complete:
        raise InputError(f"{folder}: the run is complete ({settings['steps']} steps); nothing to resume")
    with tempfile.TemporaryDirectory() as tmp:
        # The input as it was when the run started, under its own name (it appears in messages).
        pdb = os.path.join(tmp, os.path.basename(settings["input"]))
        with open(pdb, "wb") as f:
            f.write(checkpoint.input_pdb)
        if settings["command"] == "md":
            return run_molecular_dynamics(settings, pdb, folder, False, progress, checkpoint_every_s, checkpoint)
        model = ModelFile.open(settings["model"])
        if model_digest(model) != settings["model_sha256"]:
            raise InputError(f"the model file {settings['model']} has changed since the run in {folder} started; "
                             "a resumed run needs the very same model")
        return run_sampling(settings, pdb, model, folder, False, progress, threads, checkpoint_every_s, checkpoint)
