"""The ``openmm-timewarp`` command: argument parsing only; the work is done by the library.

Each module named in :data:`MODULES` registers its subcommands with ``add_parsers(subparsers)``
and a ``run(args) -> int`` function per subcommand (``set_defaults(run=...)``).  Run
``openmm-timewarp SUBCOMMAND --help`` for each.  Refused inputs (:class:`~openmm_timewarp.errors.InputError`)
print one line starting with ``openmm-timewarp: error:`` to stderr and exit with status 2, as
argparse does for bad options.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from ..errors import InputError

__all__ = ["MODULES", "build_parser", "main"]

#: The modules of ``openmm_timewarp.cli`` whose subcommands make up the command, in help order.
MODULES = ("sample", "md", "compare", "models", "generate_data", "train", "export", "reference")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`MODULES`."""
    parser = argparse.ArgumentParser(
        prog="openmm-timewarp", description="Learned, time-coarsened sampling of peptides with OpenMM.",
        epilog="Run 'openmm-timewarp SUBCOMMAND --help' for the options of each subcommand.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parsers(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line on ``argv`` (default: the process's arguments); returns the exit status.

    0 for success, 2 for a refused input or a bad option; ``--help`` prints and returns 0.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits for --help and bad options; callers get the status
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    try:
        return int(args.run(args))
    except InputError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
