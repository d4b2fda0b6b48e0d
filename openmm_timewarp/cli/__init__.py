"""The ``openmm-timewarp`` command: argument parsing only; the work is done by the library.

Each module named in :data:`MODULES` registers its subcommands with ``add_parsers(subparsers)``
and a ``run(args) -> int`` function per subcommand (``set_defaults(run=...)``).  Run
``openmm-timewarp SUBCOMMAND --help`` for each.  Refused inputs (:class:`~openmm_timewarp.errors.InputError`)
print one line starting with ``openmm-timewarp: error:`` to stderr and exit with status 2, as
argparse does for bad options.  Warnings print as one ``warning: ...`` line each, without Python's
source line.  A run stopped by Ctrl-C or SIGTERM exits with status 130.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import warnings
from typing import Iterator, List, Optional

from ..errors import InputError

__all__ = ["MODULES", "build_parser", "main"]

#: The modules of ``openmm_timewarp.cli`` whose subcommands make up the command, in help order.
MODULES = ("sample", "tito", "md", "compare", "models", "generate_data", "train", "export", "reference")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand of :data:`MODULES`."""
    parser = argparse.ArgumentParser(
        prog="openmm-timewarp", description="Learned, time-coarsened sampling of peptides with OpenMM.",
        epilog="Run 'openmm-timewarp SUBCOMMAND --help' for the options of each subcommand.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="SUBCOMMAND")
    for name in MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parsers(subparsers)
    return parser


@contextlib.contextmanager
def _plain_warnings() -> Iterator[None]:
    """Warnings as ``warning: MESSAGE`` lines on stderr, each message once."""
    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.simplefilter("once")
        warnings.showwarning = show
        yield


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line on ``argv`` (default: the process's arguments); returns the exit status.

    0 for success, 2 for a refused input or a bad option, 130 for a run stopped by SIGINT or
    SIGTERM (its folder holds the partial run); ``--help`` prints and returns 0.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse exits for --help and bad options; callers get the status
        return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2
    try:
        with _plain_warnings():
            return int(args.run(args))
    except InputError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before or after the recording loop, which stops cleanly on its own
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (``| head``): nothing left to say to it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
