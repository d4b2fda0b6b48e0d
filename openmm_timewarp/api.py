"""The high-level Python API: :func:`sample` and :func:`run_md` and their results.

Kept for ``openmm_timewarp.sample`` / ``run_md`` and existing imports; the code lives in
:mod:`openmm_timewarp.run`.
"""
from .model_file import DEFAULT_MODEL
from .run import MDResult, RunResult, SamplingResult, run_md, sample

__all__ = ["DEFAULT_MODEL", "RunResult", "SamplingResult", "MDResult", "sample", "run_md"]
