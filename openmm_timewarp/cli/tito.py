"""``openmm-timewarp tito INPUT.pdb``: a TITO trajectory, its implied timescales and populations.

The run is :func:`openmm_timewarp.run.tito`, continued by :func:`openmm_timewarp.run.resume`.
"""
from __future__ import annotations

import argparse
import sys

from ..model_file import DEFAULT_TITO_MODEL
from ..run.tito import EQUILIBRIUM_STEPS, POPULATION_TOLERANCE
from .sample import add_run_options, check_resume, report, run_options

__all__ = ["add_parsers"]

_DEFAULTS = dict(steps=2_000, frame_every=1, temperature=310.0, seed=1, out="tito-run", platform="Reference")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``tito``."""
    parser = subparsers.add_parser(
        "tito", help="TITO surrogate dynamics: a trajectory one learned lag per step (not an exact sampler)",
        description="Prepare INPUT.pdb as 'sample' does and generate a trajectory with a TITO transfer operator: "
                    "each step moves the torsions by one learned jump of --lag-ps and relaxes bonds and angles with "
                    "a hybrid Monte Carlo move in the same Context. An exact Timewarp chain run first (or "
                    "--equilibrium) gives each residue's basin populations, which the TITO chain is made to keep. "
                    "Writes trajectory.dcd (one frame per lag), "
                    "log.csv, ramachandran_*.png, populations.csv, implied_timescales.png (a basin Markov state "
                    "model per residue), summary.txt and summary.json. The result is a surrogate of the dynamics, "
                    "not a Boltzmann sampler: use 'sample' for exact populations. Ctrl-C stops the run cleanly "
                    "(exit status 130); --resume continues it.")
    add_run_options(parser, _DEFAULTS)
    parser.add_argument("--model", help=f"TITO model: shipped name or file (default {DEFAULT_TITO_MODEL})")
    parser.add_argument("--lag-ps", type=float, help="lag of each step, ps, within the model's trained range "
                        "(default: the model's)")
    parser.add_argument("--hmc-steps", type=int, help="leapfrog steps of the relaxation after each move "
                        "(default: the model's recommendation)")
    parser.add_argument("--equilibrium", metavar="FOLDER",
                        help="take each residue's equilibrium basin populations from this earlier exact 'sample' run "
                             "of the same peptide (default: run an exact chain first, see --equilibrium-steps)")
    parser.add_argument("--equilibrium-steps", type=int,
                        help="steps of the exact Timewarp chain (default model) run first for the basin populations "
                             f"the TITO chain is made to keep (default {EQUILIBRIUM_STEPS}, a frame every step, for a "
                             "model that keeps them; 0: none, the model's own populations). A population whose "
                             f"standard error exceeds {POPULATION_TOLERANCE:g} gets a warning: then run more steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model (default 1)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ..run import resume, tito

    if args.resume is not None:
        check_resume(args)
        return report(resume(args.resume, progress=args.progress, threads=args.threads,
                             checkpoint_every_s=args.checkpoint_every * 60.0, command="tito"))
    print("TITO: surrogate dynamics from a learned transfer operator; not an exact sampler", file=sys.stderr)
    result = tito(args.input, model=args.model or DEFAULT_TITO_MODEL, lag=args.lag_ps, hmc_steps=args.hmc_steps,
                  threads=args.threads, equilibrium=args.equilibrium,
                  equilibrium_steps=args.equilibrium_steps,
                  **run_options(args, _DEFAULTS))
    return report(result)
