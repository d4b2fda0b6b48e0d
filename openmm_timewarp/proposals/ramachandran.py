"""A learned density of backbone dihedrals (phi, psi) per residue, conditioned on its chemistry.

Each residue's (phi, psi) density on the torus is a mixture of ``num_components`` products of
wrapped normals whose weights, centres and widths a small network computes from chemistry-only
features of the residue (see ``backbone.residue_features``), plus a uniform floor of weight
``floor`` that lets every region be proposed. Where phi cannot rotate (proline, whose N-CA bond
lies in a ring) the density is the exact psi marginal of the same mixture.

An optional basin prior (:meth:`RamachandranDensity.set_basin_prior`) mixes in fixed components
at the known backbone minima, the same for every residue: a residue whose training data rarely
visited a basin (the network then gives it almost no mass) is still proposed there often enough
to be found, while every other proposal rate drops only by the factor 1 - weight.

Everything is float64: the density enters the Metropolis-Hastings ratio.
"""
import json
import math
from typing import Tuple

import torch
from torch import Tensor, nn

from .geometry import wrap_angle

_WRAPS = 3
"""Images +-1..3 periods away are summed; with widths below MAX_LOG_SIGMA the rest is below 1e-30."""
MIN_LOG_SIGMA = math.log(0.03)
MAX_LOG_SIGMA = math.log(1.5)
BASIN_MINIMA_DEG = ((-150.0, 155.0), (-65.0, 145.0), (-70.0, -20.0), (60.0, 35.0), (70.0, -70.0), (60.0, 180.0))
"""(phi, psi) of the backbone minima, degrees: C5, PPII, alpha_R, alpha_L, C7ax, PII_L (see ``analysis.basins``)."""


def wrapped_normal_log_prob(theta: Tensor, mu: Tensor, log_sigma: Tensor, wraps: int = _WRAPS) -> Tensor:
    """log density per radian of a wrapped normal, broadcast over ``theta``, ``mu``, ``log_sigma``."""
    shifts = torch.arange(-wraps, wraps + 1, dtype=theta.dtype, device=theta.device) * (2.0 * math.pi)
    distance = wrap_angle(theta - mu)[..., None] + shifts
    sigma = torch.exp(log_sigma)[..., None]
    return (torch.logsumexp(-0.5 * (distance / sigma) ** 2, -1)
            - log_sigma - 0.5 * math.log(2.0 * math.pi))


class RamachandranDensity(nn.Module):
    """Conditional density g(phi, psi | residue features) on the torus.

    Parameters
    ----------
    num_features : int
        Length of a residue's feature vector.
    num_components : int
        Wrapped-normal product components of the mixture.
    hidden : int
        Width of the network that maps features to mixture parameters.
    floor : float
        Weight of the uniform component (0 < floor < 1).
    """

    def __init__(self, num_features: int, num_components: int = 16, hidden: int = 64, floor: float = 0.02) -> None:
        super().__init__()
        if not 0.0 < floor < 1.0:
            raise ValueError(f"floor must lie in (0, 1), got {floor}")
        self.config_json = json.dumps(dict(num_features=num_features, num_components=num_components,
                                           hidden=hidden, floor=floor))
        self.num_components = num_components
        self.floor = floor
        self.min_log_sigma, self.max_log_sigma = MIN_LOG_SIGMA, MAX_LOG_SIGMA
        self.net = nn.Sequential(nn.Linear(num_features, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 5 * num_components))
        with torch.no_grad():
            # Start from components spread over the torus on a golden-angle lattice, 0.6 rad wide.
            last = self.net[-1]
            last.weight.mul_(0.01)
            k = torch.arange(num_components, dtype=torch.float32)
            bias = torch.zeros(5, num_components)
            bias[1] = (2.0 * math.pi * (k + 0.5) / num_components) - math.pi
            bias[2] = wrap_angle(2.0 * math.pi * k * 0.6180339887 - math.pi)
            bias[3:] = math.log(0.6)
            last.bias.copy_(bias.flatten())
        self.prior_weight, self.prior_width = 0.0, 0.35
        self.prior_log_weight = -math.inf
        self.prior_log_rest = 0.0
        centres = torch.tensor(BASIN_MINIMA_DEG, dtype=torch.float64) * (math.pi / 180.0)
        # Not in the state dict: the prior is an export setting, not a trained parameter.
        self.register_buffer("prior_phi", centres[:, 0], persistent=False)
        self.register_buffer("prior_psi", centres[:, 1], persistent=False)
        self.register_buffer("prior_log_sigma", torch.zeros(len(BASIN_MINIMA_DEG), dtype=torch.float64),
                             persistent=False)
        self.double()

    @classmethod
    def from_config(cls, config: dict) -> "RamachandranDensity":
        """An untrained density with the constructor arguments ``config`` (as in ``config_json``)."""
        return cls(**config)

    def set_basin_prior(self, weight: float, width: float = 0.35) -> None:
        """Give the fixed components at :data:`BASIN_MINIMA_DEG` (equal weights, wrapped normals of
        ``width`` rad in phi and psi) the total weight ``weight`` of the non-uniform part; 0: none."""
        if not 0.0 <= weight < 1.0 or not 0.0 < width <= 1.5:
            raise ValueError(f"basin prior weight must lie in [0, 1) and width in (0, 1.5] rad, got {weight}, {width}")
        self.prior_weight, self.prior_width = float(weight), float(width)
        self.prior_log_weight = math.log(weight / len(BASIN_MINIMA_DEG)) if weight > 0 else -math.inf
        self.prior_log_rest = math.log(1.0 - weight)
        self.prior_log_sigma.fill_(math.log(width))

    def mixture(self, features: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Mixture parameters of each feature row (R, F): log weights, phi and psi centres, phi and
        psi log widths, each (R, K), or (R, K + 6) with the basin prior."""
        out = self.net(features.to(torch.float64)).view(-1, 5, self.num_components)
        log_sigma = self.min_log_sigma + (self.max_log_sigma - self.min_log_sigma) * torch.sigmoid(out[:, 3:])
        params = [torch.log_softmax(out[:, 0], -1), wrap_angle(out[:, 1]), wrap_angle(out[:, 2]),
                  log_sigma[:, 0], log_sigma[:, 1]]
        if self.prior_log_weight > -math.inf:
            rows = features.shape[0]
            prior = [torch.full_like(self.prior_phi, self.prior_log_weight), self.prior_phi, self.prior_psi,
                     self.prior_log_sigma, self.prior_log_sigma]
            params[0] = params[0] + self.prior_log_rest
            params = [torch.cat([p, q[None].expand(rows, -1)], 1) for p, q in zip(params, prior)]
        return params[0], params[1], params[2], params[3], params[4]

    def log_prob(self, params: Tuple[Tensor, Tensor, Tensor, Tensor, Tensor], phi: Tensor, psi: Tensor,
                 phi_free: Tensor) -> Tensor:
        """log g per rad^2 (per rad where phi is not free) of rows (B,) with mixture ``params`` (B, K)."""
        log_w, mu_phi, mu_psi, ls_phi, ls_psi = params
        term_phi = wrapped_normal_log_prob(phi.to(torch.float64)[:, None], mu_phi, ls_phi)
        term_psi = wrapped_normal_log_prob(psi.to(torch.float64)[:, None], mu_psi, ls_psi)
        free = phi_free.to(torch.float64)
        mixture = torch.logsumexp(log_w + term_psi + term_phi * free[:, None], -1)
        uniform = -(1.0 + free) * math.log(2.0 * math.pi)
        return torch.logaddexp(math.log(1.0 - self.floor) + mixture, math.log(self.floor) + uniform)

    def sample_from(self, params: Tuple[Tensor, Tensor, Tensor, Tensor, Tensor], normals: Tensor,
                    uniforms: Tensor) -> Tuple[Tensor, Tensor]:
        """One (phi, psi) per row of ``params`` (B, K) from variates: ``normals`` (B, 2) and
        ``uniforms`` (B, 4), which pick the component (by the inverse of the weights' cumulative
        sum), whether the floor is used, and phi and psi on the floor."""
        log_w, mu_phi, mu_psi, ls_phi, ls_psi = params
        cumulative = torch.cumsum(torch.exp(log_w), 1)
        target = uniforms[:, 0:1] * cumulative[:, -1:]
        component = torch.clamp((cumulative <= target).sum(1), max=log_w.shape[1] - 1)
        pick = component[:, None]
        phi = mu_phi.gather(1, pick).squeeze(1) + torch.exp(ls_phi.gather(1, pick).squeeze(1)) * normals[:, 0]
        psi = mu_psi.gather(1, pick).squeeze(1) + torch.exp(ls_psi.gather(1, pick).squeeze(1)) * normals[:, 1]
        from_floor = uniforms[:, 1] < self.floor
        phi = torch.where(from_floor, 2.0 * math.pi * uniforms[:, 2] - math.pi, phi)
        psi = torch.where(from_floor, 2.0 * math.pi * uniforms[:, 3] - math.pi, psi)
        return wrap_angle(phi), wrap_angle(psi)

    def sample(self, params: Tuple[Tensor, Tensor, Tensor, Tensor, Tensor]) -> Tuple[Tensor, Tensor]:
        """One (phi, psi) per row of ``params`` (B, K), from torch's default generator."""
        rows = params[0].shape[0]
        return self.sample_from(params, torch.randn(rows, 2, dtype=torch.float64, device=params[0].device),
                                torch.rand(rows, 4, dtype=torch.float64, device=params[0].device))
