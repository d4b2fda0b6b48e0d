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

This module holds the moves, which :class:`~.backbone.BackboneProposal` composes with its pivots,
and :class:`SideChainKernel`, a kernel of chi-only moves for a mixture.
"""
import dataclasses
import math
from typing import List, Tuple

import torch
from torch import Tensor

from .geometry import COVALENT_RADII_NM, bond_graph, far_side, rotation_matrices
from .kernel import KernelConfig, ProposalKernel
from .residues import find_backbone, side_chain_shells

JUMPS = (2.0 * math.pi / 3.0, -2.0 * math.pi / 3.0, math.pi)
"""Rotamer jumps: the staggered neighbours about an sp3-sp3 bond, and the flip of a planar group."""

ROTAMERS = (-math.pi / 3.0, math.pi, math.pi / 3.0)
"""chi1 of the three staggered rotamers (g-, t, g+), rad."""


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


def torsion_increments_from(normals: Tensor, jumped: Tensor, which: Tensor, jump: float, width: float,
                            jumps: List[float]) -> Tensor:
    """Draws (...) of the increment law of the module docstring from standard normals, and uniforms
    that decide whether (``jumped``) and by which of ``jumps`` (``which``) each one jumps."""
    table = torch.tensor(jumps, dtype=torch.float64)
    index = torch.clamp((which * len(jumps)).to(torch.int64), max=len(jumps) - 1)
    return torch.where(jumped < jump, table[index], torch.zeros_like(normals)) + normals * width


def torsion_increments(count: int, jump: float, width: float, jumps: List[float]) -> Tensor:
    """``count`` draws (count,) float64 of the increment law of the module docstring, with rotamer
    jumps drawn uniformly from ``jumps`` (rad; the law is symmetric only if the set is)."""
    return torsion_increments_from(torch.randn(count, dtype=torch.float64), torch.rand(count, dtype=torch.float64),
                                   torch.rand(count, dtype=torch.float64), jump, width, jumps)


def turn_torsion_rows(y: Tensor, bonds: Tensor, sides: Tensor, angles: Tensor) -> Tensor:
    """Positions (B, N, 3) after turning, in each row b, the far side ``sides[b]`` (B, N) of the bond
    ``bonds[b]`` (B, 2) by ``angles[b]`` (B,) rad (zero leaves the row as it is); one torsion per
    row, with no branch on values (``torch.export`` compiles it)."""
    rows = torch.arange(y.shape[0])
    pivot = y[rows, bonds[:, 1]]
    axis = pivot - y[rows, bonds[:, 0]]
    turn = rotation_matrices(axis / torch.linalg.norm(axis, dim=-1, keepdim=True), angles)
    moved = torch.bmm(y - pivot[:, None], turn.transpose(1, 2)) + pivot[:, None]
    return torch.where(sides[:, :, None] & (angles != 0)[:, None, None], moved, y)


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


@dataclasses.dataclass
class SideChainConfig(KernelConfig):
    """Settings of a :class:`SideChainKernel`: the rotamer-jump probability and the noise width (rad)."""

    elements: List[str]
    jump: float = 0.5
    width: float = 0.2


class SideChainKernel(ProposalKernel):
    """Chi-only moves: each proposal turns one side-chain torsion, picked uniformly among all, by
    the symmetric increment law of the module docstring; the log ratio is 0.

    Parameters
    ----------
    elements : list of str
        Element symbols that ``atom_types`` index into (C, N and O are needed to find residues).
    jump : float
        Probability of a rotamer jump, in [0, 1].
    width : float
        Width of the normal noise of every increment, rad, in [0, 1.5].
    """

    kind = "side_chains"
    config_class = SideChainConfig
    changes_geometry = False
    float32_networks = False

    def __init__(self, elements: List[str], jump: float = 0.5, width: float = 0.2) -> None:
        super().__init__()
        unknown = [e for e in elements if e not in COVALENT_RADII_NM]
        if unknown:
            raise ValueError(f"no covalent radius for elements {unknown}")
        if not 0.0 <= jump <= 1.0 or not 0.0 <= width <= 1.5:
            raise ValueError(f"jump must lie in [0, 1] and width in [0, 1.5] rad, got {jump}, {width}")
        self.element_symbols = list(elements)
        self.jump, self.width = float(jump), float(width)
        self.jumps: List[float] = list(JUMPS)
        self.carbon = elements.index("C") if "C" in elements else -1
        self.nitrogen = elements.index("N") if "N" in elements else -1
        self.oxygen = elements.index("O") if "O" in elements else -1
        self.register_buffer("radii", torch.tensor([COVALENT_RADII_NM[e] for e in elements], dtype=torch.float64))
        self.register_buffer("is_heavy", torch.tensor([e != "H" for e in elements]))
        # Torsions of the last bond graph seen.
        self.cached_graph = torch.zeros(0, 0, dtype=torch.bool)
        self.cached_types = torch.zeros(0, dtype=torch.int64)
        self.cached_bonds = torch.zeros(0, 2, dtype=torch.int64)
        self.cached_sides = torch.zeros(0, 0, dtype=torch.bool)

    def to_config(self) -> SideChainConfig:
        """The kernel's settings."""
        return SideChainConfig(list(self.element_symbols), self.jump, self.width)

    @classmethod
    def from_config(cls, config) -> "SideChainKernel":
        """A kernel with the settings ``config`` (a :class:`SideChainConfig` or its dict)."""
        c = cls.parse_config(config)
        return cls(c.elements, c.jump, c.width)

    def torsions(self, positions: Tensor, atom_types: Tensor) -> Tuple[Tensor, Tensor]:
        """Side-chain torsion bonds (T, 2) and moving sides (T, N) of the bond graph of ``positions``."""
        adjacency = bond_graph(positions.to(torch.float64), self.radii[atom_types])
        if (self.cached_graph.shape == adjacency.shape and bool(torch.equal(self.cached_graph, adjacency))
                and bool(torch.equal(self.cached_types, atom_types))):
            return self.cached_bonds, self.cached_sides
        if self.carbon < 0 or self.nitrogen < 0 or self.oxygen < 0:
            backbone = torch.zeros(0, 5, dtype=torch.int64)
        else:
            backbone = find_backbone(adjacency, atom_types, self.carbon, self.nitrogen, self.oxygen)
        bonds, sides, owners = find_torsions(adjacency, self.is_heavy[atom_types], backbone)
        self.cached_graph, self.cached_types = adjacency, atom_types.clone()
        self.cached_bonds, self.cached_sides = bonds, sides
        return bonds, sides

    def available(self, positions: Tensor, atom_types: Tensor) -> bool:
        """Whether the molecule has a side-chain torsion."""
        bonds, sides = self.torsions(positions, atom_types)
        return bonds.shape[0] > 0

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposals (B, N, 3) float64 with the atom mean of ``positions`` and their log ratios (B,): 0,
        or :data:`~.geometry.REJECT` where a turn changed the bond graph (the proposal is then x)."""
        x = positions.to(torch.float64)
        bonds, sides = self.torsions(x, atom_types)
        count = bonds.shape[0]
        if count == 0:
            raise ValueError("SideChainKernel: the molecule has no side-chain torsion")
        one = torch.randint(0, count, (num_proposals,))
        increments = torch.zeros(num_proposals, count, dtype=torch.float64)
        increments[torch.arange(num_proposals), one] = torsion_increments(num_proposals, self.jump, self.width,
                                                                          self.jumps)
        y = turn_torsions(x[None].repeat(num_proposals, 1, 1), bonds, sides, increments)
        y = y - y.mean(1, keepdim=True) + x.mean(0)
        valid = (bond_graph(y, self.radii[atom_types]) == self.cached_graph[None]).flatten(1).all(-1)
        log_ratio = torch.where(valid, torch.zeros(num_proposals, dtype=torch.float64),
                                torch.full((num_proposals,), self.reject, dtype=torch.float64))
        return torch.where(valid[:, None, None], y, x[None]), log_ratio
