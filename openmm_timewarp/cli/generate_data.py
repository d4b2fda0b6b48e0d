"""``openmm-timewarp generate-data``: MD training pairs x(t), x(t + tau) of a capped peptide.

The work is done by :func:`openmm_timewarp.data.generate.generate`; rerunning the same command
resumes a folder (finished trajectories are kept).  Also holds the Langevin MD options that every
MD-running subcommand shares (:func:`add_md_options`) and their logging set-up.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

__all__ = ["add_parsers", "add_md_options", "log_to_stderr", "run"]


def add_md_options(parser: argparse.ArgumentParser) -> None:
    """The Langevin MD options of the data and reference subcommands (same names and defaults)."""
    parser.add_argument("--temperature", type=float, default=310.0, help="K (default 310)")
    parser.add_argument("--friction", type=float, default=1.0, help="1/ps (default 1)")
    parser.add_argument("--timestep-fs", type=float, default=2.0, help="fs (default 2)")
    parser.add_argument("--hmr", type=float, default=4.0, help="hydrogen mass, amu (default 4)")


def log_to_stderr() -> None:
    """Show the library's progress log lines, time-stamped, on stderr (once)."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s", stream=sys.stderr)
    logging.getLogger("openmm_timewarp").setLevel(logging.INFO)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``generate-data``."""
    parser = subparsers.add_parser(
        "generate-data", help="MD training pairs x(t), x(t+tau) for a peptide",
        description="Langevin MD of a capped peptide from starts in every basin, saved as training pairs; "
                    "rerunning the same command resumes the folder.")
    parser.add_argument("--sequence", help="one-letter residues between the ACE and NME caps")
    parser.add_argument("--pdb", help="capped peptide PDB file instead of --sequence")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--pairs", type=int, required=True, help="target number of pairs")
    parser.add_argument("--lag-ps", type=float, default=500.0)
    parser.add_argument("--frame-ps", type=float, default=50.0, help="frame interval, ps")
    parser.add_argument("--trajectory-ns", type=float, default=5.0, help="length of each trajectory")
    add_md_options(parser)
    parser.add_argument("--restraint-ps", type=float, default=20.0)
    parser.add_argument("--equilibrate-ps", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true", help="log lines only, no bar")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Generate (or resume) the data set; returns the exit status."""
    from ..data.generate import Settings, generate
    from ..errors import InputError
    from ..systems import load_pdb, sequence_of

    if not (args.sequence or args.pdb):
        raise InputError("give --sequence or --pdb")
    sequence = args.sequence or sequence_of(load_pdb(args.pdb)[0])
    log_to_stderr()
    settings = Settings(sequence=sequence.upper(), lag_ps=args.lag_ps,
                        frame_interval_ps=args.frame_ps, trajectory_ps=args.trajectory_ns * 1000.0,
                        temperature_K=args.temperature, friction_per_ps=args.friction,
                        timestep_fs=args.timestep_fs, hydrogen_mass_amu=args.hmr,
                        restraint_ps=args.restraint_ps, equilibrate_ps=args.equilibrate_ps,
                        seed=args.seed, pdb=os.path.abspath(args.pdb) if args.pdb else None)
    manifest = generate(settings, args.out, args.pairs, args.workers, not args.no_progress)
    logging.getLogger("openmm_timewarp.data").info("%s: %d pairs in %d trajectories", args.out,
                                                   manifest["n_pairs"], manifest["n_trajectories"])
    return 0
