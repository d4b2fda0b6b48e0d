"""The ``openmm-timewarp`` command: sample, md, compare, models, and the training pipeline.

Run ``openmm-timewarp SUBCOMMAND --help`` for each.  Refused inputs print one line starting with
``openmm-timewarp: error:`` to stderr and exit with status 2, as argparse does for bad options.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from . import compare, md, models, pipeline, sample
from .prepare import InputError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="openmm-timewarp", description="Learned, time-coarsened sampling of peptides with OpenMM.",
        epilog="Run 'openmm-timewarp SUBCOMMAND --help' for the options of each subcommand.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for module in (sample, md, compare, models):
        module.add_parser(subparsers)
    pipeline.add_parsers(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status (0 success, 2 refused input)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in pipeline.FORWARDED:
        # Their own parsers handle every option and --help, so they bypass this one.
        return pipeline.forward(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (InputError, FileNotFoundError) as error:
        print(f"openmm-timewarp: error: {error}", file=sys.stderr)
        return 2
