"""The training objective of each flow architecture, looked up by the checkpoint's ``architecture``.

An objective holds what the training loop (``loop.py``) must not know about an architecture: the
move scales it starts from, how batches are grouped and augmented, its negative log likelihood and
its acceptance loss. Adding a trainable flow adds one class here and one line in :data:`OBJECTIVES`.
"""
from typing import Dict, Optional, Tuple, Type

import torch
from torch import Tensor

from ..errors import InputError
from ..proposals.flow import TimewarpFlow
from ..proposals.internal_flow import InternalTimewarpFlow
from ..proposals.kernel import ProposalKernel
from .dataset import PairSet, rotate_pairs
from .internal import (internal_acceptance, internal_acceptance_loss, internal_log_scales, internal_nll_loss,
                       molecule_groups, molecule_zmatrices)
from .losses import ReducedEnergy, acceptance_loss, log_acceptance, nll_loss

__all__ = ["Objective", "CartesianObjective", "InternalObjective", "OBJECTIVES", "objective_for",
           "element_log_scales"]


class Objective:
    """Training of one flow on the pairs ``train_pairs`` (whose molecules every later batch uses).

    Parameters
    ----------
    flow : ProposalKernel
        The flow being trained.
    train_pairs : PairSet
        The training pairs.
    """

    def __init__(self, flow: ProposalKernel, train_pairs: PairSet) -> None:
        self.flow = flow
        self.train_pairs = train_pairs

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

    def acceptance_loss(self, batch: Dict[str, Tensor], energies: Dict[int, ReducedEnergy],
                        jump_weight: float) -> Tuple[Tensor, Tensor]:
        """The acceptance loss of one proposal per x(t) and the mean acceptance probability."""
        raise NotImplementedError

    def validation_acceptance(self, pairs: PairSet, energies: Dict[int, ReducedEnergy], batch_size: int,
                              device: torch.device, seed: int) -> float:
        """Mean MH acceptance probability of one proposal from validation x(t)."""
        raise NotImplementedError


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


class CartesianObjective(Objective):
    """:class:`~..proposals.flow.TimewarpFlow`: padded mixed batches, random rotations."""

    def initialise(self) -> None:
        with torch.no_grad():
            self.flow.element_log_scale.copy_(element_log_scales(self.train_pairs, len(self.flow.element_symbols)))

    def augment(self, batch: Dict[str, Tensor], rotations: Tensor) -> Dict[str, Tensor]:
        batch["x_t"], batch["x_tau"] = rotate_pairs(batch["x_t"], batch["x_tau"], batch["mask"], rotations)
        return batch

    def nll(self, batch: Dict[str, Tensor]) -> Tensor:
        return nll_loss(self.flow, batch)

    def acceptance_loss(self, batch, energies, jump_weight):
        return acceptance_loss(self.flow, batch, energies, jump_weight=jump_weight)

    def validation_acceptance(self, pairs, energies, batch_size, device, seed, limit: int = 512) -> float:
        """Mean acceptance of one proposal from each of ``limit`` validation x(t), spread evenly
        over the validation set (and so over its shards)."""
        if len(pairs) == 0:
            return float("nan")
        subset = torch.linspace(0, len(pairs) - 1, min(limit, len(pairs))).long().unique()
        total = 0.0
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for index in subset.split(batch_size):
                total += torch.exp(log_acceptance(self.flow, pairs.batch(index, device), energies)[0]).sum().item()
        return total / len(subset)


class InternalObjective(Objective):
    """:class:`~..proposals.internal_flow.InternalTimewarpFlow`: batches of one peptide each (its
    shards share a Z-matrix, so the flow runs once per batch without padding); the flow is
    invariant under rotations, so batches are not rotated."""

    ACCEPTANCE_KERNELS = {"full": (1.0, 0.0, 0.0), "torsion": (0.0, 1.0, 0.0)}
    """Kernel weights (full, torsion, local) of the proposals in the acceptance phase."""

    def __init__(self, flow: ProposalKernel, train_pairs: PairSet) -> None:
        super().__init__(flow, train_pairs)
        self.zmatrices = molecule_zmatrices(flow, train_pairs)
        self.groups = molecule_groups(train_pairs, self.zmatrices)

    def initialise(self) -> None:
        with torch.no_grad():
            self.flow.log_scale_table.copy_(internal_log_scales(self.flow, self.train_pairs, self.zmatrices))

    def row_groups(self) -> Optional[Tensor]:
        return self.groups[self.train_pairs.molecule]

    def nll(self, batch: Dict[str, Tensor]) -> Tensor:
        return internal_nll_loss(self.flow, batch, self.zmatrices, self.groups)

    def use_kernel(self, name: str) -> None:
        if name not in self.ACCEPTANCE_KERNELS:
            raise InputError(f"unknown acceptance kernel '{name}'; known: {sorted(self.ACCEPTANCE_KERNELS)}")
        self.flow.set_kernels(*self.ACCEPTANCE_KERNELS[name], local_step=self.flow.local_step)

    def acceptance_loss(self, batch, energies, jump_weight):
        return internal_acceptance_loss(self.flow, batch, energies, jump_weight=jump_weight)

    def validation_acceptance(self, pairs, energies, batch_size, device, seed) -> float:
        return internal_acceptance(self.flow, pairs, energies)


OBJECTIVES: Dict[str, Type[Objective]] = {
    TimewarpFlow.kind: CartesianObjective,
    InternalTimewarpFlow.kind: InternalObjective,
}
"""Objective of each trainable ``architecture``."""


def objective_for(flow: ProposalKernel, train_pairs: PairSet) -> Objective:
    """The objective of ``flow``'s architecture on ``train_pairs``.

    Raises
    ------
    InputError
        If no objective trains that architecture.
    """
    if flow.kind not in OBJECTIVES:
        raise InputError(f"no pair-likelihood training for '{flow.kind}' kernels; trainable: {sorted(OBJECTIVES)}")
    return OBJECTIVES[flow.kind](flow, train_pairs)
