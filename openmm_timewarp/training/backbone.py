"""Fit the Ramachandran density of the backbone pivot kernel to the frames of pair shards.

Command line: ``openmm-timewarp train-backbone --data DIR [DIR ...] --out RUN_DIR/backbone.pt``
(``cli/train.py``).

Maximum likelihood of every residue's (phi, psi) in every frame (x(t) and x(t+tau)) of the
training split; the validation split of ``load_pairs`` (the last pairs of each trajectory) gives
the validation NLL. The checkpoint (``proposals.export.save_checkpoint``) holds the kernel's config
and state and the provenance; ``openmm-timewarp export FLOW.pt OUT.pt --backbone RUN_DIR/backbone.pt``
mixes it with a flow. The data come from MD started in every basin, so the density over-weights rare
basins relative to Boltzmann: harmless in a proposal (the MH ratio corrects it), and it makes
the rare basins cheap to reach.
"""
import dataclasses
import io
from pathlib import Path
from typing import Dict, List, Tuple

import torch
from openmm import app
from torch import Tensor
from tqdm import tqdm

from ..data.generate import START_CENTERS
from ..errors import InputError
from ..proposals.backbone import BackboneConfig, BackboneProposal
from ..proposals.export import save_checkpoint
from ..proposals.residues import backbone_angles
from ..systems import chiral_centers, inverted_centers
from .dataset import PairSet, load_pairs


def residue_samples(kernel: BackboneProposal, pairs: PairSet, rare_start_weight: float = 1.0) -> Dict[str, Tensor]:
    """Features (S, F), phi and psi (S,), phi-free flags (S,) and weights (S,) of every residue in every frame.

    A residue whose trajectory started it in a phi > 0 basin (the data generator's restrained
    starts, ``start`` in the shard metadata) weighs ``rare_start_weight``, the others 1: three of the
    seven start basins have phi > 0, which short trajectories over-represent against the
    equilibrium (about 2% for alanine), and a proposal that favours them is rejected more often.
    """
    features: List[Tensor] = []
    phis: List[Tensor] = []
    psis: List[Tensor] = []
    free: List[Tensor] = []
    weights: List[Tensor] = []
    for molecule_id in torch.unique(pairs.molecule).tolist():
        rows = (pairs.molecule == molecule_id).nonzero().squeeze(1)
        atoms = int(pairs.mask[rows[0]].sum())
        types = pairs.atom_types[rows[0], :atoms]
        frames = torch.cat([pairs.x_t[rows, :atoms], pairs.x_tau[rows, :atoms]]).double()
        frames = frames[~d_frames(frames, pairs.molecules[molecule_id])]
        if not len(frames):
            continue
        backbone, sides, feats = kernel.residues(frames[0], types)
        phi, psi = backbone_angles(frames, backbone)
        starts = pairs.molecules[molecule_id].get("start", [])
        for r in range(backbone.shape[0]):
            features.append(feats[r].expand(len(frames), -1))
            phis.append(phi[:, r])
            psis.append(psi[:, r])
            free.append(torch.full((len(frames),), bool(sides[r, 0].any())))
            rare = r < len(starts) and START_CENTERS[starts[r]["basin"]][0] > 0
            weights.append(torch.full((len(frames),), rare_start_weight if rare else 1.0, dtype=torch.float64))
    if not features:
        raise InputError("no residue with a rotatable backbone in these pairs")
    return {"features": torch.cat(features), "phi": torch.cat(phis), "psi": torch.cat(psis), "free": torch.cat(free),
            "weight": torch.cat(weights)}


def d_frames(frames: Tensor, metadata: Dict) -> Tensor:
    """Frames in which a C-alpha is D, by the topology the shard records (``topology_pdb``): another
    molecule, which data made before the generator kept chirality in its restrained starts contain."""
    if "topology_pdb" not in metadata:
        return torch.zeros(len(frames), dtype=torch.bool)
    topology = app.PDBFile(io.StringIO(metadata["topology_pdb"])).topology
    inverted = inverted_centers(frames.numpy(), chiral_centers(topology))
    return torch.from_numpy(inverted.any(axis=-1))


def mean_nll(kernel: BackboneProposal, samples: Dict[str, Tensor], weighted: bool = True) -> Tensor:
    """Mean negative log density of the samples (weighted by their ``weight`` unless ``weighted`` is False)."""
    params = kernel.density.mixture(samples["features"])
    nll = -kernel.density.log_prob(params, samples["phi"], samples["psi"], samples["free"])
    if not weighted:
        return nll.mean()
    return (nll * samples["weight"]).sum() / samples["weight"].sum()


def fit(kernel: BackboneProposal, train: Dict[str, Tensor], val: Dict[str, Tensor], steps: int, batch_size: int,
        lr: float, seed: int) -> Tuple[float, float]:
    """Adam on minibatches of ``train``; returns the final train and validation NLL per residue."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(kernel.density.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    count = train["phi"].shape[0]
    bar = tqdm(range(steps), desc="backbone density", dynamic_ncols=True)
    for step in bar:
        # Minibatches drawn by weight, so each one is an unweighted sample of the weighted data.
        index = torch.multinomial(train["weight"], min(batch_size, count), replacement=True, generator=generator)
        loss = mean_nll(kernel, {k: v[index] for k, v in train.items()}, weighted=False)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            bar.set_postfix(nll=f"{loss.item():.3f}")
    with torch.no_grad():
        return float(mean_nll(kernel, train)), float(mean_nll(kernel, val)) if val["phi"].numel() else float("nan")


@dataclasses.dataclass
class BackboneTrainConfig:
    """What a density fit does; the fields are the options of ``openmm-timewarp train-backbone``."""

    data: List[Path]
    out: Path
    elements: List[str] = dataclasses.field(default_factory=lambda: ["H", "C", "N", "O", "S"])
    components: int = 16
    hidden: int = 64
    floor: float = 0.02
    steps: int = 3000
    batch_size: int = 1024
    lr: float = 3e-3
    val_fraction: float = 0.1
    rare_start_weight: float = 1.0
    seed: int = 0
    overwrite: bool = False
    command: str = ""


def train_backbone(config: BackboneTrainConfig) -> Dict:
    """Fit a backbone kernel's density as ``config`` says and write its checkpoint to ``config.out``;
    returns the provenance recorded in it.

    Raises
    ------
    InputError
        If ``config.out`` exists and ``config.overwrite`` is False.
    """
    if config.out.exists() and not config.overwrite:
        raise InputError(f"{config.out} exists; pass --overwrite to replace it")
    torch.manual_seed(config.seed)
    splits = load_pairs(config.data, config.elements, config.val_fraction, align=False)
    kernel = BackboneProposal.from_config(BackboneConfig(list(config.elements), num_components=config.components,
                                                         hidden=config.hidden, floor=config.floor))
    train = residue_samples(kernel, splits["train"], config.rare_start_weight)
    val = (residue_samples(kernel, splits["val"], config.rare_start_weight) if len(splits["val"])
           else {k: v[:0] for k, v in train.items()})
    train_nll, val_nll = fit(kernel, train, val, config.steps, config.batch_size, config.lr, config.seed)
    info = {
        "command": config.command,
        "data": [str(d) for d in config.data],
        "seed": config.seed,
        "rare_start_weight": config.rare_start_weight,
        "sequences": sorted({str(m.get("sequence", m["shard"])) for m in splits["train"].molecules}),
        "train_residue_frames": int(train["phi"].shape[0]),
        "val_residue_frames": int(val["phi"].shape[0]),
        "train_nll": train_nll,
        "val_nll": val_nll,
    }
    config.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(config.out, kernel, info)
    return info
