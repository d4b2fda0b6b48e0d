"""Train the torsion TITO model (:mod:`openmm_timewarp.proposals.tito_torsion`) by flow matching on
the torsions of MD shards.

Command line: ``openmm-timewarp train-tito --data DIR [DIR ...] --out RUN_DIR`` (``cli/train.py``;
``--cartesian`` trains the Cartesian model of :mod:`.tito` instead). A data folder is a folder of
``traj_*.npz`` shards or a folder of such folders (one per peptide, as ``generate-data --split``
writes them).

Every shard's torsions are computed once, at the start, with the model's own residue search on
its first frame. A training example is a pair (torsions at t, torsions at t + lag) of one
trajectory: the trajectory drawn in proportion to its frames, the lag log-uniformly from the
frame multiples in [``min_lag_ps``, ``max_lag_ps``] that fit, forwards in time. Backwards too only
with ``time_reversal``, which is right for equilibrium data alone: pairs of both directions make
the learned kernel reversible with respect to the data's own distribution, and ``generate-data``
starts its trajectories in every basin alike, so that distribution puts a third of the
population at phi > 0 (measured: chains of a model trained so drifted to 40-90% alpha_L). The validation loss comes from the shards of ``val_data``
(other peptides: transfer) when given, else from the last ``val_fraction`` of each trajectory,
held out. The loss is the masked mean squared error of the velocity on the torus
path of the module :mod:`~openmm_timewarp.proposals.tito_torsion` describes, told the basins at t +
lag, plus the jump network's cross-entropy on those basins.

Writes ``RUN_DIR/last.pt`` (for ``--resume``), ``best.pt`` and ``log.jsonl``; export with
``openmm-timewarp export RUN_DIR/best.pt OUT.pt --lag-ps LAG``.
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..data.storage import iter_shards, read_shard
from ..errors import InputError
from ..proposals.geometry import wrap_angle
from ..proposals.tito_torsion import TorsionTito, basins_of
from . import loop
from .dataset import common_value, element_types

__all__ = ["TorsionTitoTrainConfig", "TorsionData", "losses", "shard_paths", "train_torsion_tito"]


@dataclasses.dataclass
class TorsionTitoTrainConfig:
    """What a torsion TITO training run does; the fields are options of ``openmm-timewarp train-tito``."""

    data: List[Path]
    out: Path
    epochs: int = 20
    steps_per_epoch: int = 250
    batch_size: int = 512
    lr: float = 1e-3
    seed: int = 0
    min_lag_ps: float = 10.0
    max_lag_ps: float = 1000.0
    hidden: int = 128
    layers: int = 4
    ode_steps: int = 20
    lag_ps: float = 1000.0
    base_scale_rad: float = 0.5
    jump_hidden: int = 32
    time_reversal: bool = False
    elements: List[str] = dataclasses.field(default_factory=lambda: ["H", "C", "N", "O", "S"])
    val_fraction: float = 0.1
    val_data: List[Path] = dataclasses.field(default_factory=list)
    threads: int = 0
    resume: bool = False
    no_progress: bool = False
    command: str = ""


def shard_paths(folders: Sequence[Path]) -> List[Path]:
    """The complete shards of each folder, or of its sub-folders where it holds none itself.

    Raises
    ------
    InputError
        If a folder is missing or holds no shards at either level.
    """
    paths: List[Path] = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise InputError(f"no data folder {folder}")
        found = [Path(p) for p in iter_shards(str(folder))]
        if not found:
            found = [Path(p) for sub in sorted(Path(folder).iterdir()) if sub.is_dir() for p in iter_shards(str(sub))]
        if not found:
            raise InputError(f"{folder} holds no traj_*.npz shards, nor do its sub-folders")
        paths += found
    return paths


class TorsionData:
    """The torsions of every frame of every shard, padded to the largest number of residues.

    Attributes
    ----------
    torsions : Tensor
        (frames of all shards, R, 3) float32, shard after shard (``offsets``, ``lengths``).
    features, mask, neighbours : Tensor
        Per shard: (S, R, F), (S, R, 3) and (S, R, 2), as ``TorsionTito.molecule`` gives them, padded
        residues with a zero mask and no neighbours.
    """

    def __init__(self, paths: Sequence[Path], model: TorsionTito, progress: bool = False) -> None:
        rows: List[Tuple[Tensor, List[Tensor]]] = []
        self.metadata: List[Dict] = []
        for path in tqdm(paths, desc="torsions of the shards", disable=not progress, dynamic_ncols=True):
            shard = read_shard(str(path))
            types = torch.from_numpy(element_types([str(s) for s in shard["elements"]], model.element_symbols, path))
            frames = torch.from_numpy(np.asarray(shard["frames"], dtype=np.float64))
            molecule = model.molecule(frames[0], types)
            if molecule[0].shape[0] == 0:
                raise InputError(f"{path}: the molecule has no residue with a rotatable psi")
            rows.append((model.torsions(frames, molecule[3]).float(), [t.clone() for t in molecule[:3]]))
            self.metadata.append(shard["metadata"])
        self.frame_ps = common_value(self.metadata, "frame_interval_ps")
        width = max(t.shape[1] for t, _ in rows)
        self.lengths = torch.tensor([len(t) for t, _ in rows])
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        self.torsions = torch.cat([torch.nn.functional.pad(t, (0, 0, 0, width - t.shape[1])) for t, _ in rows])
        features, masks, neighbours = [], [], []
        for t, (f, m, n) in rows:
            r = f.shape[0]
            features.append(torch.nn.functional.pad(f.float(), (0, 0, 0, width - r)))
            masks.append(torch.nn.functional.pad(m.float(), (0, 0, 0, width - r)))
            n = torch.where(n == r, torch.full_like(n, width), n)
            neighbours.append(torch.cat([n, torch.full((width - r, 2), width, dtype=torch.int64)]))
        self.features, self.mask, self.neighbours = torch.stack(features), torch.stack(masks), torch.stack(neighbours)

    def batch(self, size: int, min_lag_ps: float, max_lag_ps: float, val_fraction: float, validation: bool,
              generator: torch.Generator, time_reversal: bool = False) -> Dict[str, Tensor]:
        """``size`` pairs (now, later, lag_ps and the molecule tensors) from the training frames of
        each shard (its held-out end with ``validation``), lags log-uniform in the range; with
        ``time_reversal`` half of them backwards in time."""
        split = torch.round(self.lengths * (1.0 - val_fraction)).long()
        first = split if validation else torch.zeros_like(split)
        end = self.lengths if validation else split
        low = max(1, math.ceil(min_lag_ps / self.frame_ps - 1e-9))
        high = torch.clamp(end - first - 1, max=math.floor(max_lag_ps / self.frame_ps + 1e-9))
        usable = (high >= low).float() * (end - first).float()
        if float(usable.sum()) == 0:
            raise InputError(f"no trajectory has {'held-out' if validation else 'training'} frames for a lag in "
                             f"[{min_lag_ps}, {max_lag_ps}] ps at {self.frame_ps} ps per frame")
        shard = torch.multinomial(usable, size, replacement=True, generator=generator)
        top = high[shard].float()
        u = torch.rand(size, generator=generator)
        lag = torch.exp(math.log(low) + u * (torch.log(top + 1) - math.log(low))).floor().long()
        lag = torch.minimum(torch.clamp(lag, min=low), high[shard])
        start = first[shard] + (torch.rand(size, generator=generator) * (end[shard] - first[shard] - lag)).long()
        a = self.torsions[self.offsets[shard] + start]
        b = self.torsions[self.offsets[shard] + start + lag]
        backward = (torch.rand(size, generator=generator) < (0.5 if time_reversal else 0.0))[:, None, None]
        return {"now": torch.where(backward, b, a), "later": torch.where(backward, a, b),
                "lag_ps": lag.float() * self.frame_ps, "features": self.features[shard], "mask": self.mask[shard],
                "neighbours": self.neighbours[shard]}


def losses(model: TorsionTito, batch: Dict[str, Tensor], generator: torch.Generator) -> Tuple[Tensor, Tensor]:
    """The jump network's cross-entropy on the basins at t + lag (per residue) and the field's masked
    mean squared velocity error on the torus path from the base sample to ``later``, told its basins."""
    now, later, mask = batch["now"], batch["later"], batch["mask"]
    basins = basins_of(later)
    present = mask[:, :, 1]
    log_p = model.jump_logits(now, batch["features"], mask, batch["neighbours"], batch["lag_ps"])
    jump = -(torch.gather(log_p, -1, basins[..., None])[..., 0] * present).sum() / present.sum()
    y0 = wrap_angle(now + model.base_scale * torch.randn(later.shape, generator=generator))
    target = wrap_angle(later - y0)
    s = torch.rand(later.shape[0], generator=generator)
    y = wrap_angle(y0 + s[:, None, None] * target)
    v = model.velocity(y, now, basins, batch["features"], mask, batch["neighbours"], s, batch["lag_ps"])
    return jump, (((v - target) ** 2) * mask).sum() / mask.sum()


class TorsionTitoObjective(loop.Objective):
    """Flow matching of a :class:`TorsionTito` on the torsions of ``config.data``."""

    def __init__(self, config: TorsionTitoTrainConfig, checkpoint: Optional[Dict] = None) -> None:
        self.config = config
        torch.manual_seed(config.seed)
        if checkpoint is None:
            self.kernel = TorsionTito(list(config.elements), hidden=config.hidden, layers=config.layers,
                                      min_lag_ps=config.min_lag_ps, max_lag_ps=config.max_lag_ps,
                                      num_steps=config.ode_steps, lag_ps=config.lag_ps,
                                      base_scale_rad=config.base_scale_rad, jump_hidden=config.jump_hidden)
        else:
            self.kernel = TorsionTito.from_config(checkpoint["flow_config"])
            self.kernel.load_state_dict(checkpoint["flow_state"])
        paths = shard_paths(config.data)
        self.data = TorsionData(paths, self.kernel, progress=not config.no_progress)
        # Other peptides to validate on (transfer), or else the held-out end of every trajectory.
        self.val_data = TorsionData(shard_paths(config.val_data), self.kernel) if config.val_data else None
        self.info = {
            "architecture": TorsionTito.kind, "lag_ps": self.kernel.lag_ps,
            "temperature_K": common_value(self.data.metadata, "temperature_K"),
            "sequences": sorted({str(m.get("sequence")) for m in self.data.metadata}), "seed": config.seed,
            "command": config.command, "data": [str(d) for d in config.data], "trajectories": len(paths),
            "val_data": [str(d) for d in config.val_data],
            "frame_interval_ps": self.data.frame_ps, "lag_range_ps": [config.min_lag_ps, config.max_lag_ps],
            "simulated_ns": float(self.data.lengths.sum() - len(paths)) * self.data.frame_ps / 1000.0,
        }
        self.generator = torch.Generator().manual_seed(config.seed)

    def phases(self) -> List[loop.Phase]:
        return [loop.Phase("flow matching", self.config.epochs, self.config.lr, "best")]

    def steps_per_epoch(self) -> int:
        return self.config.steps_per_epoch

    def batches(self, epoch: int, skip: int) -> Iterator[Dict[str, Tensor]]:
        # Drawn lazily from the objective's generator, whose state a checkpoint restores.
        c = self.config
        held_out = 0.0 if self.val_data is not None else c.val_fraction
        for _ in range(c.steps_per_epoch - skip):
            yield self.data.batch(c.batch_size, c.min_lag_ps, c.max_lag_ps, held_out, False, self.generator,
                                  c.time_reversal)

    def loss(self, batch: Dict[str, Tensor], phase: loop.Phase) -> Tuple[Tensor, Dict[str, float]]:
        jump, flow = losses(self.kernel, batch, self.generator)
        return jump + flow, {"jump": jump.item(), "flow": flow.item()}

    def validate(self, phase: loop.Phase) -> Dict[str, float]:
        # A fixed seed, so that epochs are compared on the same pairs and noise.
        generator = torch.Generator().manual_seed(12345)
        c = self.config
        data, fraction, held_out = (self.data, c.val_fraction, True) if self.val_data is None else \
            (self.val_data, 0.0, False)
        with torch.no_grad():
            values = np.array([[float(v) for v in losses(self.kernel, data.batch(
                c.batch_size, c.min_lag_ps, c.max_lag_ps, fraction, held_out, generator), generator)]
                for _ in range(8)]).mean(0)
        return {"val_loss": float(values.sum()), "val_jump": float(values[0]), "val_flow": float(values[1])}

    def random_state(self) -> Dict:
        return {"generator": self.generator.get_state()}

    def restore_random_state(self, checkpoint: Dict) -> None:
        self.generator.set_state(checkpoint["generator"])


def train_torsion_tito(config: TorsionTitoTrainConfig) -> Path:
    """Run torsion TITO training as ``config`` says; returns the best checkpoint.

    Raises
    ------
    InputError
        For missing data, or a run directory that does not match ``config.resume``.
    """
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    if not 0 < config.min_lag_ps <= config.lag_ps <= config.max_lag_ps:
        raise InputError(f"need 0 < min-lag-ps <= lag-ps <= max-lag-ps, got {config.min_lag_ps}, {config.lag_ps}, "
                         f"{config.max_lag_ps}")
    return loop.run(lambda checkpoint: TorsionTitoObjective(config, checkpoint), config.out, resume=config.resume,
                    progress=not config.no_progress)
