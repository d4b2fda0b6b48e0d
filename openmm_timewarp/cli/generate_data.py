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
from typing import List, Optional, Tuple

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


def _quiet_dask() -> None:
    """Drop Dask's own INFO lines (workers starting and closing), which would bury the progress lines.

    A filter on the handlers, not a logger level: Dask sets its loggers' levels itself when a
    cluster starts."""
    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.name.startswith("distributed")

    for handler in logging.getLogger().handlers:
        handler.addFilter(keep)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``generate-data``."""
    parser = subparsers.add_parser(
        "generate-data", help="MD training pairs x(t), x(t+tau) for one or many peptides",
        description="Langevin MD of capped peptides from starts in every basin, saved as training pairs; "
                    "all trajectories of all peptides run as one pool of Dask tasks. One --sequence writes "
                    "into --out itself; several, or --split, write one folder OUT/SEQUENCE per peptide. "
                    "Rerunning the same command resumes (finished trajectories are kept).")
    parser.add_argument("--sequence", nargs="+", help="one-letter residues between the ACE and NME caps "
                        "(several: one peptide each)")
    parser.add_argument("--pdb", help="capped peptide PDB file instead of --sequence")
    parser.add_argument("--split", help="split JSON file (train / validation lists): without --sequence, its "
                        "--subset is the list of peptides; with it, every sequence must be in that list")
    parser.add_argument("--subset", default="train", choices=("train", "validation"))
    parser.add_argument("--offset", type=int, default=0, help="skip this many peptides of the list")
    parser.add_argument("--limit", type=int, help="take at most this many peptides of the list")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--pairs", type=int, required=True, help="target number of pairs per peptide")
    parser.add_argument("--lag-ps", type=float, default=500.0)
    parser.add_argument("--frame-ps", type=float, default=50.0, help="frame interval, ps")
    parser.add_argument("--trajectory-ns", type=float, default=5.0, help="length of each trajectory")
    add_md_options(parser)
    parser.add_argument("--restraint-ps", type=float, default=20.0)
    parser.add_argument("--equilibrate-ps", type=float, default=20.0)
    parser.add_argument("--start-basins", nargs="+", metavar="BASIN",
                        help="restrain the starts only to these basin centres (default all: "
                             "beta PPII alpha_R C7eq alpha_L C7ax PII_L; proline takes the phi < 0 ones)")
    parser.add_argument("--workers", type=int, help="local Dask worker processes (default: one per CPU "
                        "core; 1 runs in this process, without Dask)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (e.g. tcp://HOST:8786) to "
                        "run the trajectories on instead of a local cluster")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--no-progress", action="store_true", help="log lines only, no bar")
    parser.set_defaults(run=run)


def _jobs(args: argparse.Namespace) -> List[Tuple[str, str, Optional[str]]]:
    """(sequence, output folder, PDB path) of every peptide the arguments select."""
    from ..data.split import select_sequences
    from ..errors import InputError
    from ..systems import load_pdb, sequence_of

    if args.pdb:
        if args.sequence or args.split:
            raise InputError("--pdb makes one peptide; it cannot be combined with --sequence or --split")
        sequence = sequence_of(load_pdb(args.pdb)[0])
        return [(sequence, args.out, os.path.abspath(args.pdb))]
    if not (args.sequence or args.split):
        raise InputError("give --sequence or --pdb, or --split with a split file")
    sequences = select_sequences(args.sequence, args.split, args.subset, args.offset, args.limit)
    if len(sequences) == 1 and len(args.sequence or ()) == 1 and not args.split:
        return [(sequences[0], args.out, None)]  # one named peptide: --out is its folder, as always
    return [(s, os.path.join(args.out, s), None) for s in sequences]


def run(args: argparse.Namespace) -> int:
    """Generate (or resume) the data sets; returns the exit status."""
    from ..data.cluster import default_workers
    from ..data.generate import Settings, generate_many

    jobs = _jobs(args)
    log_to_stderr()
    _quiet_dask()
    settings = [Settings(sequence=sequence, lag_ps=args.lag_ps, frame_interval_ps=args.frame_ps,
                         trajectory_ps=args.trajectory_ns * 1000.0, temperature_K=args.temperature,
                         friction_per_ps=args.friction, timestep_fs=args.timestep_fs,
                         hydrogen_mass_amu=args.hmr, restraint_ps=args.restraint_ps,
                         equilibrate_ps=args.equilibrate_ps, seed=args.seed, pdb=pdb,
                         start_basins=args.start_basins)
                for sequence, _, pdb in jobs]
    workers = args.workers or default_workers()
    manifests = generate_many([(s, out) for s, (_, out, _) in zip(settings, jobs)], args.pairs, workers,
                              not args.no_progress, args.scheduler)
    pairs = sum(m["n_pairs"] for m in manifests.values())
    trajectories = sum(m["n_trajectories"] for m in manifests.values())
    logging.getLogger("openmm_timewarp.data").info("%s: %d peptides, %d pairs in %d trajectories", args.out,
                                                   len(manifests), pairs, trajectories)
    return 0
