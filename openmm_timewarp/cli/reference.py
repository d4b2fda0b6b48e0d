"""``make-reference``, ``pool-reference`` and ``proposal-acceptance``: making and judging equilibrium references.

- ``make-reference``: the (phi, psi) reference of capped peptides by a bias build and static-bias
  production (:mod:`openmm_timewarp.reference`); rerunning the same command resumes each run, a
  larger ``--production-ns`` extends it, ``--finalize-only`` rewrites the file from the chunks::

      openmm-timewarp make-reference --sequence AC DE --build-ns 4 --production-ns 8 --chunk-ns 1

- ``pool-reference``: several runs of one peptide in one reference (:mod:`openmm_timewarp.reference.pool`)::

      openmm-timewarp pool-reference --sequence KM --work runs/reference/ace-lys-met-nme_310K{,.res}

- ``proposal-acceptance``: the acceptance of a model's proposals by the basin they propose a
  residue into (:mod:`openmm_timewarp.analysis.acceptance`)::

      openmm-timewarp proposal-acceptance --sequence RW --residue 2
"""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, List

from .generate_data import add_md_options, log_to_stderr

if TYPE_CHECKING:
    from ..reference.settings import ReferenceSettings

__all__ = ["add_parsers", "run_make", "run_pool", "run_acceptance", "make_settings"]


def _add_make_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "make-reference", help="equilibrium (phi, psi) reference of capped peptides (resumable)",
        description="Bias build (metadynamics or the residue bias), then static-bias production in chunks, "
                    "reweighted to the unbiased (phi, psi) distribution. Rerunning the same command resumes.")
    parser.add_argument("--sequence", nargs="+", default=["A"],
                        help="one-letter residues between the caps (several: run one after another)")
    parser.add_argument("--seed", type=int, default=1)
    add_md_options(parser)
    parser.add_argument("--build-ns", type=float, default=10.0)
    parser.add_argument("--bias-factor", type=float, default=6.0)
    parser.add_argument("--height", type=float, default=1.0, help="initial hill height, kJ/mol")
    parser.add_argument("--sigma-deg", type=float, default=20.0, help="hill width, degrees")
    parser.add_argument("--hill-ps", type=float, default=1.0, help="interval between hills, ps")
    parser.add_argument("--grid", type=int, default=91, help="bias grid points per axis")
    parser.add_argument("--bias-torsions", nargs="+", default=None, metavar="NAME",
                        help="1-3 torsions to bias by metadynamics, e.g. psi1 phi2 psi2 or chi1_1 chi1_2 "
                             "(default: phi and psi of one residue; the phi of each non-proline residue, "
                             "then prolines' psi, the first two)")
    parser.add_argument("--residue-bias", action="store_true",
                        help="bias every residue's (phi, psi) by ACE-ALA-NME's free energy; alone: no "
                             "metadynamics, with --bias-torsions (side chains only): metadynamics on those too")
    parser.add_argument("--production-ns", type=float, default=300.0)
    parser.add_argument("--chunk-ns", type=float, default=2.0)
    parser.add_argument("--save-ps", type=float, default=0.5, help="frame interval, ps")
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--finalize-every", type=int, default=5, help="chunks between outputs")
    parser.add_argument("--max-wall-minutes", type=float, default=1e9, help="per sequence")
    parser.add_argument("--work", default=None, help="run folder (default: runs/reference/<name>)")
    parser.add_argument("--out", default=None, help="default: <name>.npz in the package's reference folder")
    parser.add_argument("--finalize-only", action="store_true")
    parser.set_defaults(run=run_make)


def make_settings(args: argparse.Namespace) -> List["ReferenceSettings"]:
    """One :class:`~openmm_timewarp.reference.settings.ReferenceSettings` per ``--sequence``."""
    from ..errors import InputError
    from ..reference.settings import ReferenceSettings

    if len(args.sequence) > 1 and (args.work or args.out):
        raise InputError("--work and --out name one run: give a single --sequence with them")
    common = {k: getattr(args, k) for k in (
        "seed", "temperature", "friction", "timestep_fs", "hmr", "build_ns", "bias_factor", "height", "sigma_deg",
        "hill_ps", "grid", "bias_torsions", "residue_bias", "production_ns", "chunk_ns", "save_ps", "blocks",
        "finalize_every", "max_wall_minutes", "work", "out")}
    return [ReferenceSettings(sequence=sequence, **common) for sequence in args.sequence]


def run_make(args: argparse.Namespace) -> int:
    """Make (or resume) each sequence's reference; returns the exit status (1 if a run blew up)."""
    import sys

    from ..data.generate import UnstableMD
    from ..reference.make import make_reference

    runs = make_settings(args)
    log_to_stderr()
    for settings in runs:
        try:
            make_reference(settings, finalize_only=args.finalize_only)
        except UnstableMD as error:
            print(f"openmm-timewarp: {settings.sequence}: {error}", file=sys.stderr)
            return 1
    return 0


def _add_pool_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pool-reference", help="pool several make-reference runs of one peptide into one reference",
        description="Each run's frames keep their weights normalised within the run; runs enter in proportion "
                    "to their Kish effective sizes; block b of the pool holds block b of every run.")
    parser.add_argument("--sequence", required=True, help="one-letter residues between the caps")
    parser.add_argument("--work", nargs="+", required=True, help="the runs' folders")
    parser.add_argument("--blocks", type=int, default=10, help="blocks per run for the error bars (even)")
    parser.add_argument("--out", default=None, help="default: <name>.npz in the package's reference folder")
    parser.set_defaults(run=run_pool)


def run_pool(args: argparse.Namespace) -> int:
    """Pool the runs; returns the exit status."""
    from ..reference.pool import PoolSettings, pool_references

    settings = PoolSettings(sequence=args.sequence, work=tuple(args.work), blocks=args.blocks, out=args.out)
    log_to_stderr()
    pool_references(settings)
    return 0


def _add_acceptance_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "proposal-acceptance", help="acceptance of a model's proposals by the basin they propose",
        description="From states of a short Timewarp chain, score the model's proposals with OpenMM's energy as "
                    "the integrator does, and report per (phi, psi) basin of --residue their share and acceptance.")
    parser.add_argument("--sequence", required=True, help="one-letter residues between the caps")
    parser.add_argument("--residue", type=int, default=1, help="residue whose basin is reported, 1-based")
    parser.add_argument("--model", default="dipeptides", help="model file or shipped model name")
    parser.add_argument("--states", type=int, default=6, help="chain states the proposals start from")
    parser.add_argument("--steps-between", type=int, default=1500, help="Timewarp steps between those states")
    parser.add_argument("--proposals", type=int, default=1024, help="proposals scored per state")
    parser.add_argument("--temperature", type=float, default=310.0, help="kelvin")
    parser.add_argument("--seed", type=int, default=1)
    parser.set_defaults(run=run_acceptance)


def run_acceptance(args: argparse.Namespace) -> int:
    """Score and print the table; returns the exit status."""
    import numpy as np

    from ..analysis.acceptance import AcceptanceSettings, basin_acceptance

    settings = AcceptanceSettings(sequence=args.sequence, residue=args.residue, model=args.model, states=args.states,
                                  steps_between=args.steps_between, proposals=args.proposals,
                                  temperature=args.temperature, seed=args.seed)
    log_to_stderr()
    acceptance, chain_rate = basin_acceptance(settings)
    total = settings.states * settings.proposals
    print(f"{settings.sequence} residue {settings.residue}: {total} proposals from {settings.states} states "
          f"(the chain itself accepted {chain_rate:.3f})")
    print(f"{'basin':8s} {'share':>7s} {'mean acceptance':>16s} {'max':>6s} {'median log acc.':>16s}")
    for name, values in acceptance.items():
        if values:
            accept = np.exp(values)
            print(f"{name:8s} {len(values) / total:7.4f} {accept.mean():16.3g} {accept.max():6.3f} "
                  f"{np.median(values):16.1f}")
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``make-reference``, ``pool-reference`` and ``proposal-acceptance``."""
    _add_make_parser(subparsers)
    _add_pool_parser(subparsers)
    _add_acceptance_parser(subparsers)
