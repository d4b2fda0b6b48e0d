"""``openmm-timewarp md INPUT.pdb``: the plain-MD baseline on the very same System.

The run is :func:`openmm_timewarp.run.run_md`.
"""
from __future__ import annotations

import argparse

from .sample import add_run_options, report

__all__ = ["add_parsers"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``md``."""
    parser = subparsers.add_parser(
        "md", help="plain Langevin MD on the same System (the baseline)",
        description="Prepare INPUT.pdb exactly as 'sample' does and run LangevinMiddleIntegrator MD on the same "
                    "System (no constraints), writing the same files.")
    add_run_options(parser, steps=100_000, frame_every=1000, out="md-run")
    parser.add_argument("--step-fs", type=float, default=1.0,
                        help="time step, fs (default 1; the System has no constraints, keep it <= 2)")
    parser.add_argument("--friction", type=float, default=1.0, help="friction, 1/ps (default 1)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ..run import run_md

    result = run_md(args.input, steps=args.steps, out=args.out, step_fs=args.step_fs, friction_per_ps=args.friction,
                    seed=args.seed, temperature=args.temperature, frame_every=args.frame_every,
                    strip_solvent=args.strip_solvent, overwrite=args.overwrite, progress=args.progress,
                    platform=args.platform)
    report(result)
    return 0
