"""``openmm-timewarp export``: a training checkpoint (optionally mixed with a backbone kernel) to a model file.

The options are those of the recipes in ``scripts/train_*.sh``; each one edits a kernel's config
(``proposals``), and ``proposals.export.export_model`` writes the file.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Dict, Tuple

from ..errors import InputError

__all__ = ["add_parsers", "build_kernel", "run"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export``."""
    p = subparsers.add_parser("export", help="export a training checkpoint to a TorchScript model file",
                              description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--kernels", type=float, nargs=3, metavar=("FULL", "TORSION", "LOCAL"),
                   help="internal architecture: probabilities of the full, torsion-only and local proposal kernels")
    p.add_argument("--local-step", type=float, default=0.1,
                   help="internal architecture: local random-walk step, as a fraction of the learned move scale")
    p.add_argument("--backbone", type=Path,
                   help="checkpoint of a backbone pivot kernel (openmm-timewarp train-backbone) to mix with the flow")
    p.add_argument("--backbone-weight", type=float, default=0.5,
                   help="with --backbone: probability that a proposal is a backbone pivot")
    p.add_argument("--pivot-local", type=float, nargs=2, metavar=("FRACTION", "WIDTH"), default=(0.0, 0.3),
                   help="with --backbone: fraction of pivots that are a symmetric wrapped-normal step of WIDTH rad "
                        "from the current (phi, psi) instead of a draw from the density (for biased runs)")
    p.add_argument("--side-chains", type=float, nargs=4, metavar=("FRACTION", "JUMP", "WIDTH", "WITH_PIVOTS"),
                   default=(0.0, 0.0, 0.0, 0.0),
                   help="with --backbone: fraction of proposals that turn one chi torsion instead of pivoting, "
                        "rotamer-jump probability, noise width (rad), and fraction of pivots that also turn the "
                        "pivoted residue's chi angles (see proposals/side_chains.py)")
    p.add_argument("--rotamers", type=float, nargs=3, metavar=("CROSSING", "OTHER", "WIDTH"), default=(0.0, 0.0, 0.35),
                   help="with --backbone: fraction of the pivots changing the sign of phi, and of the others, that "
                        "also redraw the residue's chi1 from rotamers WIDTH rad wide at -60, 180 and 60 degrees")
    p.add_argument("--basin-prior", type=float, nargs=2, metavar=("WEIGHT", "WIDTH"), default=(0.0, 0.35),
                   help="with --backbone: weight of fixed (phi, psi) components at the known backbone minima, "
                        "WIDTH rad wide, mixed into the learned density (see proposals/ramachandran.py)")
    p.add_argument("--max-residues", type=int,
                   help="largest peptide (residues, caps included) the model is meant for; the command line "
                        "refuses larger ones")
    p.add_argument("--lag-ps", type=float, help="TITO: the lag of the exported moves (within the trained range)")
    p.add_argument("--hmc-interval", type=int,
                   help="recommended hybrid Monte Carlo interval (default: 2 when the moves keep bond lengths and "
                        "angles, else 0)")
    p.add_argument("--hmc-steps", type=int, help="recommended velocity Verlet steps per hybrid Monte Carlo move")
    p.add_argument("--hmc-step-size-ps", type=float, help="their recommended step size, ps")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run)


def _backbone(args: argparse.Namespace):
    """The backbone kernel of ``--backbone`` with the settings of the backbone options, and its provenance."""
    from ..proposals.export import load_checkpoint

    kernel, info = load_checkpoint(args.backbone)
    if "side_chain_fraction" not in dataclasses.asdict(kernel.to_config()):
        raise InputError(f"{args.backbone} is a {kernel.kind} checkpoint, not a backbone kernel")
    # The settings are config edits: rebuild the kernel with them and its trained state.
    config = dataclasses.replace(
        kernel.to_config(), local_fraction=args.pivot_local[0], local_width=args.pivot_local[1],
        side_chain_fraction=args.side_chains[0], side_chain_jump=args.side_chains[1],
        side_chain_width=args.side_chains[2], side_chains_with_pivots=args.side_chains[3],
        rotamer_crossing=args.rotamers[0], rotamer_other=args.rotamers[1], rotamer_width=args.rotamers[2],
        basin_prior_weight=args.basin_prior[0], basin_prior_width=args.basin_prior[1])
    try:
        configured = type(kernel).from_config(config)
    except ValueError as error:
        raise InputError(f"backbone settings: {error}") from None
    configured.load_state_dict(kernel.state_dict())
    return configured.eval(), dict(info, checkpoint=str(args.backbone), weight=args.backbone_weight)


def build_kernel(args: argparse.Namespace) -> Tuple[Any, Dict[str, Any]]:
    """The kernel the options describe and the provenance to record with it."""
    from ..proposals.export import load_checkpoint
    from ..proposals.mixture import ProposalMixture

    flow, info = load_checkpoint(args.checkpoint)
    if args.lag_ps is not None:
        if not flow.adjustable_lag:
            raise InputError("--lag-ps applies to TITO models only (a Timewarp flow has the lag of its data)")
        flow.set_lag_ps(args.lag_ps)
        info = dict(info, lag_ps=args.lag_ps)
    if args.kernels is not None:
        if "kernel_weights" not in dataclasses.asdict(flow.to_config()):
            raise InputError("--kernels applies to the internal architecture only")
        flow.set_kernels(*args.kernels, local_step=args.local_step)
    if args.backbone is not None:
        backbone, backbone_info = _backbone(args)
        if not 0.0 <= args.backbone_weight <= 1.0:
            raise InputError(f"--backbone-weight must lie in [0, 1], got {args.backbone_weight}")
        flow = ProposalMixture([backbone, flow], [args.backbone_weight, 1.0 - args.backbone_weight])
        info = dict(info, backbone=backbone_info)
    if args.max_residues is not None:
        info = dict(info, max_residues=args.max_residues)
    return flow, info


def run(args: argparse.Namespace) -> int:
    """Export as the options say; returns the exit status."""
    from ..proposals.export import export_model

    if args.out.exists() and not args.overwrite:
        raise InputError(f"{args.out} exists; pass --overwrite to replace it")
    kernel, info = build_kernel(args)
    overrides = {k: v for k, v in (("hmc_interval", args.hmc_interval), ("hmc_steps", args.hmc_steps),
                                   ("hmc_step_size_ps", args.hmc_step_size_ps)) if v is not None}
    metadata = {k: v for k, v in info.items() if k not in ("lag_ps", "temperature_K")}
    settings = export_model(kernel, args.out, lag_ps=info["lag_ps"], temperature_K=info["temperature_K"],
                            metadata=metadata, integrator_settings=overrides)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"{sum(p.numel() for p in kernel.parameters())} parameters; integrator {settings['integrator']})")
    return 0
