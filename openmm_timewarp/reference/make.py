"""One reference run, from nothing (or from where it stopped) to the written reference file.

A run folder (:attr:`~.settings.ReferenceSettings.work_dir`) holds ``config.json`` (the physics of
the run, :data:`~.settings.PHYSICS_KEYS`), ``command.txt`` (the command that ran it), ``build.npz``
(phase 1, :mod:`.build`) and the production chunks (phase 2, :mod:`.production`).  Calling
:func:`make_reference` again with the same physics resumes the run, and a larger ``production_ns``
extends it; other physics is refused.  Folders made by the former ``scripts/make_reference.py``
resume the same way (their ``command.txt`` keeps that script's command line).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict

from ..errors import InputError
from ..systems import peptide_from_sequence
from .bias import bias_torsions
from .build import start
from .finalize import finalize
from .production import production
from .settings import ReferenceSettings

__all__ = ["make_reference", "check_run_folder"]

log = logging.getLogger("openmm_timewarp.reference")


def check_run_folder(settings: ReferenceSettings) -> None:
    """Create the run folder and its ``config.json``, or check that an existing one has the same physics.

    Raises
    ------
    InputError
        If the folder was made with other settings.
    """
    os.makedirs(settings.work_dir, exist_ok=True)
    path = os.path.join(settings.work_dir, "config.json")
    physics = settings.physics()
    if os.path.exists(path):
        with open(path) as f:
            previous: Dict[str, Any] = json.load(f)
        previous.setdefault("bias_torsions", None)  # runs made before these options used metadynamics
        previous.setdefault("residue_bias", False)  # with the default torsions
        if previous != physics:
            raise InputError(f"{settings.work_dir} was made with other settings {previous}; use another --work")
    else:
        with open(path, "w") as f:
            json.dump(physics, f, indent=1)


def make_reference(settings: ReferenceSettings, finalize_only: bool = False) -> bool:
    """Build, produce and finalize the reference of one sequence, resuming what its run folder holds.

    Parameters
    ----------
    settings : ReferenceSettings
        The run.  The reference is rewritten every ``finalize_every`` chunks and at the end.
    finalize_only : bool, optional
        Only rewrite the reference file from the chunks there are.

    Returns
    -------
    bool
        Whether a reference file was written (it takes two production chunks).

    Raises
    ------
    InputError
        If the run folder was made with other settings, or a bias torsion is not in the peptide.
    openmm_timewarp.data.generate.UnstableMD
        If the integration blew up; nothing of the unstable stretch is saved.
    """
    topology, positions = peptide_from_sequence(settings.sequence, seed=settings.seed)
    bias_torsions(topology, settings.bias_torsions)  # refuses unknown names before the folder is touched
    check_run_folder(settings)
    log.info("%s: %s", settings.sequence, settings.work_dir)
    if not finalize_only:
        with open(os.path.join(settings.work_dir, "command.txt"), "w") as f:
            f.write(settings.command_line())
        build_path = os.path.join(settings.work_dir, "build.npz")
        if not os.path.exists(build_path):
            start(settings, topology, positions, build_path)

        def every_few_chunks(n_done: int) -> None:
            if n_done % settings.finalize_every == 0:
                finalize(settings)

        production(settings, topology, build_path, every_few_chunks)
    return finalize(settings)
