"""Side-chain torsion moves: rotamer jumps of chi angles.

A side-chain torsion is a bond b-c, b the C-alpha or a side-chain atom and c a side-chain atom
one bond further out, not in a ring, whose far side (c's side, away from C-alpha) holds a heavy
atom besides c: chi1 (CA-CB), chi2 (CB-CG) and so on, but not a methyl, hydroxyl or ammonium
rotor, which only turns hydrogens and which hybrid Monte Carlo relaxes in a few steps.

A move turns the far side of each chosen torsion rigidly about its bond by an increment

    delta = J + eps,  J = 0 with probability 1 - jump, else +120, -120 or 180 degrees (1/3 each),
                      eps ~ normal(0, width),

whose law is symmetric (delta and -delta are equally likely). Turns about the bonds of a tree
commute and, for fixed bonds and angles, preserve volume, so a move that only turns chi angles has
the Metropolis-Hastings ratio 1, and one composed with a backbone pivot (which keeps C-alpha's
fragment, side chain included, in place) has the pivot's ratio.
"""
import math
from typing import List, Tuple

import torch
from torch import Tensor

from .zmatrix import far_side, rotation_matrices

JUMPS = (2.0 * math.pi / 3.0, -2.0 * math.pi / 3.0, math.pi)
"""Rotamer jumps: the staggered neighbours about an sp3-sp3 bond, and the flip of a planar group."""

ROTAMERS = (-math.pi / 3.0, math.pi, math.pi / 3.0)
"""chi1 of the three staggered rotamers (g-, t, g+), rad."""


def side_chain_shells(adjacency: Tensor, backbone_row: Tensor) -> List[Tensor]:
    """Atoms (N,) bool of a residue [C(i-1), N, CA, C, N(i+1)] by bond distance from its C-alpha
    within the side chain (reached without passing its N or C): [CA alone, 1 bond, 2 bonds, ...],
    up to the last non-empty shell."""
    n, ca, c = int(backbone_row[1]), int(backbone_row[2]), int(backbone_row[3])
    keep = torch.ones(adjacency.shape[0], dtype=torch.bool)
    keep[n] = False
    keep[c] = False
    sub = adjacency & keep[:, None] & keep[None, :]
    seen = torch.zeros(adjacency.shape[0], dtype=torch.bool)
    seen[ca] = True
    shells: List[Tensor] = [seen.clone()]
    shell = sub[seen].any(0) & ~seen
    while bool(shell.any()):
        shells.append(shell)
        seen = seen | shell
        shell = sub[shell].any(0) & ~seen
    return shells


def find_torsions(adjacency: Tensor, is_heavy: Tensor, backbone: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Side-chain torsions of the residues ``backbone`` (R, 5) of a bond graph.

    Returns bonds (T, 2) [b, c], moving sides (T, N) bool (c's side, c included) and the residue
    row (T,) of each torsion, ordered by residue and then outwards from C-alpha.
    """
    bonds: List[List[int]] = []
    sides: List[Tensor] = []
    residues: List[int] = []
    for r in range(backbone.shape[0]):
        shells = side_chain_shells(adjacency, backbone[r])
        for d in range(len(shells) - 1):
            inners: List[int] = torch.nonzero(shells[d]).flatten().tolist()
            for b in inners:
                outers: List[int] = torch.nonzero(adjacency[b] & shells[d + 1]).flatten().tolist()
                for c in outers:
                    side = far_side(adjacency, b, c)
                    beyond = side & is_heavy
                    beyond[c] = False
                    if bool(beyond.any()):
                        bonds.append([b, c])
                        sides.append(side)
                        residues.append(r)
    if len(bonds) == 0:
        return (torch.zeros(0, 2, dtype=torch.int64), torch.zeros(0, adjacency.shape[0], dtype=torch.bool),
                torch.zeros(0, dtype=torch.int64))
    return torch.tensor(bonds, dtype=torch.int64), torch.stack(sides), torch.tensor(residues, dtype=torch.int64)


def chi1_quads(adjacency: Tensor, is_heavy: Tensor, backbone: Tensor, bonds: Tensor, sides: Tensor,
               owners: Tensor) -> Tensor:
    """chi1 of each residue of ``backbone`` (R, 5) as a row (R, 5) [N, CA, CB, X, t] of the torsions
    ``bonds``/``sides``/``owners`` of :func:`find_torsions`: X is the lowest-numbered heavy atom
    bonded to CB besides CA, t the torsion index of CA-CB; all -1 for a residue without one. Where
    CB carries two heavy atoms (Val, Ile, Thr) X may be either, but always the same one for a given
    molecule."""
    rows = torch.full((backbone.shape[0], 5), -1, dtype=torch.int64)
    for t in range(bonds.shape[0]):
        r, b, c = int(owners[t]), int(bonds[t, 0]), int(bonds[t, 1])
        if int(backbone[r, 2]) == b:
            beyond = torch.nonzero(adjacency[c] & is_heavy & sides[t]).flatten()
            rows[r] = torch.tensor([int(backbone[r, 1]), b, c, int(beyond[0]), t], dtype=torch.int64)
    return rows


def torsion_increments(count: int, jump: float, width: float, jumps: List[float]) -> Tensor:
    """``count`` draws (count,) float64 of the increment law of the module docstring, with rotamer
    jumps drawn uniformly from ``jumps`` (rad; the law is symmetric only if the set is)."""
    jumps = torch.tensor(jumps, dtype=torch.float64)[torch.randint(0, len(jumps), (count,))]
    jumped = torch.rand(count, dtype=torch.float64) < jump
    return torch.where(jumped, jumps, torch.zeros_like(jumps)) + torch.randn(count, dtype=torch.float64) * width


def turn_torsions(y: Tensor, bonds: Tensor, sides: Tensor, increments: Tensor) -> Tensor:
    """Positions (B, N, 3) after turning each torsion t's far side of every row by ``increments``
    (B, T) rad about its bond (zero leaves it)."""
    for t in range(bonds.shape[0]):
        b, c = int(bonds[t, 0]), int(bonds[t, 1])
        pivot = y[:, c]
        axis = pivot - y[:, b]
        turn = rotation_matrices(axis / torch.linalg.norm(axis, dim=-1, keepdim=True), increments[:, t])
        moved = torch.bmm(y - pivot[:, None], turn.transpose(1, 2)) + pivot[:, None]
        y = torch.where(sides[t][None, :, None] & (increments[:, t] != 0)[:, None, None], moved, y)
    return y
