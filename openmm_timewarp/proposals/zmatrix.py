"""Internal coordinates (a Z-matrix) built from positions and elements alone, in TorchScript.

The proposal contract gives a model only positions and element indices, so bonds are found from
covalent radii and the Z-matrix is built from the bond graph by a deterministic rule:

- the root is the heavy atom at the centre of the graph (smallest eccentricity, then lowest index),
  which keeps the chains short and so the lever arms of angle errors small;
- atoms are placed in breadth-first order from the root, heavy neighbours before hydrogens;
- every atom i is placed from its parent p (bond length), the parent's parent k (bond angle) and a
  torsion partner l. When an earlier sibling s (same parent) exists, l = s: the torsion is then a
  stiff "improper" offset (about +-120 degrees at sp3 centres, 180 at sp2 ones) instead of a second
  rotor that would have to move in lockstep with the first.

The first three atoms fix the frame: atom ``order[0]`` (the root) stays where it is, ``order[1]``
moves along the current root -> order[1] axis, and ``order[2]`` in the current half-plane. A
proposal built this way changes only the 3N - 6 internal coordinates; the volume element is

    dx = J dq dg,    J = prod_{i != root} b_i^2  *  prod_{i not in order[:2]} sin(a_i),

with g the rigid-body motion, so the Cartesian density of a proposal is its density in q divided
by J (:func:`log_jacobian`).
"""
from typing import List, Tuple

import torch
from torch import Tensor

from .geometry import dihedral, unit


def _graph_distances(adjacency: Tensor) -> Tensor:
    """Shortest-path lengths (N, N) int64 of a bond graph; unreachable pairs get N + 1."""
    n = adjacency.shape[0]
    adj = adjacency.to(torch.float32)
    dist = torch.full((n, n), n + 1, dtype=torch.int64)
    reach = torch.eye(n, dtype=torch.float32)
    dist[reach > 0] = 0
    for step in range(1, n):
        grown = ((reach + reach @ adj) > 0).to(torch.float32)
        new = (grown > 0) & (reach == 0)
        if not bool(new.any()):
            break
        dist[new] = step
        reach = grown
    return dist


def _breadth_first(adjacency: Tensor, heavy: Tensor, root: int) -> Tuple[List[int], List[int]]:
    """Parent of each atom (-1 for the root) and the placement order of a breadth-first walk from
    ``root`` that visits heavy neighbours before hydrogens."""
    n = adjacency.shape[0]
    neighbours: List[List[int]] = []
    for i in range(n):
        row: List[int] = torch.nonzero(adjacency[i]).flatten().tolist()
        heavy_first: List[int] = []
        hydrogens: List[int] = []
        for j in row:
            if bool(heavy[j]):
                heavy_first.append(j)
            else:
                hydrogens.append(j)
        neighbours.append(heavy_first + hydrogens)
    parent = [-1] * n
    placed = [False] * n
    order: List[int] = [root]
    placed[root] = True
    head = 0
    while head < len(order):
        u = order[head]
        head += 1
        for v in neighbours[u]:
            if not placed[v]:
                placed[v] = True
                parent[v] = u
                order.append(v)
    return parent, order


def _references(parent: List[int], order: List[int]) -> Tuple[List[int], List[int], List[int], List[int]]:
    """Angle partner, torsion partner, placement stage and sibling flag of each atom of a
    breadth-first placement (``parent``, ``order``); see :func:`build_zmatrix`."""
    n = len(parent)
    root = order[0]
    angle = [-1] * n
    torsion = [-1] * n
    stage = [0] * n
    relative = [0] * n
    first, second = order[1], order[2]
    stage[first] = 1
    angle[second] = first if parent[second] == root else root
    stage[second] = 2
    for position in range(3, n):
        i = order[position]
        p = parent[i]
        k = parent[p] if p != root else first
        l = -1
        for s in order[:position]:
            if parent[s] == p and s != k:
                l = s
                relative[i] = 1
                break
        if l < 0:
            if k != root:
                l = parent[k]
            else:
                for s in order[:position]:
                    if s != p and s != k and parent[s] == root:
                        l = s
                        break
        angle[i] = k
        torsion[i] = l
        stage[i] = 1 + max(stage[p], max(stage[k], stage[l]))
    return angle, torsion, stage, relative


def build_zmatrix(adjacency: Tensor, heavy: Tensor) -> Tensor:
    """Z-matrix references of a connected bond graph.

    Parameters
    ----------
    adjacency : Tensor
        (N, N) bool bond graph, N >= 3; fragments are joined by virtual bonds to atom 0.
    heavy : Tensor
        (N,) bool, True for atoms other than hydrogen.

    Returns
    -------
    Tensor
        (N, 5) int64, per atom: parent, angle partner, torsion partner (-1 where the atom has none),
        placement stage (atoms of one stage depend only on earlier stages) and 1 where the torsion
        partner is a sibling. Row order is atom order; the placement order is by stage.
    """
    n = adjacency.shape[0]
    if n < 3:
        raise ValueError("a Z-matrix needs at least 3 atoms")
    adjacency = adjacency.clone()
    dist = _graph_distances(adjacency)
    # Separate fragments (several molecules, or a random test cloud) get one virtual bond from
    # their lowest-index atom to atom 0. The rule depends only on the bond graph, so a proposal
    # with the same bond graph has the same Z-matrix.
    while bool((dist[0] > n).any()):
        j = int(torch.nonzero(dist[0] > n).flatten()[0])
        adjacency[0, j] = True
        adjacency[j, 0] = True
        dist = _graph_distances(adjacency)
    eccentricity = dist.max(1).values + (~heavy).to(torch.int64) * (n + 2)
    root = int(torch.argmin(eccentricity))

    parent, order = _breadth_first(adjacency, heavy, root)
    angle, torsion, stage, relative = _references(parent, order)
    return torch.tensor([parent, angle, torsion, stage, relative], dtype=torch.int64).t().contiguous()


def coordinate_mask(zmatrix: Tensor) -> Tensor:
    """(N, 3) float mask of the internal coordinates that exist: bond, angle, torsion per atom."""
    return (zmatrix[:, :3] >= 0).to(torch.float64)


def to_internal(positions: Tensor, zmatrix: Tensor) -> Tensor:
    """Internal coordinates (..., N, 3): bond length (nm), angle and torsion (rad); 0 where absent."""
    index = zmatrix[:, :3].clamp(min=0)
    exists = zmatrix[:, :3] >= 0
    # A missing reference is replaced by a point off the axes of the others, so that every value
    # and gradient below is finite (a NaN there would poison gradients through the final select).
    offsets = torch.eye(3, dtype=positions.dtype, device=positions.device)
    xi = positions
    xp = torch.where(exists[:, 0:1], positions.index_select(-2, index[:, 0]), xi + offsets[0])
    xk = torch.where(exists[:, 1:2], positions.index_select(-2, index[:, 1]), xp + offsets[1])
    xl = torch.where(exists[:, 2:3], positions.index_select(-2, index[:, 2]), xk + offsets[2])
    bond = torch.linalg.norm(xi - xp, dim=-1)
    cos_angle = (unit(xi - xp) * unit(xk - xp)).sum(-1)
    angle = torch.acos(cos_angle.clamp(-1.0, 1.0))
    torsion = dihedral(xl, xk, xp, xi)
    values = torch.stack([bond, angle, torsion], dim=-1)
    return torch.where(exists, values, torch.zeros_like(values))


def log_jacobian(internal: Tensor, zmatrix: Tensor) -> Tensor:
    """log J of the Cartesian volume element per internal-coordinate volume (see module doc), (...,)."""
    has_bond = (zmatrix[:, 0] >= 0).to(internal.dtype)
    has_angle = (zmatrix[:, 1] >= 0).to(internal.dtype)
    bond = torch.where(has_bond > 0, internal[..., 0], torch.ones_like(internal[..., 0]))
    angle = torch.where(has_angle > 0, internal[..., 1], torch.ones_like(internal[..., 1]))
    return (2.0 * torch.log(bond) * has_bond + torch.log(torch.sin(angle)) * has_angle).sum(-1)


def frame(positions: Tensor, zmatrix: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Root position (3,), root -> order[1] axis e1 (3,) and in-plane unit e2 (3,) of one configuration."""
    root = int(torch.nonzero(zmatrix[:, 3] == 0).flatten()[0])
    first = int(torch.nonzero(zmatrix[:, 3] == 1).flatten()[0])
    second = int(torch.nonzero(zmatrix[:, 3] == 2).flatten()[0])
    origin = positions[root]
    e1 = unit(positions[first] - origin)
    w = positions[second] - origin
    e2 = unit(w - (w * e1).sum() * e1)
    return origin, e1, e2


def to_cartesian(internal: Tensor, zmatrix: Tensor, origin: Tensor, e1: Tensor, e2: Tensor) -> Tensor:
    """Positions (B, N, 3) from internal coordinates (B, N, 3) in the frame (origin, e1, e2)."""
    batch, n = internal.shape[0], internal.shape[1]
    stage = zmatrix[:, 3]
    out = torch.zeros(batch, n, 3, dtype=internal.dtype, device=internal.device)
    root = int(torch.nonzero(stage == 0).flatten()[0])
    first = int(torch.nonzero(stage == 1).flatten()[0])
    second = int(torch.nonzero(stage == 2).flatten()[0])
    out[:, root] = origin
    out[:, first] = origin + internal[:, first, 0:1] * e1
    # order[2]: bond to its parent, angle with the other frame atom, in the (e1, e2) half-plane.
    p2, k2 = int(zmatrix[second, 0]), int(zmatrix[second, 1])
    axis = unit(out[:, k2] - out[:, p2])
    perp = unit(e2 - (e2 * axis).sum(-1, keepdim=True) * axis)
    b2, a2 = internal[:, second, 0:1], internal[:, second, 1:2]
    out[:, second] = out[:, p2] + b2 * (torch.cos(a2) * axis + torch.sin(a2) * perp)
    last_stage = int(stage.max())
    for s in range(3, last_stage + 1):
        atoms = torch.nonzero(stage == s).flatten()
        p, k, l = zmatrix[atoms, 0], zmatrix[atoms, 1], zmatrix[atoms, 2]
        xp, xk, xl = out[:, p], out[:, k], out[:, l]
        b, a, t = internal[:, atoms, 0:1], internal[:, atoms, 1:2], internal[:, atoms, 2:3]
        bc = unit(xp - xk)
        normal = unit(torch.cross(xk - xl, bc, dim=-1))
        m = torch.cross(normal, bc, dim=-1)
        out[:, atoms] = xp + b * (-torch.cos(a) * bc + torch.sin(a) * torch.cos(t) * m
                                  - torch.sin(a) * torch.sin(t) * normal)
    return out
