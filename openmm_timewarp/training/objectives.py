"""The flows trained on pairs (x(t), x(t + tau)): maximum likelihood, then acceptance fine-tuning.

:class:`PairObjective` holds what every such flow shares (the pair shards, shuffling, validation
and the two phases); its subclass per architecture holds what differs (move scales it starts from,
batch grouping and augmentation, negative log likelihood, acceptance loss), looked up by the
checkpoint's ``architecture`` in :data:`OBJECTIVES`. Adding a trainable kernel adds one subclass and
one line there. :func:`train` runs one through the loop (``loop.py``).

Several data folders (one per peptide, say) train one transferable model: the flow sees only
elements and geometry, so molecules of any size share it. Acceptance fine-tuning evaluates
energies with OpenMM: each shard's System comes from the XML file its metadata names
(``system_xml``, relative to its shard's folder) or else is rebuilt from the ``topology_pdb`` in
its metadata with ``openmm_timewarp.systems.create_system``.
"""
import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Type

import torch
from torch import Tensor

from ..errors import InputError
from ..proposals.flow import TimewarpFlow
from ..proposals.internal_flow import InternalTimewarpFlow
from ..proposals.kernel import ProposalKernel
from ..proposals.registry import kernel_class
from . import loop
from .dataset import PairSet, common_value, load_pairs, random_rotations, reversed_pairs, rotate_pairs
from .energies import molecule_energies
from .internal import (internal_acceptance, internal_acceptance_loss, internal_log_scales, internal_nll_loss,
                       molecule_groups, molecule_zmatrices)
from .losses import acceptance_loss, log_acceptance, nll_loss

__all__ = ["TrainConfig", "PairObjective", "CartesianObjective", "InternalObjective", "OBJECTIVES", "train",
           "element_log_scales", "validation_nll"]


@dataclasses.dataclass
class TrainConfig:
    """What a training run does; the fields are the options of ``openmm-timewarp train``.

    ``hidden``, ``couplings``, ``blocks``, ``embed_dim`` and ``length_scales`` size a new flow
    (None: the architecture's default); a resumed run keeps the size and architecture it has.
    """

    data: List[Path]
    out: Path
    epochs: int = 20
    acceptance_epochs: int = 0
    seed: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    acceptance_lr: float = 1e-4
    nll_weight: float = 1.0
    jump_weight: float = 0.0
    acceptance_kernel: str = "torsion"
    val_fraction: float = 0.1
    align: bool = True
    checkpoint_every: int = 500
    resume: bool = False
    device: str = "cpu"
    threads: int = 0
    architecture: str = "internal"
    time_reversal: bool = True
    elements: List[str] = dataclasses.field(default_factory=lambda: ["H", "C", "N", "O", "S"])
    hidden: Optional[int] = None
    couplings: Optional[int] = None
    blocks: Optional[int] = None
    embed_dim: Optional[int] = None
    length_scales: Optional[List[float]] = None
    command: str = ""


def validation_nll(loss_fn: Callable[[Dict[str, Tensor]], Tensor], pairs: PairSet, batch_size: int,
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


def element_log_scales(pairs: PairSet, num_elements: int) -> Tensor:
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


class PairObjective(loop.Objective):
    """Training of a flow on the pair shards of ``config.data`` (the checkpoint's flow when resuming).

    Parameters
    ----------
    config : TrainConfig
        The run's settings.
    flow : ProposalKernel
        The flow (fresh, or rebuilt from the checkpoint being resumed).
    splits : dict
        ``train`` and ``val`` pairs of :func:`~.dataset.load_pairs`.
    """

    validation_key = "val_nll"

    def __init__(self, config: TrainConfig, flow: ProposalKernel, splits: Dict[str, PairSet]) -> None:
        self.config, self.kernel, self.device = config, flow, torch.device(config.device)
        self.molecules = splits["train"].molecules
        self.train_pairs = reversed_pairs(splits["train"]) if config.time_reversal else splits["train"]
        self.val_pairs = splits["val"]
        self.info = _run_info(config, self.molecules, self.train_pairs, self.val_pairs, flow.kind)
        have_systems = all("system_xml" in m or "topology_pdb" in m for m in self.molecules)
        if config.acceptance_epochs > 0 and not have_systems:
            raise InputError("acceptance fine-tuning needs energies: every shard must carry system_xml or topology_pdb")
        # Energies serve the acceptance phase and, where the shards name their Systems, a validation
        # acceptance rate after every epoch.
        self.energies = molecule_energies(self.molecules, self.info["temperature_K"]) if have_systems else {}

    def initialise(self) -> None:
        """Set a fresh flow's data-dependent move scales from the training pairs."""

    def row_groups(self) -> Optional[Tensor]:
        """Per training pair, the group whose pairs may share a batch (None: any pairs)."""
        return None

    def augment(self, batch: Dict[str, Tensor], rotations: Tensor) -> Dict[str, Tensor]:
        """The batch the loss sees, given random rotations (B, 3, 3) for it."""
        return batch

    def nll(self, batch: Dict[str, Tensor]) -> Tensor:
        """Mean negative log likelihood per atom of the batch's x(t + tau) given x(t)."""
        raise NotImplementedError

    def use_kernel(self, name: str) -> None:
        """Propose with the kernel ``name`` in the acceptance phase (for flows that have several)."""

    def acceptance_loss(self, batch: Dict[str, Tensor], energies: Dict, jump_weight: float) -> Tuple[Tensor, Tensor]:
        """The acceptance loss of one proposal per x(t) and the mean acceptance probability."""
        raise NotImplementedError

    def validation_acceptance(self) -> float:
        """Mean MH acceptance probability of one proposal from validation x(t)."""
        raise NotImplementedError

    def phases(self) -> List[loop.Phase]:
        c = self.config
        phases = [loop.Phase("likelihood", c.epochs, c.lr, "best")]
        return phases + ([loop.Phase("acceptance", c.acceptance_epochs, c.acceptance_lr, "finetuned")]
                         if c.acceptance_epochs > 0 else [])

    def steps_per_epoch(self) -> int:
        steps = len(self.train_pairs.batch_indices(self.config.batch_size, torch.Generator().manual_seed(0),
                                                   groups=self.row_groups()))
        if steps == 0:
            raise InputError(f"{len(self.train_pairs)} training pairs do not fill one batch of {self.config.batch_size}")
        return steps

    def begin_phase(self, phase: loop.Phase) -> None:
        if phase.name == "acceptance":  # also the kernel whose acceptance is validated after the epoch
            self.use_kernel(self.config.acceptance_kernel)

    def batches(self, epoch: int, skip: int) -> Iterator[Dict[str, Tensor]]:
        # The shuffle and augmentation of an epoch depend only on (seed, epoch): resume skips exactly.
        size, seed = self.config.batch_size, self.config.seed
        order = torch.Generator().manual_seed(seed * 100003 + epoch)
        rotations = random_rotations(self.steps_per_epoch() * size, torch.Generator().manual_seed(seed * 100019 + epoch))
        step = skip
        for index in self.train_pairs.batch_indices(size, order, skip=skip, groups=self.row_groups()):
            yield self.augment(self.train_pairs.batch(index, self.device), rotations[step * size:(step + 1) * size])
            step += 1

    def loss(self, batch: Dict[str, Tensor], phase: loop.Phase) -> Tuple[Tensor, Dict[str, float]]:
        if phase.name != "acceptance":
            loss = self.nll(batch)
            return loss, {"nll": loss.item()}
        loss_acc, accept = self.acceptance_loss(batch, self.energies, self.config.jump_weight)
        loss_nll = self.nll(batch)
        numbers = {"acc_loss": loss_acc.item(), "p_acc": accept.item(), "nll": loss_nll.item()}
        return loss_acc + self.config.nll_weight * loss_nll, numbers

    def validate(self, phase: loop.Phase) -> Dict[str, float]:
        record = {"val_nll": validation_nll(self.nll, self.val_pairs, 4 * self.config.batch_size, self.device,
                                            self.config.seed)}
        if self.energies:
            record["val_p_acc"] = self.validation_acceptance()
        return record


def _run_info(config: TrainConfig, molecules: List[Dict], train_pairs: PairSet, val_pairs: PairSet,
              architecture: str) -> Dict[str, Any]:
    """The provenance recorded in every checkpoint (and, through export, in the model file)."""
    return {
        "lag_ps": common_value(molecules, "lag_ps"),
        "temperature_K": common_value(molecules, "temperature_K"),
        "sequences": sorted({str(m.get("sequence", m["shard"])) for m in molecules}),
        "seed": config.seed,
        "command": config.command,
        "data": [str(d) for d in config.data],
        "train_pairs": len(train_pairs),
        "val_pairs": len(val_pairs),
        "aligned_pairs": config.align,
        "architecture": architecture,
        "time_reversal": config.time_reversal,
        "epochs": config.epochs,
        "acceptance_epochs": config.acceptance_epochs,
    }


class CartesianObjective(PairObjective):
    """:class:`~..proposals.flow.TimewarpFlow`: padded mixed batches, random rotations."""

    def initialise(self) -> None:
        with torch.no_grad():
            self.kernel.element_log_scale.copy_(element_log_scales(self.train_pairs, len(self.kernel.element_symbols)))

    def augment(self, batch: Dict[str, Tensor], rotations: Tensor) -> Dict[str, Tensor]:
        batch["x_t"], batch["x_tau"] = rotate_pairs(batch["x_t"], batch["x_tau"], batch["mask"], rotations)
        return batch

    def nll(self, batch: Dict[str, Tensor]) -> Tensor:
        return nll_loss(self.kernel, batch)

    def acceptance_loss(self, batch, energies, jump_weight):
        return acceptance_loss(self.kernel, batch, energies, jump_weight=jump_weight)

    def validation_acceptance(self, limit: int = 512) -> float:
        """Mean acceptance of one proposal from each of ``limit`` validation x(t), spread evenly
        over the validation set (and so over its shards)."""
        pairs, device, batch_size = self.val_pairs, self.device, 4 * self.config.batch_size
        if len(pairs) == 0:
            return float("nan")
        subset = torch.linspace(0, len(pairs) - 1, min(limit, len(pairs))).long().unique()
        total = 0.0
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(self.config.seed)
            for index in subset.split(batch_size):
                batch = pairs.batch(index, device)
                total += torch.exp(log_acceptance(self.kernel, batch, self.energies)[0]).sum().item()
        return total / len(subset)


class InternalObjective(PairObjective):
    """:class:`~..proposals.internal_flow.InternalTimewarpFlow`: batches of one peptide each (its
    shards share a Z-matrix, so the flow runs once per batch without padding); the flow is
    invariant under rotations, so batches are not rotated."""

    ACCEPTANCE_KERNELS = {"full": (1.0, 0.0, 0.0), "torsion": (0.0, 1.0, 0.0)}
    """Kernel weights (full, torsion, local) of the proposals in the acceptance phase."""

    def __init__(self, config: TrainConfig, flow: ProposalKernel, splits: Dict[str, PairSet]) -> None:
        super().__init__(config, flow, splits)
        self.zmatrices = molecule_zmatrices(flow, self.train_pairs)
        self.groups = molecule_groups(self.train_pairs, self.zmatrices)

    def initialise(self) -> None:
        with torch.no_grad():
            self.kernel.log_scale_table.copy_(internal_log_scales(self.kernel, self.train_pairs, self.zmatrices))

    def row_groups(self) -> Optional[Tensor]:
        return self.groups[self.train_pairs.molecule]

    def nll(self, batch: Dict[str, Tensor]) -> Tensor:
        return internal_nll_loss(self.kernel, batch, self.zmatrices, self.groups)

    def use_kernel(self, name: str) -> None:
        if name not in self.ACCEPTANCE_KERNELS:
            raise InputError(f"unknown acceptance kernel '{name}'; known: {sorted(self.ACCEPTANCE_KERNELS)}")
        self.kernel.set_kernels(*self.ACCEPTANCE_KERNELS[name], local_step=self.kernel.local_step)

    def acceptance_loss(self, batch, energies, jump_weight):
        return internal_acceptance_loss(self.kernel, batch, energies, jump_weight=jump_weight)

    def validation_acceptance(self) -> float:
        return internal_acceptance(self.kernel, self.val_pairs, self.energies)


OBJECTIVES: Dict[str, Type[PairObjective]] = {
    TimewarpFlow.kind: CartesianObjective,
    InternalTimewarpFlow.kind: InternalObjective,
}
"""Objective of each ``architecture`` trained on pairs."""


def _objective(config: TrainConfig, checkpoint: Optional[Dict[str, Any]]) -> PairObjective:
    """The objective of a new run, or of the run ``checkpoint`` holds (whose architecture and size it keeps)."""
    elements = config.elements if checkpoint is None else checkpoint["flow_config"]["elements"]
    architecture = config.architecture if checkpoint is None else checkpoint.get("architecture", "cartesian")
    if architecture not in OBJECTIVES:
        raise InputError(f"cannot train architecture '{architecture}' on pairs; trainable: {sorted(OBJECTIVES)}")
    splits = load_pairs(config.data, elements, config.val_fraction, config.align)
    torch.manual_seed(config.seed)
    if checkpoint is None:
        sizes = dict(hidden=config.hidden, num_couplings=config.couplings, num_blocks=config.blocks,
                     embed_dim=config.embed_dim, length_scales=config.length_scales)
        flow = kernel_class(architecture)(list(elements), **{k: v for k, v in sizes.items() if v is not None})
    else:
        flow = kernel_class(architecture).from_config(checkpoint["flow_config"])
        flow.load_state_dict(checkpoint["flow_state"])
    objective = OBJECTIVES[architecture](config, flow, splits)
    if checkpoint is None:
        objective.initialise()
    flow.to(objective.device)
    return objective


def train(config: TrainConfig) -> Path:
    """Train a flow on pairs as ``config`` says; returns the final checkpoint (fine-tuned, or best).

    Raises
    ------
    InputError
        If the data cannot train the model (too few pairs, shards that disagree on lag or
        temperature, no energies for acceptance fine-tuning) or the run directory does not match
        ``config.resume``.
    """
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    return loop.run(lambda checkpoint: _objective(config, checkpoint), config.out, resume=config.resume,
                    checkpoint_every=config.checkpoint_every)
