"""Kernel self-attention over atoms.

The attention weights are not learned from queries and keys: each head uses a normalised Gaussian
kernel of the pairwise distances in the conditioning configuration x(t), with its own length scale
(Timewarp used 0.1-1.2 nm). The weights depend only on x(t), so one set serves every coupling layer
and every proposal conditioned on the same x(t).
"""
from typing import List

import torch
from torch import Tensor, nn


def kernel_attention_weights(coords: Tensor, mask: Tensor, length_scales: Tensor) -> Tensor:
    """Row-normalised Gaussian distance kernels, one per head.

    Parameters
    ----------
    coords : Tensor
        Conditioning positions, shape (B, N, 3), nm.
    mask : Tensor
        1 for real atoms, 0 for padding, shape (B, N).
    length_scales : Tensor
        One length scale per head, shape (H,), nm.

    Returns
    -------
    Tensor
        Weights of shape (B, H, N, N); each row sums to one over the real atoms.
    """
    diff = coords[:, :, None, :] - coords[:, None, :, :]
    sq_dist = (diff * diff).sum(-1)
    logits = -sq_dist[:, None, :, :] / (length_scales * length_scales)[None, :, None, None]
    logits = logits.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    return torch.softmax(logits, dim=-1)


class KernelAttentionBlock(nn.Module):
    """Pre-norm transformer block whose attention weights are given (distance kernels).

    Parameters
    ----------
    hidden : int
        Width of the per-atom features.
    num_heads : int
        Number of heads, one per kernel length scale; must divide ``hidden``.
    """

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        if hidden % num_heads != 0:
            raise ValueError(f"hidden width {hidden} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.norm_attention = nn.LayerNorm(hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm_mlp = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, hidden))

    def forward(self, h: Tensor, weights: Tensor) -> Tensor:
        """Update features ``h`` (B, N, hidden) with attention ``weights`` (B or 1, H, N, N)."""
        batch, atoms, hidden = h.shape
        values = self.value(self.norm_attention(h)).view(batch, atoms, self.num_heads, -1)
        if weights.shape[0] == 1:
            # One kernel for the whole batch (all proposals from one x(t)): a single large matmul
            # per head instead of a broadcast copy of the weights for every batch entry.
            stacked = values.permute(2, 1, 0, 3).reshape(self.num_heads, atoms, -1)
            mixed = torch.matmul(weights[0], stacked).view(self.num_heads, atoms, batch, -1).permute(2, 1, 0, 3)
        else:
            mixed = torch.matmul(weights, values.transpose(1, 2)).transpose(1, 2)
        h = h + self.out(mixed.reshape(batch, atoms, hidden))
        return h + self.mlp(self.norm_mlp(h))


def length_scale_tensor(length_scales: List[float]) -> Tensor:
    """Length scales as a float32 tensor, checked to be positive."""
    if not length_scales or min(length_scales) <= 0:
        raise ValueError(f"length scales must be positive, got {length_scales}")
    return torch.tensor(length_scales, dtype=torch.float32)
