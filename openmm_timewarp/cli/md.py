"""``openmm-timewarp md INPUT.pdb``: the plain-MD baseline on the very same System.

The run is :func:`openmm_timewarp.run.run_md`, continued by :func:`openmm_timewarp.run.resume`.
"""
from __future__ import annotations

import argparse

from .sample import add_run_options, check_resume, report, run_options

__all__ = ["add_parsers"]

_DEFAULTS = dict(steps=100_000, frame_every=1000, temperature=310.0, seed=1, out="md-run", platform="Reference")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``md``."""
    parser = subparsers.add_parser(
        "md", help="plain Langevin MD on the same System (the baseline)",
        description="Prepare INPUT.pdb exactly as 'sample' does and run LangevinMiddleIntegrator MD on the same "
                    "System (no constraints), writing the same files. Ctrl-C stops the run cleanly (exit status "
                    "130); --resume continues it.")
    add_run_options(parser, _DEFAULTS)
    parser.add_argument("--step-fs", type=float, help="time step, fs (default 1; the System has no constraints, "
                        "keep it <= 2)")
    parser.add_argument("--friction", type=float, help="friction, 1/ps (default 1)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ..run import resume, run_md

    if args.resume is not None:
        check_resume(args)
        return report(resume(args.resume, progress=args.progress, checkpoint_every_s=args.checkpoint_every * 60.0,
                             command="md"))
    result = run_md(args.input, step_fs=1.0 if args.step_fs is None else args.step_fs,
                    friction_per_ps=1.0 if args.friction is None else args.friction, **run_options(args, _DEFAULTS))
    return report(result)
