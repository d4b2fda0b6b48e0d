"""``openmm-timewarp sample INPUT.pdb``: Timewarp sampling with Metropolis-Hastings.

The run is :func:`openmm_timewarp.run.sample`; ``add_run_options`` and ``report`` serve ``md`` too.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..model_file import DEFAULT_MODEL

__all__ = ["add_parsers", "add_run_options", "report"]


def add_run_options(parser: argparse.ArgumentParser, steps: int, frame_every: int, out: str) -> None:
    """Options that ``sample`` and ``md`` share, so both runs can use the very same settings."""
    parser.add_argument("input", metavar="INPUT.pdb",
                        help="PDB file of one peptide chain (hydrogens and caps optional)")
    parser.add_argument("--steps", type=int, default=steps, help=f"steps to run (default {steps})")
    parser.add_argument("--frame-every", type=int, default=frame_every, metavar="N",
                        help=f"record a frame every N steps (default {frame_every})")
    parser.add_argument("--temperature", type=float, default=310.0, help="temperature, K (default 310)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1; 0 picks a unique one)")
    parser.add_argument("--out", default=out, help=f"output folder (default {out})")
    parser.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    parser.add_argument("--strip-solvent", action="store_true", help="remove waters and ions instead of refusing")
    parser.add_argument("--platform", default="Reference", help="OpenMM platform (default Reference, the fastest "
                        "for small peptides on CPUs)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sample``."""
    parser = subparsers.add_parser(
        "sample", help="sample a peptide with a Timewarp model (Metropolis-Hastings)",
        description="Prepare INPUT.pdb (pdbfixer: missing atoms, hydrogens, ACE/NME caps), build the implicit-solvent "
                    "System (amber14 + OBC2, no constraints), minimize, and sample it with a Timewarp model and "
                    "Metropolis-Hastings. Writes trajectory.dcd, log.csv, ramachandran_*.png, populations.csv, "
                    "summary.txt and summary.json to --out.")
    add_run_options(parser, steps=10_000, frame_every=10, out="timewarp-run")
    parser.add_argument("--model", default=DEFAULT_MODEL,
                        help=f"shipped model name or model file (default {DEFAULT_MODEL})")
    parser.add_argument("--explore", action="store_true",
                        help="exploration mode: no Metropolis-Hastings; fast but BIASED (not Boltzmann)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model (default 1)")
    parser.add_argument("--hmc-interval", type=int, default=None, metavar="N",
                        help="a hybrid Monte Carlo move after every N steps, 0 for none (default: the model's "
                             "recommendation, see 'openmm-timewarp models')")
    parser.set_defaults(run=_run)


def report(result) -> None:
    """Print a run's summary and where its files went."""
    with open(result.files["summary_txt"]) as f:
        sys.stdout.write(f.read())
    print(f"wrote {', '.join(sorted(os.path.basename(p) for p in result.files.values()))} "
          f"to {os.path.dirname(result.files['summary_json']) or '.'}")


def _run(args: argparse.Namespace) -> int:
    from ..run import sample

    if args.explore:
        print("exploration mode: proposals are accepted without Metropolis-Hastings; the samples are BIASED",
              file=sys.stderr)
    result = sample(args.input, model=args.model, steps=args.steps, out=args.out, explore=args.explore,
                    seed=args.seed, temperature=args.temperature, frame_every=args.frame_every,
                    strip_solvent=args.strip_solvent, overwrite=args.overwrite, progress=args.progress,
                    threads=args.threads, platform=args.platform, hmc_interval=args.hmc_interval)
    report(result)
    return 0
