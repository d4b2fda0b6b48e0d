"""Timewarp's augmented conditional RealNVP, p(y, w | x): a transferable proposal for MH.

State: positions as the centre-of-mass-free displacement d = P(y - x) in V (zero atom mean, see
``coupling``) and auxiliaries w in R^{3n}. Base: a standard normal on V times a standard normal on
R^{3n}. Generative direction: ``num_couplings`` pairs of (position coupling conditioned on the
auxiliaries, auxiliary coupling conditioned on the positions), all conditioned on x(t) through
element embeddings, centred coordinates, neighbour offsets and distance-kernel attention, then a
per-element scale of the displacement. Only element embeddings are learned per atom, so the model transfers between
molecules; padded batches of different sizes are handled with a mask.

The proposal does not depend on the current auxiliary v (v is fresh noise every step), so the MH
ratio of DESIGN.md section 2 reads
    log N(w) + log p(x, v | y) - log N(v) - log p(y, w | x),
with both densities exact on V x R^{3n}.
"""
import dataclasses
import json
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .attention import kernel_attention_weights, length_scale_tensor
from .coupling import CouplingPair, centred_affine, centred_affine_inverse, masked_mean
from .kernel import KernelConfig, ProposalKernel


@dataclasses.dataclass
class FlowConfig(KernelConfig):
    """Settings of a :class:`TimewarpFlow` (its constructor arguments)."""

    elements: List[str]
    hidden: int = 32
    num_couplings: int = 6
    num_blocks: int = 1
    embed_dim: int = 16
    length_scales: List[float] = dataclasses.field(default_factory=lambda: [0.1, 0.2, 0.5, 1.2])
    scale_limit: float = 2.0


class TimewarpFlow(ProposalKernel):
    """Conditional augmented normalising flow over displacements.

    Parameters
    ----------
    elements : list of str
        Element symbols; ``atom_types`` index into this list.
    hidden : int
        Feature width of the atom transformers.
    num_couplings : int
        Number of (position, auxiliary) coupling pairs.
    num_blocks : int
        Attention blocks per atom transformer.
    embed_dim : int
        Element embedding width.
    length_scales : list of float
        Kernel length scales in nm, one attention head each.
    scale_limit : float
        Bound on each coupling's log-scale.
    """

    def __init__(
        self,
        elements: List[str],
        hidden: int = 32,
        num_couplings: int = 6,
        num_blocks: int = 1,
        embed_dim: int = 16,
        length_scales: Optional[List[float]] = None,
        scale_limit: float = 2.0,
    ) -> None:
        super().__init__()
        length_scales = [0.1, 0.2, 0.5, 1.2] if length_scales is None else list(length_scales)
        self.config_json = json.dumps(dict(
            elements=list(elements), hidden=hidden, num_couplings=num_couplings, num_blocks=num_blocks,
            embed_dim=embed_dim, length_scales=length_scales, scale_limit=scale_limit))
        self.element_symbols = list(elements)
        self.embedding = nn.Embedding(len(elements), embed_dim)
        self.register_buffer("length_scales", length_scale_tensor(length_scales))
        # log of the per-element displacement scale (nm), set from data before training
        self.element_log_scale = nn.Parameter(torch.zeros(len(elements)))
        context_dim = embed_dim + 3 + 3 * len(length_scales)
        self.layers = nn.ModuleList([
            CouplingPair(context_dim, hidden, num_blocks, len(length_scales), scale_limit) for _ in range(num_couplings)
        ])
        # The same modules in inverse order: TorchScript cannot iterate a ModuleList backwards.
        self.layers_reversed = nn.ModuleList(list(reversed(self.layers)))

    kind = "cartesian"
    config_class = FlowConfig

    def to_config(self) -> FlowConfig:
        """The flow's settings (its constructor arguments)."""
        return FlowConfig(**json.loads(self.config_json))

    @classmethod
    def from_config(cls, config) -> "TimewarpFlow":
        """An untrained flow with the settings ``config`` (a :class:`FlowConfig` or its dict)."""
        return cls(**dataclasses.asdict(cls.parse_config(config)))

    def context(self, x_t: Tensor, atom_types: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-atom context features (B, N, E+3+3H) and attention weights (B, H, N, N) of x(t).

        Besides the element embedding and the centred coordinates, each atom sees, per head, the
        kernel-weighted mean offset of its neighbours in units of the length scale: a direct
        measure of local strain that raw coordinates would make the network learn slowly.
        """
        centred = (x_t - masked_mean(x_t, mask)) * mask[..., None]
        weights = kernel_attention_weights(centred, mask, self.length_scales)
        offsets = (torch.matmul(weights, centred[:, None]) - centred[:, None]) / self.length_scales[:, None, None]
        offsets = offsets.transpose(1, 2).reshape(x_t.shape[0], x_t.shape[1], -1) * mask[..., None]
        features = torch.cat([self.embedding(atom_types), centred, offsets], dim=-1)
        return features, weights

    def generate(self, z_x: Tensor, z_v: Tensor, context: Tensor, weights: Tensor, atom_types: Tensor,
                 mask: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Map base samples to (displacement, auxiliary); also returns log|det| (B,) float64."""
        log_det = torch.zeros(z_x.shape[0], dtype=torch.float64, device=z_x.device)
        x, v = z_x, z_v
        for layer in self.layers:
            x, v, ld = layer(x, v, context, weights, mask)
            log_det = log_det + ld
        x, ld = centred_affine(x, self._element_log_scale(atom_types, x), torch.zeros_like(x), mask)
        return x, v, log_det + ld

    def normalise(self, displacement: Tensor, w: Tensor, context: Tensor, weights: Tensor, atom_types: Tensor,
                  mask: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Inverse of :meth:`generate`; returns base variables and log|det| of the generative map."""
        x, log_det = centred_affine_inverse(
            displacement, self._element_log_scale(atom_types, displacement), torch.zeros_like(displacement), mask)
        v = w
        for layer in self.layers_reversed:
            x, v, ld = layer.inverse(x, v, context, weights, mask)
            log_det = log_det + ld
        return x, v, log_det

    def _element_log_scale(self, atom_types: Tensor, like: Tensor) -> Tensor:
        scale = self.element_log_scale[atom_types][..., None].expand(like.shape[0], -1, 3)
        return scale.to(like.dtype)

    def log_prob(self, x_t: Tensor, x_tau: Tensor, w: Tensor, atom_types: Tensor, mask: Tensor) -> Tensor:
        """Exact log p(x_tau, w | x_t) on V x R^{3n}, shape (B,), float64.

        Parameters
        ----------
        x_t, x_tau : Tensor
            Positions (B, N, 3), nm; only the centre-of-mass-free displacement enters.
        w : Tensor
            Auxiliaries (B, N, 3).
        atom_types : Tensor
            Element indices (B, N).
        mask : Tensor
            1 for real atoms, 0 for padding (B, N).
        """
        context, weights = self.context(x_t, atom_types, mask)
        delta = (x_tau - x_t) * mask[..., None]
        displacement = (delta - masked_mean(delta, mask)) * mask[..., None]
        z_x, z_v, log_det = self.normalise(displacement, w * mask[..., None], context, weights, atom_types, mask)
        return base_log_prob(z_x, z_v, mask) - log_det

    def sample(self, x_t: Tensor, atom_types: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """One sample (y, w) ~ p(. | x_t) per batch entry, differentiable (reparametrised).

        Returns positions y (B, N, 3) with the centre of mass of ``x_t``, auxiliaries w, and
        log p(y, w | x_t) (B,) float64.
        """
        context, weights = self.context(x_t, atom_types, mask)
        z_x, z_v = draw_base(x_t.shape[0], x_t.shape[1], mask, x_t.dtype, x_t.device)
        displacement, w, log_det = self.generate(z_x, z_v, context, weights, atom_types, mask)
        return x_t + displacement, w, base_log_prob(z_x, z_v, mask) - log_det

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposals of one molecule and the non-energy part of their log MH ratio.

        Parameters
        ----------
        positions : Tensor
            Current state x, shape (N, 3), nm, any float dtype (float64 in the export contract).
        atom_types : Tensor
            Element indices, shape (N,), int64.
        num_proposals : int
            Number B of independent proposals.

        Returns
        -------
        tuple of Tensor
            Proposals (B, N, 3) in the dtype and frame of ``positions`` (same atom mean), and
            log_ratio = log N(w) + log p(x, v | y) - log N(v) - log p(y, w | x), (B,) float64.
        """
        dtype = self.element_log_scale.dtype
        n = positions.shape[0]
        x = positions - positions.mean(0, keepdim=True)
        types = atom_types[None, :]
        mask = torch.ones(1, n, dtype=dtype, device=positions.device)
        context, weights = self.context(x.to(dtype)[None], types, mask)

        batch_mask = mask.expand(num_proposals, n)
        batch_types = types.expand(num_proposals, n)
        z_x, z_v = draw_base(num_proposals, n, batch_mask, dtype, positions.device)
        v = torch.randn(num_proposals, n, 3, dtype=dtype, device=positions.device)
        displacement, w, log_det = self.generate(z_x, z_v, context, weights, batch_types, batch_mask)
        log_forward = base_log_prob(z_x, z_v, batch_mask) - log_det
        proposals = positions[None] + displacement.to(positions.dtype)

        # Reverse move y -> x, conditioned on each proposal, with the current v as its auxiliary.
        y = proposals - proposals.mean(1, keepdim=True)
        back = x[None] - y
        back = (back - back.mean(1, keepdim=True)).to(dtype)
        context_r, weights_r = self.context(y.to(dtype), batch_types, batch_mask)
        z_x_r, z_v_r, log_det_r = self.normalise(back, v, context_r, weights_r, batch_types, batch_mask)
        log_reverse = base_log_prob(z_x_r, z_v_r, batch_mask) - log_det_r

        log_ratio = (standard_normal_log_prob(w, batch_mask) + log_reverse
                     - standard_normal_log_prob(v, batch_mask) - log_forward)
        return proposals, log_ratio


def draw_base(batch: int, atoms: int, mask: Tensor, dtype: torch.dtype, device: torch.device) -> Tuple[Tensor, Tensor]:
    """Standard normal samples on V (positions) and R^{3n} (auxiliaries), zero on padding."""
    m = mask[..., None]
    z_x = torch.randn(batch, atoms, 3, dtype=dtype, device=device) * m
    z_x = (z_x - masked_mean(z_x, mask)) * m
    z_v = torch.randn(batch, atoms, 3, dtype=dtype, device=device) * m
    return z_x, z_v


def standard_normal_log_prob(v: Tensor, mask: Tensor) -> Tensor:
    """log N(v; 0, I) over the 3n real coordinates, (B,) float64."""
    sq = (v.to(torch.float64) ** 2 * mask[..., None].to(torch.float64)).sum((1, 2))
    return -0.5 * sq - 1.5 * mask.to(torch.float64).sum(1) * math.log(2.0 * math.pi)


def base_log_prob(z_x: Tensor, z_v: Tensor, mask: Tensor) -> Tensor:
    """Base log density: standard normal on V (dimension 3(n-1)) times standard normal on R^{3n}."""
    m = mask[..., None].to(torch.float64)
    n = mask.to(torch.float64).sum(1)
    sq = ((z_x.to(torch.float64) ** 2 + z_v.to(torch.float64) ** 2) * m).sum((1, 2))
    return -0.5 * sq - 0.5 * (3.0 * (n - 1.0) + 3.0 * n) * math.log(2.0 * math.pi)
