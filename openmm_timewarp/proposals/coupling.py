"""Affine coupling transforms and the atom transformer that parametrises them.

Positions live in the subspace V of configurations whose (unweighted) atom mean is zero: the flow
models the displacement y - x(t) with the centre of mass removed, and the proposal restores it.
A per-atom affine map does not keep V invariant, so position couplings use the *centred* affine map

    y = P(exp(s) * x + t),    P = I - 1 1^T / n    (per Cartesian axis, real atoms only),

which maps V onto V. Its Jacobian determinant on V follows from Jacobi's complementary-minor
identity: det = prod(exp(s_i)) * mean_i(exp(-s_i)) per axis. The inverse is closed form:
x = exp(-s) * (y - t - c) with c the exp(-s)-weighted mean of y - t. Auxiliary variables are
unconstrained and use the plain affine map.
"""
from typing import Tuple

import torch
from torch import Tensor, nn

from .attention import KernelAttentionBlock


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over real atoms: ``values`` (B, N, 3), ``mask`` (B, N) -> (B, 1, 3)."""
    return (values * mask[..., None]).sum(1, keepdim=True) / mask.sum(1)[:, None, None]


def centred_affine(x: Tensor, log_scale: Tensor, shift: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Apply the centred affine map to ``x`` in V.

    Parameters
    ----------
    x, log_scale, shift : Tensor
        Shape (B, N, 3); ``x`` has zero mean over real atoms.
    mask : Tensor
        1 for real atoms, 0 for padding, shape (B, N).

    Returns
    -------
    tuple of Tensor
        The image in V, shape (B, N, 3), and log|det| on V, shape (B,).
    """
    m = mask[..., None]
    log_scale = log_scale * m
    u = (x * torch.exp(log_scale) + shift) * m
    y = (u - masked_mean(u, mask)) * m
    return y, _centred_log_det(log_scale, mask)


def centred_affine_inverse(y: Tensor, log_scale: Tensor, shift: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Invert :func:`centred_affine`; returns x in V and log|det| of the *forward* map."""
    m = mask[..., None]
    log_scale = log_scale * m
    inv_scale = torch.exp(-log_scale) * m
    r = (y - shift) * m
    c = (inv_scale * r).sum(1, keepdim=True) / inv_scale.sum(1, keepdim=True)
    x = inv_scale * (r - c)
    return x, _centred_log_det(log_scale, mask)


def _centred_log_det(log_scale: Tensor, mask: Tensor) -> Tensor:
    """log det of x -> P exp(s) x on V: sum(s) + sum over axes of log mean(exp(-s))."""
    neg = (-log_scale).masked_fill(mask[..., None] == 0, float("-inf"))
    log_mean_inv = torch.logsumexp(neg, dim=1) - torch.log(mask.sum(1))[:, None]
    return log_scale.sum((1, 2), dtype=torch.float64) + log_mean_inv.sum(-1, dtype=torch.float64)


def affine(v: Tensor, log_scale: Tensor, shift: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Plain affine map of the auxiliaries; returns the image and log|det| (B,)."""
    m = mask[..., None]
    log_scale = log_scale * m
    return (v * torch.exp(log_scale) + shift) * m, log_scale.sum((1, 2), dtype=torch.float64)


def affine_inverse(w: Tensor, log_scale: Tensor, shift: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
    """Invert :func:`affine`; returns the preimage and log|det| of the *forward* map."""
    m = mask[..., None]
    log_scale = log_scale * m
    return (w - shift) * torch.exp(-log_scale) * m, log_scale.sum((1, 2), dtype=torch.float64)


class AtomTransformer(nn.Module):
    """Per-atom log-scale and shift from the conditioning context and the other half of the state.

    Inputs per atom: the context of x(t) (shared by all proposals of one x(t): element embedding,
    centred coordinates and, last, the kernel-weighted neighbour offsets of each head) and the
    coordinates of the half that is held fixed in this coupling. The shift is a free vector plus
    learned gates times the neighbour offsets, which gives it a rotation-equivariant part.
    No positional encoding is used, so the network is permutation equivariant.

    Parameters
    ----------
    context_dim : int
        Width of the context features (embedding + 3 + 3 * num_heads).
    hidden : int
        Feature width.
    num_blocks : int
        Kernel-attention transformer blocks.
    num_heads : int
        Attention heads (one per kernel length scale).
    scale_limit : float
        Log-scales are squashed smoothly into (-scale_limit, scale_limit) for stability.
    """

    def __init__(self, context_dim: int, hidden: int, num_blocks: int, num_heads: int, scale_limit: float) -> None:
        super().__init__()
        self.scale_limit = scale_limit
        self.context_proj = nn.Linear(context_dim, hidden)
        self.input_proj = nn.Linear(3, hidden, bias=False)
        self.blocks = nn.ModuleList([KernelAttentionBlock(hidden, num_heads) for _ in range(num_blocks)])
        self.norm = nn.LayerNorm(hidden)
        self.num_heads = num_heads
        self.head = nn.Linear(hidden, 6 + num_heads)
        # Start as the identity map so training begins from the base distribution.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, context: Tensor, other: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
        """Return (log_scale, shift), each (B, N, 3), for context (B or 1, N, C) and other (B, N, 3)."""
        h = self.context_proj(context) + self.input_proj(other)
        for block in self.blocks:
            h = block(h, weights)
        out = self.head(self.norm(h))
        log_scale, shift, gates = out[..., :3], out[..., 3:6], out[..., 6:]
        # Rotation-equivariant part of the shift: gated neighbour offsets of x(t), one per head.
        offsets = context[..., context.shape[-1] - 3 * self.num_heads:]
        offsets = offsets.reshape(offsets.shape[0], offsets.shape[1], self.num_heads, 3)
        shift = shift + (gates[..., None] * offsets).sum(-2)
        return self.scale_limit * torch.tanh(log_scale / self.scale_limit), shift


class CouplingPair(nn.Module):
    """One position coupling (conditioned on the auxiliaries) then one auxiliary coupling
    (conditioned on the positions), both conditioned on x(t)."""

    def __init__(self, context_dim: int, hidden: int, num_blocks: int, num_heads: int, scale_limit: float) -> None:
        super().__init__()
        self.position_net = AtomTransformer(context_dim, hidden, num_blocks, num_heads, scale_limit)
        self.auxiliary_net = AtomTransformer(context_dim, hidden, num_blocks, num_heads, scale_limit)

    def forward(self, x: Tensor, v: Tensor, context: Tensor, weights: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Generative direction; returns new (x, v) and log|det| (B,)."""
        log_scale, shift = self.position_net(context, v, weights)
        x, log_det_x = centred_affine(x, log_scale, shift, mask)
        log_scale, shift = self.auxiliary_net(context, x, weights)
        v, log_det_v = affine(v, log_scale, shift, mask)
        return x, v, log_det_x + log_det_v

    def inverse(self, x: Tensor, v: Tensor, context: Tensor, weights: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Normalising direction; returns the preimage (x, v) and log|det| of the forward map (B,)."""
        log_scale, shift = self.auxiliary_net(context, x, weights)
        v, log_det_v = affine_inverse(v, log_scale, shift, mask)
        log_scale, shift = self.position_net(context, v, weights)
        x, log_det_x = centred_affine_inverse(x, log_scale, shift, mask)
        return x, v, log_det_x + log_det_v

