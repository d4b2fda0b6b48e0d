"""Residues of a peptide found from its bond graph and elements alone, and their chemistry.

The proposal contract gives a model nothing but positions and elements: a carbonyl carbon is a
carbon bonded to an oxygen that has no other bond, an amide nitrogen is a nitrogen bonded to a
carbonyl carbon, and a C-alpha is a carbon, itself no carbonyl, bonded to an amide nitrogen N and
to a carbonyl carbon C whose own amide nitrogen is another one: phi = C(i-1)-N-CA-C and
psi = N-CA-C-N(i+1). Capped peptides (ACE ... NME) give every residue both angles.
"""
from typing import List, Tuple

import torch
from torch import Tensor

from .geometry import dihedral

SIDE_CHAIN_SHELLS = 3
"""Side-chain atoms are counted per element at 1..SIDE_CHAIN_SHELLS bonds from C-alpha."""


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


def find_backbone(adjacency: Tensor, atom_types: Tensor, carbon: int, nitrogen: int, oxygen: int) -> Tensor:
    """Backbone atoms (R, 5) int64, [C(i-1), N, CA, C, N(i+1)] per residue, in order of CA index."""
    a = adjacency
    is_c, is_n, is_o = atom_types == carbon, atom_types == nitrogen, atom_types == oxygen
    terminal_o = is_o & (a.sum(1) == 1)
    carbonyl = is_c & (a & terminal_o[None, :]).any(1)
    amide_n = is_n & (a & carbonyl[None, :]).any(1)
    rows: List[List[int]] = []
    alphas: List[int] = torch.nonzero(is_c & ~carbonyl).flatten().tolist()
    for ca in alphas:
        found = False
        nitrogens: List[int] = torch.nonzero(a[ca] & amide_n).flatten().tolist()
        carbons: List[int] = torch.nonzero(a[ca] & carbonyl).flatten().tolist()
        for n in nitrogens:
            for c in carbons:
                prev_c = torch.nonzero(a[n] & carbonyl).flatten()
                next_n = torch.nonzero(a[c] & amide_n).flatten()
                next_n = next_n[next_n != n]
                if not found and prev_c.numel() > 0 and next_n.numel() > 0:
                    rows.append([int(prev_c[0]), n, ca, c, int(next_n[0])])
                    found = True
    if len(rows) == 0:
        return torch.zeros(0, 5, dtype=torch.int64)
    return torch.tensor(rows, dtype=torch.int64)


def residue_features(adjacency: Tensor, atom_types: Tensor, heavy: Tensor, backbone: Tensor, num_elements: int,
                     phi_free: Tensor, shells: int = SIDE_CHAIN_SHELLS) -> Tensor:
    """Chemistry-only features (R, num_elements * shells + 2) of each residue.

    Side-chain atoms (reachable from CA without passing N or C) counted per element at 1 to
    ``shells`` bonds from CA, divided by 4; whether phi can rotate; whether the next residue's N carries a
    third heavy atom (a proline next).
    """
    heavy_neighbours = (adjacency & heavy[None, :]).sum(1)
    out: List[Tensor] = []
    for r in range(backbone.shape[0]):
        next_n = int(backbone[r, 4])
        found = side_chain_shells(adjacency, backbone[r])
        counts = torch.zeros(shells, num_elements, dtype=torch.float64)
        for d in range(min(shells, len(found) - 1)):
            counts[d] = torch.bincount(atom_types[found[d + 1]], minlength=num_elements)[:num_elements].double()
        next_pro = float(int(heavy_neighbours[next_n]) >= 3)
        out.append(torch.cat([counts.flatten() / 4.0,
                              torch.tensor([float(bool(phi_free[r])), next_pro], dtype=torch.float64)]))
    if len(out) == 0:
        return torch.zeros(0, num_elements * shells + 2, dtype=torch.float64)
    return torch.stack(out)


def backbone_angles(x: Tensor, backbone: Tensor) -> Tuple[Tensor, Tensor]:
    """phi and psi (..., R) radians of positions x (..., N, 3), IUPAC sign as in OpenMM and mdtraj
    (``zmatrix`` uses the opposite sign for its internal torsions)."""
    p = [x.index_select(-2, backbone[:, i]) for i in range(5)]
    return -dihedral(p[0], p[1], p[2], p[3]), -dihedral(p[1], p[2], p[3], p[4])


def feature_count(num_elements: int, shells: int = SIDE_CHAIN_SHELLS) -> int:
    """Length of a residue's feature vector (:func:`residue_features`) for ``num_elements`` elements."""
    return num_elements * shells + 2
