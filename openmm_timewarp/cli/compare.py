"""``openmm-timewarp compare RUN_A RUN_B``: two run folders side by side (:mod:`openmm_timewarp.run.compare`)."""
from __future__ import annotations

import argparse

__all__ = ["add_parsers"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``compare``."""
    parser = subparsers.add_parser(
        "compare", help="compare two run folders (distributions, JSD, ESS per second)",
        description="For each residue: the Jensen-Shannon divergence between the two (phi, psi) histograms (36 x 36 "
                    "bins, nats), each run's divergence from the shipped reference where there is one, the minimum "
                    "ESS per second of each run's sampling wall time, and the basin populations with their error "
                    "bars; as a table (printed and written beside --out) and a PNG.")
    parser.add_argument("run_a", metavar="RUN_A", help="output folder of 'sample' or 'md'")
    parser.add_argument("run_b", metavar="RUN_B", help="output folder of 'sample' or 'md'")
    parser.add_argument("--out", help="PNG to write; the table also goes to its .txt (default RUN_A-vs-RUN_B.png "
                        "beside RUN_A)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--allow-mismatch", action="store_true",
                        help="compare runs at different temperatures or with different force fields (refused "
                             "otherwise: they sample different distributions)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ..run.compare import write_comparison

    _, table, written = write_comparison(args.run_a, args.run_b, args.out, overwrite=args.overwrite,
                                          allow_mismatch=args.allow_mismatch)
    print(table, end="")
    print(f"wrote {' and '.join(written)}")
    return 0
