"""Runs from a PDB file to frames, statistics and a run folder, with Timewarp or plain MD.

>>> from openmm_timewarp.run import sample, run_md
>>> result = sample("examples/data/ace-ala-nme.pdb", steps=20_000, out="ala-timewarp")
>>> result.acceptance, result.populations[0]["alpha_R"], result.trajectory.n_frames
>>> result = resume("ala-timewarp")  # after an interruption (result.interrupted)

One module per concept: :mod:`~.sampling` (:func:`sample`), :mod:`~.tito` (:func:`tito`), :mod:`~.md` (:func:`run_md`),
:mod:`~.results` (what they return), :mod:`~.recording` (what they share), :mod:`~.folder` and
:mod:`~.writer` (the run folder they write and :func:`load_run` reads), :mod:`~.checkpoint` and
:mod:`~.resume` (continuing a stopped run), :mod:`~.interrupt` (stopping one cleanly) and
:mod:`~.compare` (two run folders side by side).
"""
from .compare import compare_runs, write_comparison
from .folder import check_folder, load_run, write_results
from .md import run_md
from .results import MDResult, RunResult, SamplingResult
from .resume import resume
from .sampling import sample
from .tito import tito

__all__ = ["sample", "tito", "run_md", "resume", "RunResult", "SamplingResult", "MDResult", "check_folder", "write_results",
           "load_run", "compare_runs", "write_comparison"]
