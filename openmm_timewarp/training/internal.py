"""Training pieces of the internal-coordinate flow: Z-matrices per molecule, move scales, NLL,
and the MH acceptance of its proposals.

The acceptance of each proposal kernel on the validation pairs, to choose ``export --kernels``:
``openmm-timewarp kernel-acceptance RUN_DIR/best.pt --data DATA_DIR [--limit 256]``.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from ..proposals.geometry import REJECT, wrap_angle
from ..proposals.internal_flow import InternalTimewarpFlow
from ..proposals.zmatrix import to_internal
from .dataset import PairSet
from .losses import ReducedEnergy, acceptance_objective, distance_jump


def molecule_zmatrices(flow: InternalTimewarpFlow, pairs: PairSet) -> Dict[int, Tensor]:
    """The Z-matrix of every molecule of ``pairs``, from its first x(t); all its pairs must share
    its bond graph (checked lazily by the NLL, which would see broken bonds as huge moves)."""
    zmatrices = {}
    for molecule_id in torch.unique(pairs.molecule).tolist():
        row = int((pairs.molecule == molecule_id).nonzero()[0])
        atoms = int(pairs.mask[row].sum())
        zmatrices[molecule_id] = flow.zmatrix(pairs.x_t[row, :atoms], pairs.atom_types[row, :atoms])
    return zmatrices


def molecule_groups(pairs: PairSet, zmatrices: Dict[int, Tensor]) -> Tensor:
    """(M,) for each molecule of ``pairs``, the first molecule with the same atom types and Z-matrix
    (the shards of one peptide): the NLL runs the flow once per group of a batch."""
    groups = torch.arange(len(pairs.molecules))
    firsts: List[Tuple[int, Tensor, Tensor]] = []  # (molecule, Z-matrix, atom types) of each group's first
    for molecule_id, zm in sorted(zmatrices.items()):
        types = pairs.atom_types[int((pairs.molecule == molecule_id).nonzero()[0]), :zm.shape[0]]
        same = [first for first, first_zm, first_types in firsts
                if torch.equal(first_zm, zm) and torch.equal(first_types, types)]
        if same:
            groups[molecule_id] = same[0]
        else:
            firsts.append((molecule_id, zm, types))
    return groups


def internal_log_scales(flow: InternalTimewarpFlow, pairs: PairSet, zmatrices: Dict[int, Tensor]) -> Tensor:
    """log RMS move per (element, sibling-torsion flag, coordinate) over ``pairs``, the initial
    ``log_scale_table``; torsion moves are wrapped into [-pi, pi)."""
    shape = flow.log_scale_table.shape
    total = torch.zeros(shape, dtype=torch.float64)
    count = torch.zeros(shape, dtype=torch.float64)
    for molecule_id, zm in zmatrices.items():
        rows = (pairs.molecule == molecule_id).nonzero().squeeze(1)
        atoms = zm.shape[0]
        types = pairs.atom_types[rows[0], :atoms]
        q_t = to_internal(pairs.x_t[rows, :atoms].double(), zm)
        q_tau = to_internal(pairs.x_tau[rows, :atoms].double(), zm)
        delta = q_tau - q_t
        delta[..., 2] = wrap_angle(delta[..., 2])
        dims = (zm[:, :3] >= 0).double()
        for atom in range(atoms):
            key = (int(types[atom]), int(zm[atom, 4]))
            total[key] += (delta[:, atom] ** 2 * dims[atom]).sum(0)
            count[key] += dims[atom] * len(rows)
    rms = torch.sqrt(total / count.clamp(min=1))
    fallback = torch.tensor([0.003, 0.05, 0.5], dtype=torch.float64).expand(shape)
    return torch.log(torch.where(count > 0, rms, fallback).clamp(min=1e-4)).float()


def internal_nll_loss(flow: InternalTimewarpFlow, batch: Dict[str, Tensor], zmatrices: Dict[int, Tensor],
                      groups: Optional[Tensor] = None) -> Tensor:
    """Negative log-likelihood of the moves, per internal coordinate and auxiliary, batch mean.

    The flow runs once per molecule of the batch, or once per group of ``groups`` (from
    :func:`molecule_groups`). The constant log J of the Z-matrix is left out: it does not depend on
    the parameters.
    """
    losses: List[Tensor] = []
    keys = batch["molecule"] if groups is None else groups.to(batch["molecule"].device)[batch["molecule"]]
    for key in torch.unique(keys).tolist():
        rows = (keys == key).nonzero().squeeze(1)
        zm = zmatrices[key].to(batch["x_t"].device)
        atoms = zm.shape[0]
        x_t = batch["x_t"][rows, :atoms]
        q_tau = to_internal(batch["x_tau"][rows, :atoms].double(), zm)
        w = torch.randn_like(x_t)
        log_p = flow.log_prob_internal(x_t, q_tau, w, batch["atom_types"][rows[0], :atoms], zm)
        losses.append(-log_p / (6 * atoms - 6))
    return torch.cat(losses).mean()


def internal_acceptance_loss(flow: InternalTimewarpFlow, batch: Dict[str, Tensor], energies: Dict[int, ReducedEnergy],
                             starts: int = 8, proposals: int = 8, soft_floor: float = 100.0,
                             jump_weight: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Timewarp's acceptance loss for the internal flow: ``proposals`` exported-style proposals (of
    the kernels ``flow.kernel_weights`` selects) from each of the first ``starts`` x(t) of ``batch``,
    differentiated through the reparametrised proposal and OpenMM's forces.

    Certain rejections (another bond graph, an angle out of range) carry no gradient; they count
    in the returned mean acceptance but not in the loss. Returns (loss, mean acceptance).
    """
    losses: List[Tensor] = []
    accepted = 0.0
    count = 0
    for row in range(min(starts, batch["x_t"].shape[0])):
        atoms = int(batch["mask"][row].sum())
        x = batch["x_t"][row, :atoms].double()
        y, log_ratio = flow.propose(x, batch["atom_types"][row, :atoms], proposals)
        energy = energies[int(batch["molecule"][row])]
        with torch.no_grad():
            u_x = energy(x[None]).double()
        delta = energy(y).double() - u_x
        log_alpha = torch.clamp(-delta + log_ratio, max=0.0)
        log_alpha = torch.where(torch.isfinite(log_alpha), log_alpha, torch.full_like(log_alpha, REJECT))
        accepted += float(torch.exp(log_alpha.detach()).sum())
        count += proposals
        valid = log_ratio > REJECT  # not a certain rejection
        if bool(valid.any()):
            jump = distance_jump(x[None].expand_as(y)[valid], y[valid], torch.ones(int(valid.sum()), atoms,
                                                                                  dtype=y.dtype, device=y.device))
            losses.append(acceptance_objective(log_alpha[valid], soft_floor, jump_weight, jump))
    loss = torch.stack(losses).mean() if losses else torch.zeros((), dtype=torch.float64, requires_grad=True)
    return loss, torch.tensor(accepted / max(count, 1))


def internal_acceptance(flow: InternalTimewarpFlow, pairs: PairSet, energies: Dict[int, ReducedEnergy],
                        limit: int = 256, proposals: int = 4) -> float:
    """Mean MH acceptance probability of ``proposals`` exported-style proposals from each of
    ``limit`` x(t) spread over ``pairs``."""
    subset = torch.linspace(0, len(pairs) - 1, min(limit, len(pairs))).long().unique()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in subset.tolist():
            atoms = int(pairs.mask[row].sum())
            x = pairs.x_t[row, :atoms].double()
            y, log_ratio = flow.propose(x, pairs.atom_types[row, :atoms], proposals)
            energy = energies[int(pairs.molecule[row])]
            delta = energy(y).double() - energy(x[None]).double()
            log_alpha = torch.clamp(-delta + log_ratio, max=0.0)
            log_alpha = torch.where(torch.isfinite(log_alpha), log_alpha, torch.full_like(log_alpha, REJECT))
            total += torch.exp(log_alpha).sum().item()
            count += proposals
    return total / count


def kernel_acceptances(flow: InternalTimewarpFlow, pairs: PairSet, energies: Dict[int, ReducedEnergy], limit: int,
                       local_steps: List[float]) -> Dict[str, float]:
    """Validation acceptance of each proposal kernel of ``flow`` alone (full, torsion, and local
    with each of ``local_steps``), to choose ``export --kernels``; restores the flow's kernels."""
    saved, step = flow.kernel_weights.tolist(), flow.local_step
    result: Dict[str, float] = {}
    torch.manual_seed(0)
    for name, weights in (("full", (1.0, 0.0, 0.0)), ("torsion", (0.0, 1.0, 0.0))):
        flow.set_kernels(*weights, local_step=0.1)
        result[name] = internal_acceptance(flow, pairs, energies, limit)
    for local in local_steps:
        flow.set_kernels(0.0, 0.0, 1.0, local_step=local)
        result[f"local {local:g}"] = internal_acceptance(flow, pairs, energies, limit)
    flow.set_kernels(*saved, local_step=step)
    return result
