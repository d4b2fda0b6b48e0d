"""Training losses: maximum likelihood and Timewarp's acceptance loss."""
from typing import Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from ..proposals.flow import TimewarpFlow, standard_normal_log_prob

ReducedEnergy = Callable[[Tensor], Tensor]
"""Reduced potential beta * U of positions (B, n, 3) in nm, returned as (B,); differentiable."""


def nll_loss(flow: TimewarpFlow, batch: Dict[str, Tensor]) -> Tensor:
    """Negative log-likelihood of the pairs, per atom, averaged over the batch.

    The auxiliary target w is fresh standard normal noise, so this is the augmented-flow
    maximum-likelihood objective of Timewarp (its optimum makes the position marginal match the data).
    """
    mask = batch["mask"]
    w = torch.randn_like(batch["x_t"]) * mask[..., None]
    log_p = flow.log_prob(batch["x_t"], batch["x_tau"], w, batch["atom_types"], mask)
    return (-log_p / mask.sum(1).to(log_p.dtype)).mean()


def acceptance_loss(flow: TimewarpFlow, batch: Dict[str, Tensor], energies: Dict[int, ReducedEnergy],
                    soft_floor: float = 100.0, jump_weight: float = 0.0) -> Tuple[Tensor, Tensor]:
    """Timewarp's acceptance loss, -E[log alpha(x -> y)] with y sampled from the flow, optionally
    minus ``jump_weight`` * log E[alpha * jump^2].

    The acceptance loss alone is also minimised by ever smaller moves (seen on ACE-ALA-NME: the
    RMS move fell from 0.1 to 0.005 nm while acceptance rose). The second term, the log of the
    expected squared jump of internal geometry (mean squared change of interatomic distances, so
    that free rigid rotations earn nothing), rewards large accepted moves instead.

    Parameters
    ----------
    flow : TimewarpFlow
    batch : dict
        A padded batch (``x_t``, ``atom_types``, ``mask``, ``molecule``); only x(t) is used.
    energies : dict
        Reduced-energy callable for each molecule index in the batch.
    soft_floor : float
        Below -soft_floor, log alpha is compressed logarithmically: proposals with clashes
        (astronomic energies) still pull towards lower energy, with a bounded gradient.
    jump_weight : float
        Weight of the expected-squared-jump term; 0 gives Timewarp's loss.

    Returns
    -------
    tuple of Tensor
        The loss (scalar) and the mean acceptance probability of the batch (detached).
    """
    log_alpha, y = log_acceptance(flow, batch, energies)
    jump = distance_jump(batch["x_t"], y, batch["mask"]) if jump_weight > 0 else None
    return acceptance_objective(log_alpha, soft_floor, jump_weight, jump), torch.exp(log_alpha).mean().detach()


def acceptance_objective(log_alpha: Tensor, soft_floor: float, jump_weight: float = 0.0,
                         jump: Optional[Tensor] = None) -> Tensor:
    """-mean(log alpha), compressed below -soft_floor, minus ``jump_weight`` * log E[alpha * jump]."""
    excess = torch.clamp(-log_alpha - soft_floor, min=0.0)
    soft = torch.where(excess > 0, -soft_floor - torch.log1p(excess), log_alpha)
    loss = -soft.mean()
    if jump_weight > 0 and jump is not None:
        loss = loss - jump_weight * torch.log((torch.exp(log_alpha) * jump).mean() + 1e-12)
    return loss


def distance_jump(x: Tensor, y: Tensor, mask: Tensor) -> Tensor:
    """Mean squared change of the interatomic distances from x to y over real atom pairs, (B,), nm^2."""
    pair_mask = mask[:, :, None] * mask[:, None, :] * (1.0 - torch.eye(x.shape[1], device=x.device))
    change = _distances(y) - _distances(x)
    return (change * change * pair_mask).sum((1, 2)) / pair_mask.sum((1, 2))


def _distances(x: Tensor) -> Tensor:
    # Epsilon keeps the gradient of the zero self-distances finite.
    return torch.sqrt(((x[:, :, None] - x[:, None]) ** 2).sum(-1) + 1e-12)


def log_acceptance(flow: TimewarpFlow, batch: Dict[str, Tensor],
                   energies: Dict[int, ReducedEnergy]) -> Tuple[Tensor, Tensor]:
    """log MH acceptance probability (B,) of one flow proposal from each x(t), and the proposals.

    Differentiable in the flow parameters through the reparametrised proposal.
    """
    x, types, mask = batch["x_t"], batch["atom_types"], batch["mask"]
    y, w, log_forward = flow.sample(x, types, mask)
    v = torch.randn_like(x) * mask[..., None]
    log_reverse = flow.log_prob(y, x, v, types, mask)
    log_ratio = (standard_normal_log_prob(w, mask) + log_reverse
                 - standard_normal_log_prob(v, mask) - log_forward)
    delta = reduced_energy_difference(x, y, mask, batch["molecule"], energies)
    return torch.clamp(-delta + log_ratio, max=0.0), y


def reduced_energy_difference(x: Tensor, y: Tensor, mask: Tensor, molecule: Tensor,
                              energies: Dict[int, ReducedEnergy]) -> Tensor:
    """beta * (U(y) - U(x)) per batch entry (B,) float64, differentiable in y.

    Non-finite energies become 1e30 (a certain rejection, with no gradient).
    """
    delta = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    for molecule_id in torch.unique(molecule).tolist():
        rows = (molecule == molecule_id).nonzero().squeeze(1)
        atoms = int(mask[rows[0]].sum())
        energy = energies[molecule_id]
        with torch.no_grad():
            u_x = energy(x[rows, :atoms]).to(torch.float64)
        u_y = energy(y[rows, :atoms]).to(torch.float64)
        delta = delta.index_put((rows,), u_y - u_x)
    return torch.where(torch.isfinite(delta), delta, torch.full_like(delta, 1e30))
