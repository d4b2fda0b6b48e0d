"""Run the proposal and training subcommands (``cli/export.py``, ``cli/train.py``) in-process."""
import argparse
from typing import List


def run_cli(argv: List[str]) -> int:
    """Parse ``argv`` with the export and training subcommands and run it; returns the exit status."""
    from openmm_timewarp.cli import export, train

    parser = argparse.ArgumentParser(prog="openmm-timewarp")
    subparsers = parser.add_subparsers(dest="command", required=True)
    export.add_parsers(subparsers)
    train.add_parsers(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)
