"""Train a TITO transfer operator by conditional flow matching on the frames of MD shards.

Command line: ``openmm-timewarp train-tito --data DIR [DIR ...] --out RUN_DIR --min-lag-ps 10
--max-lag-ps 1000 [--resume]`` (``cli/train.py``).

Each training example is a pair (x(t), x(t + lag)) of one trajectory's frames, the lag drawn
log-uniformly from the frame multiples in [``--min-lag-ps``, ``--max-lag-ps``], either direction
in time (equilibrium MD is reversible).  The coupling of base sample and target is the
equivariant optimal-transport one: the target is rotated onto the base sample (Kabsch) and
hydrogens bonded to the same heavy atom are permuted to their nearest base positions, so the
straight path y(s) = (1 - s) y0 + s x1 is as short as the symmetries allow.  The loss is the
mean squared error of the velocity against x1 - y0.  The last ``--val-fraction`` of each
trajectory is held out for the validation loss.

Writes ``RUN_DIR/last.pt`` (each epoch, for ``--resume``), ``best.pt`` (lowest validation loss)
and ``log.jsonl``.  Export with ``openmm-timewarp export RUN_DIR/best.pt OUT.pt --lag-ps LAG``.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..data.storage import iter_shards, read_shard
from ..proposals.tito import TitoModel, mean_free
from ..errors import InputError
from ..proposals.export import save_checkpoint
from .dataset import align_rotation, element_types
from .loop import common_value

_BOND_NM = 0.13  # hydrogen to heavy atom: 0.10-0.11 nm bonded, more than 0.16 nm otherwise


class Trajectory:
    """Frames (T, N, 3) of one MD trajectory, its atom types and its equivalent-hydrogen groups."""

    def __init__(self, path: Path, elements: Sequence[str]) -> None:
        shard = read_shard(str(path))
        symbols = [str(s) for s in shard["elements"]]
        self.path = path
        self.frames = torch.from_numpy(np.asarray(shard["frames"], dtype=np.float32))
        self.types = torch.from_numpy(element_types(symbols, elements, path))
        self.metadata = shard["metadata"]
        self.frame_ps = float(self.metadata["frame_interval_ps"])
        self.groups = hydrogen_groups(self.frames[0].numpy(), symbols)


def hydrogen_groups(positions: np.ndarray, symbols: Sequence[str]) -> List[List[int]]:
    """Hydrogens bonded to the same heavy atom (methyl, amine, methylene), two or more per group."""
    heavy = [i for i, s in enumerate(symbols) if s != "H"]
    groups: Dict[int, List[int]] = {}
    for i, s in enumerate(symbols):
        if s == "H":
            d = np.linalg.norm(positions[heavy] - positions[i], axis=1)
            if d.min() < _BOND_NM:
                groups.setdefault(heavy[int(d.argmin())], []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def permute_to_nearest(target: Tensor, base: Tensor, groups: List[List[int]]) -> Tensor:
    """``target`` (B, N, 3) with each group's atoms permuted to minimise the squared distance to ``base``."""
    target = target.clone()
    for group in groups:
        index = torch.tensor(group)
        perms = torch.tensor(list(itertools.permutations(range(len(group)))))  # (P, g): at most 6 for a methyl
        candidates = target[:, index][:, perms]  # (B, P, g, 3)
        cost = ((candidates - base[:, None, index]) ** 2).sum(dim=(-1, -2))
        best = cost.argmin(dim=1)
        target[:, index] = candidates[torch.arange(len(target)), best]
    return target


def sample_batch(trajectory: Trajectory, model: TitoModel, batch_size: int, first: int, end: int,
                 generator: torch.Generator) -> Tuple[Tensor, Tensor, Tensor]:
    """(x0, x1, lag_ps) of ``batch_size`` pairs within frames [first, end), lags log-uniform in the model's range."""
    low = max(1, math.ceil(model.min_lag_ps / trajectory.frame_ps - 1e-9))
    high = min(math.floor(model.max_lag_ps / trajectory.frame_ps + 1e-9), end - first - 1)
    if high < low:
        raise InputError(f"{trajectory.path}: {end - first} frames every {trajectory.frame_ps} ps hold no lag in "
                         f"[{model.min_lag_ps}, {model.max_lag_ps}] ps")
    u = torch.rand(batch_size, generator=generator)
    lag = torch.exp(math.log(low) + u * (math.log(high + 1) - math.log(low))).floor().long().clamp(low, high)
    start = first + (torch.rand(batch_size, generator=generator) * (end - first - lag)).long()
    a, b = trajectory.frames[start], trajectory.frames[start + lag]
    backward = torch.rand(batch_size, generator=generator) < 0.5  # time reversal
    x0 = torch.where(backward[:, None, None], b, a)
    x1 = torch.where(backward[:, None, None], a, b)
    return mean_free(x0), mean_free(x1), lag.float() * trajectory.frame_ps


def flow_matching_loss(model: TitoModel, trajectory: Trajectory, x0: Tensor, x1: Tensor, lag_ps: Tensor,
                       generator: torch.Generator) -> Tensor:
    """Mean squared velocity error on the straight path of the equivariant OT coupling."""
    noise = torch.randn(x0.shape, generator=generator)
    y0 = x0 + model.base_scale * mean_free(noise)
    x1 = torch.from_numpy(align_rotation(x1.numpy(), y0.numpy())).float()
    x1 = permute_to_nearest(x1, y0, trajectory.groups)
    s = torch.rand(len(x0), generator=generator)
    y = (1 - s[:, None, None]) * y0 + s[:, None, None] * x1
    v = model.velocity(y, x0, trajectory.types, s, lag_ps)
    return ((v - (x1 - y0)) ** 2).mean()


def split_frame(n_frames: int, val_fraction: float) -> int:
    """First frame of the held-out end of a trajectory."""
    return int(round(n_frames * (1 - val_fraction)))


def load_trajectories(folders: Sequence[Path], elements: Sequence[str]) -> List[Trajectory]:
    paths = [Path(p) for folder in folders for p in iter_shards(str(folder))]
    if not paths:
        raise FileNotFoundError(f"no traj_*.npz shards in {', '.join(map(str, folders))}")
    return [Trajectory(p, elements) for p in paths]


def validation_loss(model: TitoModel, trajectories: List[Trajectory], val_fraction: float, batches: int = 4,
                    batch_size: int = 32) -> float:
    """Flow-matching loss on pairs from the held-out end of every trajectory (fixed seed: comparable epochs)."""
    generator = torch.Generator().manual_seed(12345)
    losses = []
    with torch.no_grad():
        for trajectory in trajectories:
            n = len(trajectory.frames)
            for _ in range(batches):
                x0, x1, lag = sample_batch(trajectory, model, batch_size, split_frame(n, val_fraction), n, generator)
                losses.append(float(flow_matching_loss(model, trajectory, x0, x1, lag, generator)))
    return float(np.mean(losses))


@dataclasses.dataclass
class TitoTrainConfig:
    """What a TITO training run does; the fields are the options of ``openmm-timewarp train-tito``."""

    data: List[Path]
    out: Path
    epochs: int = 20
    steps_per_epoch: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    min_lag_ps: float = 10.0
    max_lag_ps: float = 1000.0
    hidden: int = 64
    layers: int = 4
    base_scale_nm: float = 0.05
    ode_steps: int = 20
    elements: List[str] = dataclasses.field(default_factory=lambda: ["H", "C", "N", "O", "S"])
    val_fraction: float = 0.1
    threads: int = 0
    resume: bool = False
    no_progress: bool = False
    command: str = ""


def _train_epoch(model: TitoModel, trajectories: List[Trajectory], weights: Tensor, optimizer: torch.optim.Optimizer,
                 generator: torch.Generator, args: TitoTrainConfig, epoch: int) -> List[float]:
    """One epoch of flow matching on batches of trajectories drawn by ``weights``; returns the losses."""
    model.train()
    losses: List[float] = []
    bar = tqdm(range(args.steps_per_epoch), desc=f"epoch {epoch}/{args.epochs}", disable=args.no_progress,
               dynamic_ncols=True)
    for _ in bar:
        trajectory = trajectories[int(torch.multinomial(weights, 1, generator=generator))]
        end = split_frame(len(trajectory.frames), args.val_fraction)
        x0, x1, lag = sample_batch(trajectory, model, args.batch_size, 0, end, generator)
        loss = flow_matching_loss(model, trajectory, x0, x1, lag, generator)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.5f}")
    return losses


def train(args: TitoTrainConfig) -> Path:
    """Run training as ``args`` says; returns the best checkpoint.

    Raises
    ------
    InputError
        If ``args.out`` holds a run already and ``args.resume`` is False.
    """
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    last, best, log_path = args.out / "last.pt", args.out / "best.pt", args.out / "log.jsonl"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False) if args.resume else None
    if checkpoint is None and last.exists():
        raise InputError(f"{args.out} holds a run already: pass --resume to continue it, or choose another --out")
    torch.manual_seed(args.seed)
    if checkpoint is None:
        model = TitoModel(args.elements, hidden=args.hidden, layers=args.layers, min_lag_ps=args.min_lag_ps,
                          max_lag_ps=args.max_lag_ps, base_scale_nm=args.base_scale_nm, num_steps=args.ode_steps,
                          lag_ps=math.sqrt(args.min_lag_ps * args.max_lag_ps))
    else:
        model = TitoModel.from_config(checkpoint["flow_config"])
        model.load_state_dict(checkpoint["flow_state"])
    trajectories = load_trajectories(args.data, model.element_symbols)
    metadata = [t.metadata for t in trajectories]
    info = {
        "architecture": "tito", "lag_ps": model.lag_ps, "temperature_K": common_value(metadata, "temperature_K"),
        "sequences": sorted({str(m.get("sequence")) for m in metadata}), "seed": args.seed, "command": args.command,
        "data": [str(d) for d in args.data], "trajectories": len(trajectories),
        "lag_range_ps": [model.min_lag_ps, model.max_lag_ps],
    }
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    state = {"epoch": 0, "best_val": math.inf}
    generator = torch.Generator().manual_seed(args.seed)
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        state = checkpoint["state"]
        generator.set_state(checkpoint["generator"])
    weights = torch.tensor([float(len(t.frames)) for t in trajectories])
    for epoch in range(state["epoch"] + 1, args.epochs + 1):
        losses = _train_epoch(model, trajectories, weights, optimizer, generator, args, epoch)
        model.eval()
        val = validation_loss(model, trajectories, args.val_fraction)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val}
        with open(log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        state = {"epoch": epoch, "best_val": min(state["best_val"], val)}
        extra = dict(optimizer=optimizer.state_dict(), state=state, torch_rng=torch.get_rng_state(),
                     generator=generator.get_state())
        if val <= state["best_val"]:
            save_checkpoint(best, model, dict(info, epoch=epoch, val_loss=val), **extra)
        save_checkpoint(last, model, dict(info, epoch=epoch, val_loss=val), **extra)
    return best
