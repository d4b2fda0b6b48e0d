"""A random-scan mixture of proposal kernels.

Each proposal of a batch independently comes from kernel k with probability ``weights[k]``: one
uniform u per proposal, kernel k where u falls in [w_0 + ... + w_{k-1}, w_0 + ... + w_k). Every
kernel satisfies detailed balance on its own and the choice does not depend on the state, so the
mixture does too. A kernel that cannot move the molecule (a backbone kernel on a molecule without
a backbone; this depends on the bond graph only, which proposals keep) gets weight 0 and the
others are renormalised; when they all have weight 0 they share its weight equally. Each kernel
is called once per batch, in list order, for its own rows only: a kernel without rows costs
nothing.
"""
import dataclasses
from typing import Any, Dict, List, Tuple

import torch
from torch import Tensor, nn

from .kernel import KernelConfig, ProposalKernel

__all__ = ["MixtureConfig", "ProposalMixture"]


@dataclasses.dataclass
class MixtureConfig(KernelConfig):
    """Settings of a :class:`ProposalMixture`: each kernel's config (a dict with its ``kind``) and
    the weights."""

    kernels: List[Dict[str, Any]]
    weights: List[float]


class ProposalMixture(ProposalKernel):
    """Proposals from several kernels, chosen at random per proposal with fixed weights.

    Parameters
    ----------
    kernels : list of ProposalKernel
        Kernels with the same elements and an exact density.
    weights : list of float
        Non-negative probabilities of the kernels (normalised here), one per kernel.
    """

    kind = "mixture"
    config_class = MixtureConfig
    float32_networks = False  # each component says for itself (see leaves)

    def __init__(self, kernels: List[ProposalKernel], weights: List[float]) -> None:
        super().__init__()
        if len(kernels) == 0 or len(kernels) != len(weights):
            raise ValueError(f"need one weight per kernel, got {len(kernels)} kernels and {len(weights)} weights")
        elements = list(kernels[0].element_symbols)
        for kernel in kernels:
            if list(kernel.element_symbols) != elements:
                raise ValueError(f"the kernels' elements differ: {elements} and {kernel.element_symbols}")
            if not kernel.exact_density:
                raise ValueError(f"a {kernel.kind} kernel has no exact density and cannot be mixed")
        if any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.element_symbols = elements
        self.kernels = nn.ModuleList(kernels)
        total = float(sum(weights))
        self.weights: List[float] = [float(w) / total for w in weights]

    def to_config(self) -> MixtureConfig:
        """The weights and every component's config."""
        return MixtureConfig([dict(k.to_config().to_dict(), kind=k.kind) for k in self.kernels], list(self.weights))

    @classmethod
    def from_config(cls, config: Any) -> "ProposalMixture":
        """An untrained mixture with the settings ``config`` (a :class:`MixtureConfig` or its dict)."""
        from .registry import kernel_from_config  # the registry lists this class

        c = cls.parse_config(config)
        return cls([kernel_from_config(k) for k in c.kernels], c.weights)

    def leaves(self) -> List[ProposalKernel]:
        """The component kernels."""
        return list(self.kernels)

    def moves_geometry(self) -> bool:
        """Whether a component with a positive weight changes bond lengths or angles."""
        return any(w > 0 and k.moves_geometry() for k, w in zip(self.kernels, self.weights))

    def effective_weights(self, positions: Tensor, atom_types: Tensor) -> Tensor:
        """The kernels' probabilities (K,) float64 for this molecule (see the module docstring)."""
        usable: List[bool] = []
        for kernel in self.kernels:
            usable.append(kernel.available(positions, atom_types))
        mask = torch.tensor(usable, dtype=torch.bool)
        if not bool(mask.any()):
            raise ValueError("no kernel of the mixture can move this molecule")
        weights = torch.where(mask, torch.tensor(self.weights, dtype=torch.float64),
                              torch.zeros(len(self.weights), dtype=torch.float64))
        if float(weights.sum()) <= 0.0:
            weights = mask.to(torch.float64)
        return weights / weights.sum()

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposals (B, N, 3) float64 in the frame of ``positions`` and their log MH ratios (B,)."""
        weights = self.effective_weights(positions, atom_types)
        bounds = torch.cumsum(weights, 0)[:-1]
        choice = (torch.rand(num_proposals, dtype=torch.float64)[:, None] >= bounds[None, :]).sum(1)
        proposals = positions.to(torch.float64)[None].repeat(num_proposals, 1, 1)
        log_ratio = torch.zeros(num_proposals, dtype=torch.float64)
        for k, kernel in enumerate(self.kernels):
            rows = torch.nonzero(choice == k).flatten()
            if rows.numel() == num_proposals:  # one kernel for the whole batch: no assembly
                y, ratio = kernel.propose(positions, atom_types, num_proposals)
                return y.to(torch.float64), ratio
            if rows.numel() > 0:
                y, ratio = kernel.propose(positions, atom_types, rows.numel())
                proposals = proposals.index_copy(0, rows, y.to(torch.float64))
                log_ratio = log_ratio.index_copy(0, rows, ratio)
        return proposals, log_ratio
