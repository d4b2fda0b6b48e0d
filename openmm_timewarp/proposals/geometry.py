"""Geometry that every proposal kernel shares, in TorchScript: bonds, torsions, rotations.

Kernels see only positions and element indices (the proposal contract gives them nothing else),
so the bond graph comes from covalent radii, and a move is rejected with certainty by returning
:data:`REJECT` as its log ratio.
"""
import math

import torch
from torch import Tensor

__all__ = ["COVALENT_RADII_NM", "REJECT", "bond_graph", "reachable", "far_side", "rotation_matrices", "wrap_angle",
           "unit", "dihedral"]

COVALENT_RADII_NM = {"H": 0.031, "C": 0.076, "N": 0.071, "O": 0.066, "S": 0.105, "P": 0.107,
                     "F": 0.057, "Cl": 0.102, "Br": 0.120, "I": 0.139, "Se": 0.120}
"""Covalent radii, nm (Cordero et al. 2008); a bond is a distance below 1.25 * (r_i + r_j)."""

REJECT = -1e30
"""The log ratio of a proposal that is a certain rejection (another bond graph, an impossible
internal coordinate): a finite stand-in for log 0, as the contract asks for finite values."""


def bond_graph(positions: Tensor, radii: Tensor) -> Tensor:
    """Adjacency (..., N, N) bool of ``positions`` (..., N, 3) nm with per-atom covalent ``radii`` (N,)."""
    # The direct method at every size: cdist's default switches to a matrix product above 25 atoms,
    # a branch on the size that torch.export would fix.
    distance = torch.cdist(positions, positions, compute_mode="donot_use_mm_for_euclid_dist")
    cutoff = 1.25 * (radii[:, None] + radii[None, :])
    adjacency = distance < cutoff
    eye = torch.eye(positions.shape[-2], dtype=torch.bool, device=positions.device)
    return adjacency & ~eye


def reachable(adjacency: Tensor, start: int) -> Tensor:
    """Atoms (N,) bool connected to ``start`` in ``adjacency`` (N, N)."""
    adj = adjacency.to(torch.float32)
    reach = torch.zeros(adjacency.shape[0], dtype=torch.float32)
    reach[start] = 1.0
    for _ in range(adjacency.shape[0]):
        grown = ((reach + adj @ reach) > 0).to(torch.float32)
        if bool(torch.equal(grown, reach)):
            break
        reach = grown
    return reach > 0


def far_side(adjacency: Tensor, near: int, far: int) -> Tensor:
    """The atoms (N,) bool on ``far``'s side of the bond near-far (far included); all False when
    the bond lies in a ring, where no rigid torsion about it exists."""
    cut = adjacency.clone()
    cut[near, far] = False
    cut[far, near] = False
    side = reachable(cut, far)
    if bool(side[near]):
        return torch.zeros_like(side)
    return side


def rotation_matrices(axis: Tensor, angle: Tensor) -> Tensor:
    """Right-handed rotations (B, 3, 3) by ``angle`` (B,) about the unit vectors ``axis`` (B, 3)."""
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    a0, a1, a2 = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = torch.zeros_like(a0)
    cross = torch.stack([zero, -a2, a1, a2, zero, -a0, -a1, a0, zero], -1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye * cos + cross * sin + axis[:, :, None] * axis[:, None, :] * (1.0 - cos)


def wrap_angle(angle: Tensor) -> Tensor:
    """Angles mapped into [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2.0 * math.pi) - math.pi


def unit(v: Tensor) -> Tensor:
    """``v`` (..., 3) divided by its length."""
    return v / torch.linalg.norm(v, dim=-1, keepdim=True)


def dihedral(a: Tensor, b: Tensor, c: Tensor, d: Tensor) -> Tensor:
    """Dihedral angle a-b-c-d (...,) in (-pi, pi] of points (..., 3), with the sign convention of
    the Z-matrix (the opposite of IUPAC's, which OpenMM and mdtraj use: negate it for phi, psi, chi)."""
    b1, b2, b3 = b - a, c - b, d - c
    n1 = torch.cross(b1, b2, dim=-1)
    n2 = torch.cross(b2, b3, dim=-1)
    m1 = torch.cross(n1, unit(b2), dim=-1)
    return torch.atan2((m1 * n2).sum(-1), (n1 * n2).sum(-1))
