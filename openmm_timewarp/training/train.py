"""Train a Timewarp flow on pair shards: maximum likelihood, then acceptance-loss fine-tuning.

Usage::

    python -m openmm_timewarp.training.train --data DIR [DIR ...] --out RUN_DIR --epochs 20 --seed 0 \\
        [--acceptance-epochs 2] [--resume]

Several data folders (one per peptide, say) train one transferable model: the flow sees only
elements and geometry, so molecules of any size share it. The internal flow's batches each hold
pairs of one molecule (the shards of one peptide share a Z-matrix), so the flow runs once per
batch without padding; the Cartesian flow pads mixed batches and masks the padding.

Writes ``RUN_DIR/last.pt`` (every ``--checkpoint-every`` steps and at each epoch end, for
``--resume``), ``best.pt`` (lowest validation NLL of the likelihood phase), ``finetuned.pt`` (after
each acceptance epoch) and ``log.jsonl`` (per epoch: validation NLL and, where the shards name
their Systems, the validation MH acceptance rate of one proposal). Export with
``python -m openmm_timewarp.models.export RUN_DIR/finetuned.pt OUT.pt`` (or ``best.pt``).

Acceptance fine-tuning evaluates energies with OpenMM: each shard's System comes from the XML
file its metadata names (``system_xml``, relative to its shard's folder) or else is rebuilt from
the ``topology_pdb`` in its metadata with ``openmm_timewarp.systems.create_system``.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch
from tqdm import tqdm

from ..models.export import FLOW_CLASSES
from ..models.flow import TimewarpFlow
from .dataset import PairSet, load_pairs, random_rotations, reversed_pairs, rotate_pairs
from .energies import molecule_energies
from .internal import (internal_acceptance, internal_acceptance_loss, internal_log_scales, internal_nll_loss,
                       molecule_groups, molecule_zmatrices)
from .losses import ReducedEnergy, acceptance_loss, log_acceptance, nll_loss


ACCEPTANCE_KERNELS = {"full": (1.0, 0.0, 0.0), "torsion": (0.0, 1.0, 0.0)}
"""Kernel weights (full, torsion, local) of the internal flow's proposals in the acceptance phase."""


def parse_args(argv: List[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument("--acceptance-kernel", choices=sorted(ACCEPTANCE_KERNELS), default="torsion",
                   help="internal architecture: the proposal kernel the acceptance phase trains (default torsion, "
                        "the one the shipped exports use)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--no-align", dest="align", action="store_false",
                   help="keep the rigid rotation between x(t) and x(t+tau) in the training targets")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default; use 1 on a busy machine, where idle-waiting threads stall)")
    p.add_argument("--architecture", choices=sorted(FLOW_CLASSES), default="internal",
                   help="internal: moves in internal coordinates (default); cartesian: moves of the Cartesian positions")
    p.add_argument("--no-time-reversal", dest="time_reversal", action="store_false",
                   help="do not add the reversed pairs (x(t+tau), x(t)); equilibrium MD pairs are time-symmetric")
    p.add_argument("--elements", nargs="+", default=["H", "C", "N", "O", "S"])
    p.add_argument("--hidden", type=int, help="network width (default: the architecture's)")
    p.add_argument("--couplings", type=int, help="coupling layers (default: the architecture's)")
    p.add_argument("--blocks", type=int, help="attention blocks per network (default: the architecture's)")
    p.add_argument("--embed-dim", type=int, help="element embedding width (default: the architecture's)")
    p.add_argument("--length-scales", type=float, nargs="+", help="attention kernel length scales, nm")
    args = p.parse_args(argv)
    args.command = " ".join(["python -m openmm_timewarp.training.train"] + list(argv))
    return args


def common_value(molecules: List[Dict], key: str) -> float:
    """The value of ``key`` shared by every shard's metadata; a model has one lag and one temperature."""
    values = {float(m[key]) for m in molecules}
    if len(values) != 1:
        raise ValueError(f"shards disagree on {key}: {sorted(values)}")
    return values.pop()


def element_log_scales(pairs: PairSet, num_elements: int) -> torch.Tensor:
    """log RMS per-coordinate displacement (centre of mass removed) of each element, nm."""
    m = pairs.mask[..., None]
    delta = (pairs.x_tau - pairs.x_t) * m
    delta = (delta - delta.sum(1, keepdim=True) / pairs.mask.sum(1)[:, None, None]) * m
    sq = (delta ** 2).sum(-1)
    total = torch.zeros(num_elements).index_add_(0, pairs.atom_types.flatten(), (sq * pairs.mask).flatten())
    count = torch.zeros(num_elements).index_add_(0, pairs.atom_types.flatten(), pairs.mask.flatten())
    rms = torch.sqrt(total / (3 * count.clamp(min=1)))
    rms = torch.where(count > 0, rms, rms[count > 0].mean())
    return torch.log(rms.clamp(min=1e-4))


def validation_nll(loss_fn: Callable[[Dict[str, torch.Tensor]], torch.Tensor], pairs: PairSet, batch_size: int,
                   device: torch.device, seed: int) -> float:
    """Mean NLL ``loss_fn`` over the validation pairs, with fixed auxiliary noise."""
    if len(pairs) == 0:
        return float("nan")
    total = 0.0
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for start in range(0, len(pairs), batch_size):
            index = torch.arange(start, min(start + batch_size, len(pairs)))
            total += loss_fn(pairs.batch(index, device)).item() * len(index)
    return total / len(pairs)


def validation_acceptance(flow: TimewarpFlow, pairs: PairSet, energies: Dict[int, ReducedEnergy], batch_size: int,
                          device: torch.device, seed: int, limit: int = 512) -> float:
    """Mean MH acceptance probability of one proposal from each of ``limit`` validation x(t),
    spread evenly over the validation set (and so over its shards)."""
    if len(pairs) == 0:
        return float("nan")
    subset = torch.linspace(0, len(pairs) - 1, min(limit, len(pairs))).long().unique()
    total = 0.0
    with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        for index in subset.split(batch_size):
            total += torch.exp(log_acceptance(flow, pairs.batch(index, device), energies)[0]).sum().item()
    return total / len(subset)


def save_checkpoint(path: Path, flow: torch.nn.Module, optimizer: torch.optim.Optimizer, state: Dict, info: Dict,
                    extra: Optional[Dict] = None) -> None:
    """Write a checkpoint atomically (see ``models.export.load_checkpoint`` for the keys it reads);
    ``extra`` entries are stored beside the standard ones."""
    tmp = path.with_suffix(".tmp")
    torch.save({
        **(extra or {}),
        "architecture": info["architecture"],
        "flow_config": json.loads(flow.config_json),
        "flow_state": flow.state_dict(),
        "optimizer": optimizer.state_dict(),
        "state": state,
        "info": info,
        "torch_rng": torch.get_rng_state(),
    }, tmp)
    tmp.replace(path)


def train(args: argparse.Namespace) -> Path:
    """Run training as configured by ``args``; returns the final checkpoint (fine-tuned or best)."""
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    last, best, finetuned = args.out / "last.pt", args.out / "best.pt", args.out / "finetuned.pt"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False) if args.resume else None
    elements = args.elements if checkpoint is None else checkpoint["flow_config"]["elements"]
    splits = load_pairs(args.data, elements, args.val_fraction, args.align)
    train_pairs, val_pairs = splits["train"], splits["val"]
    molecules = train_pairs.molecules
    architecture = args.architecture if checkpoint is None else checkpoint.get("architecture", "cartesian")
    internal = architecture == "internal"
    if args.time_reversal:
        train_pairs = reversed_pairs(train_pairs)
    temperature = common_value(molecules, "temperature_K")
    info = {
        "lag_ps": common_value(molecules, "lag_ps"),
        "temperature_K": temperature,
        "sequences": sorted({str(m.get("sequence", m["shard"])) for m in molecules}),
        "seed": args.seed,
        "command": args.command,
        "data": [str(d) for d in args.data],
        "train_pairs": len(train_pairs),
        "val_pairs": len(val_pairs),
        "aligned_pairs": args.align,
        "architecture": architecture,
        "time_reversal": args.time_reversal,
        "epochs": args.epochs,
        "acceptance_epochs": args.acceptance_epochs,
    }

    torch.manual_seed(args.seed)
    flow_class = FLOW_CLASSES[architecture]
    if checkpoint is None:
        sizes = dict(hidden=args.hidden, num_couplings=args.couplings, num_blocks=args.blocks,
                     embed_dim=args.embed_dim, length_scales=args.length_scales)
        flow = flow_class(elements, **{k: v for k, v in sizes.items() if v is not None})
    else:  # the architecture of the run being resumed, whatever the size options say
        flow = flow_class.from_config(checkpoint["flow_config"])
        flow.load_state_dict(checkpoint["flow_state"])
    zmatrices = molecule_zmatrices(flow, train_pairs) if internal else {}
    # Internal flow: batches of one peptide each (its shards share a Z-matrix), one flow call per batch.
    groups = molecule_groups(train_pairs, zmatrices) if internal else None
    if checkpoint is None:
        with torch.no_grad():
            if internal:
                flow.log_scale_table.copy_(internal_log_scales(flow, train_pairs, zmatrices))
            else:
                flow.element_log_scale.copy_(element_log_scales(train_pairs, len(elements)))
    flow.to(device)

    def likelihood_loss(batch: Dict[str, torch.Tensor]) -> torch.Tensor:
        return internal_nll_loss(flow, batch, zmatrices, groups) if internal else nll_loss(flow, batch)

    optimizer = torch.optim.Adam(flow.parameters(), lr=args.lr)
    state = {"epoch": 0, "batch": 0, "step": 0, "best_val": math.inf}
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = checkpoint["state"]
        torch.set_rng_state(checkpoint["torch_rng"])
        info["resumed_at_step"] = state["step"]

    # Energies serve the acceptance phase and, whenever the shards name their Systems, a validation
    # acceptance rate after every epoch.
    have_systems = all("system_xml" in m or "topology_pdb" in m for m in molecules)
    if args.acceptance_epochs > 0 and not have_systems:
        raise ValueError("acceptance fine-tuning needs energies: every shard must carry system_xml or topology_pdb")
    energies = molecule_energies(molecules, temperature) if have_systems else {}
    log = (args.out / "log.jsonl").open("a")
    row_groups = groups[train_pairs.molecule] if groups is not None else None
    steps_per_epoch = len(train_pairs.batch_indices(args.batch_size, torch.Generator().manual_seed(0),
                                                    groups=row_groups))
    if steps_per_epoch == 0:
        raise ValueError(f"{len(train_pairs)} training pairs do not fill one batch of {args.batch_size}")
    while state["epoch"] < args.epochs + args.acceptance_epochs:
        epoch = state["epoch"]
        acceptance_phase = epoch >= args.epochs
        for group in optimizer.param_groups:
            group["lr"] = args.acceptance_lr if acceptance_phase else args.lr
        if acceptance_phase and internal:  # also the kernel whose acceptance is validated after the epoch
            flow.set_kernels(*ACCEPTANCE_KERNELS[args.acceptance_kernel], local_step=flow.local_step)
        # The shuffle and augmentation of an epoch depend only on (seed, epoch): resume skips exactly.
        order = torch.Generator().manual_seed(args.seed * 100003 + epoch)
        rotation_rng = torch.Generator().manual_seed(args.seed * 100019 + epoch)
        rotations = random_rotations(steps_per_epoch * args.batch_size, rotation_rng)
        flow.train()
        bar = tqdm(train_pairs.batch_indices(args.batch_size, order, skip=state["batch"], groups=row_groups),
                   total=steps_per_epoch, initial=state["batch"], desc=f"epoch {epoch + 1}"
                   + (" (acceptance)" if acceptance_phase else ""), dynamic_ncols=True)
        started = time.perf_counter()
        postfix: Dict[str, str] = {}
        for index in bar:
            batch = train_pairs.batch(index, device)
            r = rotations[state["batch"] * args.batch_size:(state["batch"] + 1) * args.batch_size]
            if not internal:  # the internal flow is invariant under rotations
                batch["x_t"], batch["x_tau"] = rotate_pairs(batch["x_t"], batch["x_tau"], batch["mask"], r)
            if acceptance_phase and internal:
                loss_acc, accept = internal_acceptance_loss(flow, batch, energies, jump_weight=args.jump_weight)
            elif acceptance_phase:
                loss_acc, accept = acceptance_loss(flow, batch, energies, jump_weight=args.jump_weight)
            if acceptance_phase:
                loss_nll = likelihood_loss(batch)
                loss = loss_acc + args.nll_weight * loss_nll
                postfix = {"acc_loss": f"{loss_acc.item():.3f}", "p_acc": f"{accept.item():.3f}",
                           "nll": f"{loss_nll.item():.3f}"}
            else:
                loss = likelihood_loss(batch)
                postfix = {"nll": f"{loss.item():.3f}"}
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            optimizer.step()
            state["batch"] += 1
            state["step"] += 1
            bar.set_postfix(postfix)
            if state["step"] % args.checkpoint_every == 0:
                save_checkpoint(last, flow, optimizer, state, info)
        flow.eval()
        val = validation_nll(likelihood_loss, val_pairs, 4 * args.batch_size, device, args.seed)
        record = {"epoch": epoch + 1, "step": state["step"], "val_nll": val, "phase":
                  "acceptance" if acceptance_phase else "likelihood", "seconds": time.perf_counter() - started}
        if energies:
            record["val_p_acc"] = (internal_acceptance(flow, val_pairs, energies) if internal else
                                   validation_acceptance(flow, val_pairs, energies, 4 * args.batch_size, device,
                                                         args.seed))
        record.update({k: float(v) for k, v in postfix.items()})
        log.write(json.dumps(record) + "\n")
        log.flush()
        tqdm.write(json.dumps(record))
        state["epoch"], state["batch"] = epoch + 1, 0
        if acceptance_phase:
            save_checkpoint(finetuned, flow, optimizer, state, info)
        elif val < state["best_val"]:
            state["best_val"] = val
            save_checkpoint(best, flow, optimizer, state, info)
        save_checkpoint(last, flow, optimizer, state, info)
    log.close()
    return finetuned if args.acceptance_epochs > 0 else best


def main(argv: Optional[List[str]] = None) -> None:
    final = train(parse_args(sys.argv[1:] if argv is None else argv))
    print(f"final checkpoint: {final}\nexport: python -m openmm_timewarp.models.export {final} model.pt")


if __name__ == "__main__":
    main()
