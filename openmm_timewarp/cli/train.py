"""``openmm-timewarp train``, ``train-backbone``, ``train-tito`` and ``kernel-acceptance``: the training commands.

Each parses its options into the config dataclass of its library function in ``training`` and calls it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, List

__all__ = ["add_parsers"]

ELEMENTS = ["H", "C", "N", "O", "S"]


def _command(name: str, args: argparse.Namespace) -> str:
    """The command line of a run, rebuilt from its options (recorded as provenance)."""
    words: List[str] = [f"openmm-timewarp {name}"]
    for key, value in sorted(vars(args).items()):
        if key in ("run", "command") or value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            words.append(flag)
        elif isinstance(value, (list, tuple)):
            words += [flag] + [str(v) for v in value]
        else:
            words += [flag, str(value)]
    return " ".join(words)


def _config(cls: Any, name: str, args: argparse.Namespace) -> Any:
    """The dataclass ``cls`` of the options ``args`` that are its fields."""
    fields = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in fields}
    return cls(**dict(values, command=_command(name, args)))


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a Timewarp flow on generated pairs",
                              description="Train a Timewarp flow on pair shards: maximum likelihood, then "
                                          "acceptance-loss fine-tuning.")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="directories with manifest.json and *.npz pair shards (several: one model for all their "
                        "molecules, e.g. one folder per peptide)")
    p.add_argument("--out", type=Path, required=True, help="run directory for checkpoints and log")
    p.add_argument("--epochs", type=int, default=20, help="maximum-likelihood epochs")
    p.add_argument("--acceptance-epochs", type=int, default=0, help="acceptance-loss fine-tuning epochs after those")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate of the likelihood phase")
    p.add_argument("--acceptance-lr", type=float, default=1e-4, help="learning rate of the acceptance phase")
    p.add_argument("--nll-weight", type=float, default=1.0, help="weight of the NLL kept in the acceptance phase")
    p.add_argument("--jump-weight", type=float, default=0.0,
                   help="weight of the log expected squared jump in the acceptance phase (0: Timewarp's loss)")
    p.add_argument("--acceptance-kernel", choices=["full", "torsion"], default="torsion",
                   help="internal architecture: the proposal kernel the acceptance phase trains")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--no-align", dest="align", action="store_false",
                   help="keep the rigid rotation between x(t) and x(t+tau) in the training targets")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default; use 1 on a busy machine)")
    p.add_argument("--architecture", choices=["cartesian", "internal"], default="internal",
                   help="internal: moves in internal coordinates (default); cartesian: moves of the positions")
    p.add_argument("--no-time-reversal", dest="time_reversal", action="store_false",
                   help="do not add the reversed pairs (x(t+tau), x(t)); equilibrium MD pairs are time-symmetric")
    p.add_argument("--elements", nargs="+", default=ELEMENTS)
    p.add_argument("--hidden", type=int, help="network width (default: the architecture's)")
    p.add_argument("--couplings", type=int, help="coupling layers (default: the architecture's)")
    p.add_argument("--blocks", type=int, help="attention blocks per network (default: the architecture's)")
    p.add_argument("--embed-dim", type=int, help="element embedding width (default: the architecture's)")
    p.add_argument("--length-scales", type=float, nargs="+", help="attention kernel length scales, nm")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import torch

    from ..training.objectives import TrainConfig, train

    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    final = train(_config(TrainConfig, "train", args))
    print(f"final checkpoint: {final}\nexport: openmm-timewarp export {final} model.pt")
    return 0


def _add_train_backbone(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train-backbone", help="fit the backbone pivot density to generated frames",
                              description="Fit the Ramachandran density of the backbone pivot kernel to the "
                                          "frames of pair shards.")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="directories with manifest.json and *.npz pair shards (one per peptide)")
    p.add_argument("--out", type=Path, required=True, help="checkpoint to write (refused if it exists)")
    p.add_argument("--elements", nargs="+", default=ELEMENTS, help="element vocabulary; must equal the flow's")
    p.add_argument("--components", type=int, default=16, help="mixture components")
    p.add_argument("--hidden", type=int, default=64, help="width of the feature network")
    p.add_argument("--floor", type=float, default=0.02, help="weight of the uniform component")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--rare-start-weight", type=float, default=1.0,
                   help="weight of residues whose trajectory started them at phi > 0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=_run_train_backbone)


def _run_train_backbone(args: argparse.Namespace) -> int:
    from ..training.backbone import BackboneTrainConfig, train_backbone

    print(json.dumps(train_backbone(_config(BackboneTrainConfig, "train-backbone", args)), indent=1))
    return 0


def _add_train_tito(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train-tito", help="train a TITO transfer operator on generated trajectories",
        description="Train a TITO transfer operator by conditional flow matching on MD trajectories. By default "
                    "the torsion model: each residue's (phi, psi, chi1) at t + lag given those at t, the chemistry "
                    "and the lag (trains on CPUs; TitoIntegrator relaxes bonds and angles with hybrid Monte "
                    "Carlo). --cartesian trains the Cartesian equivariant model instead (every atom; needs a GPU "
                    "to train to a usable accuracy). Unset options take the chosen model's defaults.")
    p.add_argument("--data", type=Path, nargs="+", required=True,
                   help="folders of traj_*.npz shards, or of one such folder per peptide")
    p.add_argument("--out", type=Path, required=True, help="run directory for checkpoints and log")
    p.add_argument("--cartesian", action="store_true", help="train the Cartesian model (GPU path)")
    p.add_argument("--epochs", type=int, help="default 20")
    p.add_argument("--steps-per-epoch", type=int, help="default 250 (torsion), 200 (Cartesian)")
    p.add_argument("--batch-size", type=int, help="default 512 (torsion), 32 (Cartesian)")
    p.add_argument("--lr", type=float, help="default 1e-3")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--min-lag-ps", type=float, help="default 10")
    p.add_argument("--max-lag-ps", type=float, help="default 1000")
    p.add_argument("--lag-ps", type=float, help="torsion model: the lag an export has unless told (default 1000)")
    p.add_argument("--hidden", type=int, help="default 128 (torsion), 64 (Cartesian)")
    p.add_argument("--layers", type=int, help="default 4")
    p.add_argument("--base-scale-nm", type=float, help="Cartesian model: width of the base noise (default 0.05)")
    p.add_argument("--base-scale-rad", type=float, help="torsion model: width of the base noise (default 0.5)")
    p.add_argument("--jump-hidden", type=int, help="torsion model: width of the basin-jump network (default 32)")
    p.add_argument("--time-reversal", action="store_true", help="torsion model: train on pairs backwards in time too "
                   "(only for equilibrium data; generate-data starts trajectories in every basin, which is not)")
    p.add_argument("--ode-steps", type=int, help="midpoint steps of the exported sampler (default 20)")
    p.add_argument("--elements", nargs="+", default=ELEMENTS)
    p.add_argument("--val-fraction", type=float, help="held-out end of each trajectory (default 0.1)")
    p.add_argument("--val-data", type=Path, nargs="+", help="torsion model: validate on these folders' shards (other "
                   "peptides, e.g. the validation split) instead of held-out trajectory ends")
    p.add_argument("--threads", type=int, help="torch threads (default 0: torch's default)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=_run_train_tito)


def _run_train_tito(args: argparse.Namespace) -> int:
    from ..errors import InputError

    if args.cartesian:
        from ..training.tito import TitoTrainConfig as config_class, train
    else:
        from ..training.tito_torsion import TorsionTitoTrainConfig as config_class, train_torsion_tito as train
    fields = {f.name for f in dataclasses.fields(config_class)}
    wrong = [name for name in ("lag_ps", "base_scale_nm", "base_scale_rad", "val_data", "jump_hidden", "time_reversal")
             if getattr(args, name) not in (None, False) and name not in fields]
    if wrong:
        raise InputError(f"--{wrong[0].replace('_', '-')} does not apply to the "
                         f"{'Cartesian' if args.cartesian else 'torsion'} model")
    chosen = argparse.Namespace(**{k: v for k, v in vars(args).items() if v is not None})
    best = train(_config(config_class, "train-tito", chosen))
    print(f"best checkpoint: {best}\nexport: openmm-timewarp export {best} tito.pt --lag-ps LAG")
    return 0


def _add_kernel_acceptance(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("kernel-acceptance", help="validation acceptance of each kernel of an internal flow",
                              description="Validation MH acceptance of each proposal kernel of a checkpoint "
                                          "(to choose export --kernels).")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", type=Path, nargs="+", required=True, help="the pair shard folders it was trained on")
    p.add_argument("--limit", type=int, default=256, help="validation x(t) to propose from")
    p.add_argument("--local-steps", type=float, nargs="+", default=[0.1, 0.3])
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(run=_run_kernel_acceptance)


def _run_kernel_acceptance(args: argparse.Namespace) -> int:
    import torch

    from ..errors import InputError
    from ..proposals.export import load_checkpoint
    from ..training.dataset import load_pairs
    from ..training.energies import molecule_energies
    from ..training.internal import kernel_acceptances

    torch.set_num_threads(args.threads)
    flow, info = load_checkpoint(args.checkpoint)
    if flow.kind != "internal":
        raise InputError(f"{args.checkpoint} holds a {flow.kind} kernel; kernel-acceptance needs an internal flow")
    pairs = load_pairs(args.data, flow.element_symbols, 0.1)["val"]
    energies = molecule_energies(pairs.molecules, info["temperature_K"])
    for name, value in kernel_acceptances(flow, pairs, energies, args.limit, args.local_steps).items():
        print(f"{name:10s} acceptance {value:.4f}", flush=True)
    return 0


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``train``, ``train-backbone``, ``train-tito`` and ``kernel-acceptance``."""
    _add_train(subparsers)
    _add_train_backbone(subparsers)
    _add_train_tito(subparsers)
    _add_kernel_acceptance(subparsers)
