"""``openmm-timewarp sample INPUT.pdb``: Timewarp sampling with Metropolis-Hastings.

The run is :func:`openmm_timewarp.run.sample`, continued by :func:`openmm_timewarp.run.resume`;
``add_run_options``, ``run_options``, ``check_resume`` and ``report`` serve ``md`` too.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Dict

from ..errors import InputError
from ..model_file import DEFAULT_MODEL

__all__ = ["add_parsers", "add_run_options", "run_options", "check_resume", "report", "INTERRUPTED"]

#: Exit status of a run stopped by SIGINT or SIGTERM (128 + SIGINT, what shells report for Ctrl-C).
INTERRUPTED = 130


def add_run_options(parser: argparse.ArgumentParser, defaults: Dict) -> None:
    """Options that ``sample`` and ``md`` share, so both runs can use the very same settings.

    Settings of the chain default to None here and get ``defaults`` in :func:`run_options`, so
    that ``--resume`` can tell which were given.
    """
    parser.add_argument("input", metavar="INPUT.pdb", nargs="?",
                        help="PDB file of one peptide chain (hydrogens and caps optional)")
    parser.add_argument("--steps", type=int, help=f"steps to run (default {defaults['steps']})")
    parser.add_argument("--frame-every", type=int, metavar="N",
                        help=f"record a frame every N steps (default {defaults['frame_every']})")
    parser.add_argument("--temperature", type=float, help="temperature, K (default 310)")
    parser.add_argument("--seed", type=int, help="random seed (default 1; 0 picks a unique one)")
    parser.add_argument("--out", help=f"output folder (default {defaults['out']})")
    parser.add_argument("--overwrite", action="store_true", help="replace the output folder if it exists")
    parser.add_argument("--strip-solvent", action="store_true", help="remove waters and ions instead of refusing")
    parser.add_argument("--cap-termini", action="store_true",
                        help="replace charged termini with ACE/NME caps (a different molecule: the one the shipped "
                             "models were trained on); by default the termini stay as the file has them")
    parser.add_argument("--platform", help="OpenMM platform (default Reference, the fastest for small peptides on "
                        "CPUs)")
    parser.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    parser.add_argument("--checkpoint-every", type=float, default=5.0, metavar="MINUTES",
                        help="write a checkpoint to the output folder every MINUTES minutes (default 5; also when "
                             "stopped with Ctrl-C or SIGTERM and at the end)")
    parser.add_argument("--resume", metavar="FOLDER",
                        help="continue the stopped run in FOLDER with the settings it started with, appending to its "
                             "trajectory and log (no INPUT.pdb and no settings of the chain)")


#: Options of ``sample``/``md``/``tito`` that define the chain: ``--resume`` takes them from the folder.
CHAIN_OPTIONS = ("input", "steps", "frame_every", "temperature", "seed", "out", "overwrite", "strip_solvent",
                 "cap_termini", "platform", "model", "explore", "hmc_interval", "step_fs", "friction", "lag_ps",
                 "hmc_steps", "equilibrium", "equilibrium_steps")


def check_resume(args: argparse.Namespace) -> None:
    """Refuse settings of the chain given with ``--resume`` (the folder's own settings are used)."""
    given = [name for name in CHAIN_OPTIONS if getattr(args, name, None) not in (None, False)]
    if given:
        flags = ", ".join("INPUT.pdb" if name == "input" else "--" + name.replace("_", "-") for name in given)
        raise InputError(f"--resume continues {args.resume} with the settings it started with (see its "
                         f"summary); drop {flags}")
    if args.checkpoint_every <= 0:
        raise InputError(f"--checkpoint-every must be positive (got {args.checkpoint_every:g})")


def run_options(args: argparse.Namespace, defaults: Dict) -> Dict:
    """The shared run settings of a new run, defaults filled in, as keyword arguments of the run functions."""
    if args.input is None:
        raise InputError("give INPUT.pdb, or --resume FOLDER to continue a stopped run")
    value = {name: getattr(args, name) if getattr(args, name) is not None else default
             for name, default in defaults.items()}
    return dict(steps=value["steps"], out=value["out"], seed=value["seed"], temperature=value["temperature"],
                frame_every=value["frame_every"], strip_solvent=args.strip_solvent, overwrite=args.overwrite,
                progress=args.progress, platform=value["platform"], cap_termini=args.cap_termini,
                checkpoint_every_s=args.checkpoint_every * 60.0)


def report(result) -> int:
    """Print a run's summary and where its files went; the exit status (``INTERRUPTED`` if stopped)."""
    with open(result.files["summary_txt"]) as f:
        sys.stdout.write(f.read())
    print(f"wrote {', '.join(sorted(os.path.basename(p) for p in result.files.values()))} "
          f"to {os.path.dirname(result.files['summary_json']) or '.'}")
    if result.interrupted:
        folder = os.path.dirname(result.files["summary_json"]) or "."
        print(f"openmm-timewarp: interrupted after {result.summary['steps_done']} of {result.summary['steps']} steps; "
              f"continue with: openmm-timewarp {result.summary['command']} --resume {folder}", file=sys.stderr)
        return INTERRUPTED
    return 0


_DEFAULTS = dict(steps=10_000, frame_every=10, temperature=310.0, seed=1, out="timewarp-run", platform="Reference")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``sample``."""
    parser = subparsers.add_parser(
        "sample", help="sample a peptide with a Timewarp model (Metropolis-Hastings)",
        description="Prepare INPUT.pdb (pdbfixer: missing atoms and hydrogens; ACE/NME caps only with --cap-termini), "
                    "build the implicit-solvent System (amber14 + OBC2, no constraints), minimize, and sample it with "
                    "a Timewarp model and Metropolis-Hastings. Writes trajectory.dcd and log.csv as it goes, a "
                    "checkpoint, and ramachandran_*.png, populations.csv, summary.txt and summary.json to --out. "
                    "Ctrl-C stops the run cleanly (exit status 130); --resume continues it.")
    add_run_options(parser, _DEFAULTS)
    parser.add_argument("--model", help=f"shipped model name or model file (default {DEFAULT_MODEL})")
    parser.add_argument("--explore", action="store_true",
                        help="exploration mode: no Metropolis-Hastings; fast but BIASED (not Boltzmann)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the model (default 1)")
    parser.add_argument("--hmc-interval", type=int, default=None, metavar="N",
                        help="a hybrid Monte Carlo move after every N steps, 0 for none (default: the model's "
                             "recommendation, see 'openmm-timewarp models')")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from ..run import resume, sample

    if args.resume is not None:
        check_resume(args)
        return report(resume(args.resume, progress=args.progress, threads=args.threads,
                             checkpoint_every_s=args.checkpoint_every * 60.0, command="sample"))
    if args.explore:
        print("exploration mode: proposals are accepted without Metropolis-Hastings; the samples are BIASED",
              file=sys.stderr)
    result = sample(args.input, model=args.model or DEFAULT_MODEL, explore=args.explore, threads=args.threads,
                    hmc_interval=args.hmc_interval, **run_options(args, _DEFAULTS))
    return report(result)
