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
import math
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from ..data.storage import iter_shards, read_shard
from ..proposals.tito import TitoModel, mean_free
from ..errors import InputError
from . import loop
from .dataset import align_rotation, common_value, element_types

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


class TitoObjective(loop.Objective):
    """Flow matching of a TITO model on the trajectories of ``config.data`` (see the module docstring).

    Parameters
    ----------
    config : TitoTrainConfig
        The run's settings.
    checkpoint : dict, optional
        The checkpoint of the run being resumed (its model is trained further).
    """

    def __init__(self, config: TitoTrainConfig, checkpoint: Optional[Dict] = None) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        if checkpoint is None:
            self.kernel = TitoModel(config.elements, hidden=config.hidden, layers=config.layers,
                                    min_lag_ps=config.min_lag_ps, max_lag_ps=config.max_lag_ps,
                                    base_scale_nm=config.base_scale_nm, num_steps=config.ode_steps,
                                    lag_ps=math.sqrt(config.min_lag_ps * config.max_lag_ps))
        else:
            self.kernel = TitoModel.from_config(checkpoint["flow_config"])
            self.kernel.load_state_dict(checkpoint["flow_state"])
        self.trajectories = load_trajectories(config.data, self.kernel.element_symbols)
        metadata = [t.metadata for t in self.trajectories]
        self.info = {
            "architecture": "tito", "lag_ps": self.kernel.lag_ps,
            "temperature_K": common_value(metadata, "temperature_K"),
            "sequences": sorted({str(m.get("sequence")) for m in metadata}), "seed": config.seed,
            "command": config.command, "data": [str(d) for d in config.data], "trajectories": len(self.trajectories),
            "lag_range_ps": [self.kernel.min_lag_ps, self.kernel.max_lag_ps],
        }
        self.generator = torch.Generator().manual_seed(config.seed)
        self.weights = torch.tensor([float(len(t.frames)) for t in self.trajectories])

    def phases(self) -> List[loop.Phase]:
        return [loop.Phase("flow matching", self.config.epochs, self.config.lr, "best")]

    def steps_per_epoch(self) -> int:
        return self.config.steps_per_epoch

    def batches(self, epoch: int, skip: int) -> Iterator[Tuple[Trajectory, Tensor, Tensor, Tensor]]:
        # Drawn lazily from the objective's generator, whose state a checkpoint restores.
        for _ in range(self.config.steps_per_epoch - skip):
            trajectory = self.trajectories[int(torch.multinomial(self.weights, 1, generator=self.generator))]
            end = split_frame(len(trajectory.frames), self.config.val_fraction)
            x0, x1, lag = sample_batch(trajectory, self.kernel, self.config.batch_size, 0, end, self.generator)
            yield trajectory, x0, x1, lag

    def loss(self, batch: Tuple[Trajectory, Tensor, Tensor, Tensor], phase: loop.Phase) -> Tuple[Tensor, Dict[str, float]]:
        trajectory, x0, x1, lag = batch
        loss = flow_matching_loss(self.kernel, trajectory, x0, x1, lag, self.generator)
        return loss, {"loss": loss.item()}

    def validate(self, phase: loop.Phase) -> Dict[str, float]:
        return {"val_loss": validation_loss(self.kernel, self.trajectories, self.config.val_fraction)}

    def random_state(self) -> Dict:
        return {"generator": self.generator.get_state()}

    def restore_random_state(self, checkpoint: Dict) -> None:
        self.generator.set_state(checkpoint["generator"])


def train(config: TitoTrainConfig) -> Path:
    """Run TITO training as ``config`` says; returns the best checkpoint.

    Raises
    ------
    InputError
        If the run directory does not match ``config.resume`` (a run there and no resume, or the reverse).
    """
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    return loop.run(lambda checkpoint: TitoObjective(config, checkpoint), config.out, resume=config.resume,
                    progress=not config.no_progress)
