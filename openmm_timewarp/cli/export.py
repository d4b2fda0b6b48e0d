"""``openmm-timewarp export``: a training checkpoint (optionally mixed with a backbone kernel) to a model
file; ``openmm-timewarp compile``: a model file to a compiled (contract v2) one with the same parameters.

The options are those of the recipes in ``scripts/train_*.sh``; each one edits a kernel's config
(``proposals``), and ``proposals.export.export_model`` writes the file (a ``.pt2`` name writes a
compiled file with ``proposals.compiled.export_compiled``).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path
from typing import Any, Dict, Tuple

from ..errors import InputError

__all__ = ["add_parsers", "build_kernel", "run", "run_compile"]


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``export`` and ``compile``."""
    p = subparsers.add_parser("export", help="export a training checkpoint to a model file",
                              description=__doc__.split("\n")[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out", type=Path, help="the model file: NAME.pt (TorchScript, contract v1) or NAME.pt2 (compiled "
                                          "with AOTInductor, contract v2; needs a C++ compiler, about a minute)")
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
    p.add_argument("--tito-sampling", type=int, nargs=2, metavar=("ODE_STEPS", "CANDIDATES"),
                   help="torsion TITO: midpoint steps of the sampling ODE and samples drawn at once per move "
                        "(default: the checkpoint's; fewer make a move cheaper and coarser)")
    _add_integrator_options(p, "default: 2 when the moves keep bond lengths and angles, else 0")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run)

    c = subparsers.add_parser(
        "compile", help="compile a model file into a contract-v2 file (.pt2) with the same parameters",
        description="Rebuild a model file's kernels from its metadata and parameters and write them as a "
                    "compiled (contract v2) file: the same proposal law, drawn from the integrator's random "
                    "numbers, at a fraction of the cost per proposal. Kernels without the v2 protocol (the "
                    "flows) are left out; a molecule only they can move needs the original file.")
    c.add_argument("model", help="model file or shipped model name")
    c.add_argument("out", type=Path, help="the compiled file to write, NAME.pt2")
    c.add_argument("--native-simd", action="store_true",
                   help="let the compiled code use the widest vector instructions of this CPU (e.g. AVX-512), "
                        "which other machines may lack; by default it uses AVX2")
    _add_integrator_options(c, "default: the model file's")
    c.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    c.set_defaults(run=run_compile)


def _add_integrator_options(parser: argparse.ArgumentParser, default: str) -> None:
    """The options that set the integrator settings the written file recommends (its timewarp.json)."""
    parser.add_argument("--hmc-interval", type=int, help=f"recommended hybrid Monte Carlo interval ({default})")
    parser.add_argument("--hmc-steps", type=int, help="recommended velocity Verlet steps per hybrid Monte Carlo move")
    parser.add_argument("--hmc-step-size-ps", type=float, help="their recommended step size, ps")
    parser.add_argument("--hmc-minimum-mass-amu", type=float,
                        help="recommended smallest particle mass in those moves, daltons (hydrogens move with it, "
                             "which allows longer steps; 0: the System's masses)")


def _integrator_overrides(args: argparse.Namespace) -> dict:
    """The integrator settings given on the command line, checked as the C++ loader will check them."""
    valid = {"hmc_interval": (lambda v: v >= 0, "at least 0"), "hmc_steps": (lambda v: v >= 1, "at least 1"),
             "hmc_step_size_ps": (lambda v: 0 < v < math.inf, "positive"),
             "hmc_minimum_mass_amu": (lambda v: 0 <= v < math.inf, "at least 0")}
    overrides = {}
    for key, (check, requirement) in valid.items():
        value = getattr(args, key)
        if value is not None:
            if not check(value):
                raise InputError(f"--{key.replace('_', '-')} must be {requirement}, got {value}")
            overrides[key] = value
    return overrides


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
    if args.tito_sampling is not None:
        if "candidates" not in dataclasses.asdict(flow.to_config()):
            raise InputError("--tito-sampling applies to torsion TITO models only")
        steps, candidates = args.tito_sampling
        try:
            configured = type(flow).from_config(dataclasses.replace(flow.to_config(), num_steps=steps,
                                                                    candidates=candidates))
        except ValueError as error:
            raise InputError(f"--tito-sampling: {error}") from None
        configured.load_state_dict(flow.state_dict())
        flow = configured.eval()
        info = dict(info, tito_sampling=dict(ode_steps=steps, candidates=candidates))
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
    overrides = _integrator_overrides(args)
    metadata = {k: v for k, v in info.items() if k not in ("lag_ps", "temperature_K")}
    if args.out.suffix == ".pt2":
        from ..proposals.compiled import export_compiled
        from ..proposals.export import recommended_settings

        entry = export_compiled(kernel, args.out, lag_ps=info["lag_ps"], temperature_K=info["temperature_K"],
                                settings=recommended_settings(kernel, overrides), metadata=metadata)
        settings = {"integrator": entry["integrator"]}
    else:
        settings = export_model(kernel, args.out, lag_ps=info["lag_ps"], temperature_K=info["temperature_K"],
                                metadata=metadata, integrator_settings=overrides)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, "
          f"{sum(p.numel() for p in kernel.parameters())} parameters; integrator {settings['integrator']})")
    return 0


def run_compile(args: argparse.Namespace) -> int:
    """Compile a model file as ``compile`` says; returns the exit status."""
    from ..model_file import ModelFile
    from ..proposals.compiled import export_compiled
    from ..proposals.rebuild import kernel_from_model_file

    if args.out.suffix != ".pt2":
        raise InputError(f"the compiled file must end in .pt2, got {args.out}")
    if args.out.exists() and not args.overwrite:
        raise InputError(f"{args.out} exists; pass --overwrite to replace it")
    source = ModelFile.open(args.model)
    if source.contract_version != 1:
        raise InputError(f"{source.name} is already a compiled (contract v{source.contract_version}) file")
    kernel, metadata, lag, temperature = kernel_from_model_file(source.path)
    settings = {k: source.settings[k] for k in ("integrator", "needs_fast_coordinate_moves") if k in source.settings}
    settings["integrator"] = dict(settings.get("integrator", {}), **_integrator_overrides(args))
    metadata = dict(metadata, compiled_from=dict(file=source.name, command="openmm-timewarp compile " + args.model))
    entry = export_compiled(kernel, args.out, lag_ps=lag, temperature_K=temperature, settings=settings,
                            metadata=metadata, simd_bits=0 if args.native_simd else 256)
    kinds = ", ".join(f"{k['kind']} ({k['weight']:g})" for k in entry["kernels"])
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB; kernels {kinds}; integrator {entry['integrator']})")
    return 0
