"""TITO: a lag-conditioned flow-matching model of x(t + lag) given x(t) (Viguera Diez et al.).

A velocity field v(y, s | x0, lag) transports a base sample y(0) = x0 + sigma * eps (eps a
mean-free standard normal, sigma = ``base_scale_nm``) to a sample y(1) of x(t + lag) given
x0 = x(t), along dy/ds = v.  The field is an E(3)-equivariant message-passing network over all
atom pairs (EGNN-style: invariant messages from element embeddings, the flow time, the lag and
radial features of the distances in y and in x0; vector outputs as weighted sums of relative
positions), so it is equivariant to rotations, translations and permutations of same-type atoms
by construction.  The distances in x0 carry the covalent structure (bonded pairs sit at 0.1-0.15
nm), which the proposal contract does not pass otherwise.

Sampling integrates the ODE with ``num_steps`` fixed midpoint steps inside the module.  The
exact density would need the divergence along the path; this model does not compute it, so it
has no density (``exact_density`` False): the integrator runs it as surrogate dynamics
(exploration mode), never under Metropolis-Hastings.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, List, Sequence, Tuple

import torch
from torch import Tensor, nn

from .kernel import KernelConfig, ProposalKernel

__all__ = ["TitoConfig", "TitoModel"]


@dataclasses.dataclass
class TitoConfig(KernelConfig):
    """Settings of a :class:`TitoModel`: its constructor arguments, ``lag_ps`` the lag it proposes."""

    elements: List[str]
    hidden: int = 64
    layers: int = 4
    num_rbf: int = 16
    rbf_max_nm: float = 1.0
    min_lag_ps: float = 10.0
    max_lag_ps: float = 1000.0
    base_scale_nm: float = 0.05
    num_steps: int = 20
    lag_ps: float = 100.0


def _mlp(n_in: int, hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, n_out))


def _fourier(u: Tensor, n: int) -> Tensor:
    """(B,) values in [0, 1] -> (B, 2n) features sin/cos(k pi u), k = 1..n."""
    k = torch.arange(1, n + 1, dtype=u.dtype, device=u.device) * math.pi
    return torch.cat([torch.sin(u[:, None] * k), torch.cos(u[:, None] * k)], dim=1)


def mean_free(x: Tensor) -> Tensor:
    """Subtract the mean over atoms (dim -2)."""
    return x - x.mean(dim=-2, keepdim=True)


class TitoModel(ProposalKernel):
    """Velocity field and sampler of a TITO transfer operator.

    Parameters
    ----------
    elements
        Element symbols that atom types index into.
    hidden, layers
        Width of the messages and node features, and number of message-passing layers.
    num_rbf, rbf_max_nm
        Gaussian radial basis of pair distances: ``num_rbf`` centres on [0, ``rbf_max_nm``].
    min_lag_ps, max_lag_ps
        Range of lags the model is trained for (sampled log-uniformly in training).
    base_scale_nm
        Width of the base distribution around x0.
    num_steps
        Midpoint steps of the sampling ODE.
    lag_ps
        Lag of :meth:`propose` (``set_lag_ps`` changes it within the trained range).
    """

    kind = "tito"
    config_class = TitoConfig
    exact_density: bool = False
    adjustable_lag = True

    def __init__(self, elements: Sequence[str], hidden: int = 64, layers: int = 4, num_rbf: int = 16,
                 rbf_max_nm: float = 1.0, min_lag_ps: float = 10.0, max_lag_ps: float = 1000.0,
                 base_scale_nm: float = 0.05, num_steps: int = 20, lag_ps: float = 100.0) -> None:
        super().__init__()
        if not 0 < min_lag_ps < max_lag_ps:
            raise ValueError(f"need 0 < min_lag_ps < max_lag_ps, got {min_lag_ps}, {max_lag_ps}")
        self.element_symbols: List[str] = list(elements)
        self.config_json: str = json.dumps(dict(
            elements=list(elements), hidden=hidden, layers=layers, num_rbf=num_rbf, rbf_max_nm=rbf_max_nm,
            min_lag_ps=min_lag_ps, max_lag_ps=max_lag_ps, base_scale_nm=base_scale_nm, num_steps=num_steps,
            lag_ps=lag_ps), sort_keys=True)
        self.min_lag_ps = float(min_lag_ps)
        self.max_lag_ps = float(max_lag_ps)
        self.base_scale = float(base_scale_nm)
        self.num_steps = int(num_steps)
        self.lag_ps = float(lag_ps)
        self.register_buffer("rbf_centres", torch.linspace(0.0, rbf_max_nm, num_rbf))
        self.rbf_width = float(rbf_max_nm / (num_rbf - 1))
        self.embed = nn.Embedding(len(self.element_symbols), hidden)
        self.condition = _mlp(16, hidden, hidden)
        self.edge_nets = nn.ModuleList([_mlp(2 * hidden + 2 * num_rbf, hidden, hidden) for _ in range(layers)])
        self.node_nets = nn.ModuleList([_mlp(2 * hidden, hidden, hidden) for _ in range(layers)])
        self.pair_weights = _mlp(hidden, hidden, 2)  # weights of (y_i - y_j) and (x0_i - x0_j)
        self.self_weight = _mlp(hidden, hidden, 1)  # weight of (x0_i - y_i)

    def to_config(self) -> TitoConfig:
        """The model's settings, with the lag it proposes now."""
        return TitoConfig(**dict(json.loads(self.config_json), lag_ps=self.lag_ps))

    @classmethod
    def from_config(cls, config: Any) -> "TitoModel":
        """An untrained model with the settings ``config`` (a :class:`TitoConfig` or its dict)."""
        return cls(**dataclasses.asdict(cls.parse_config(config)))

    def lag_feature(self, lag_ps: Tensor) -> Tensor:
        """Position of each lag on the log scale of the trained range, 0 at the minimum, 1 at the maximum."""
        return (torch.log(lag_ps) - math.log(self.min_lag_ps)) / (math.log(self.max_lag_ps) - math.log(self.min_lag_ps))

    def _rbf(self, d: Tensor) -> Tensor:
        return torch.exp(-((d[..., None] - self.rbf_centres) / self.rbf_width) ** 2)

    def velocity(self, y: Tensor, x0: Tensor, atom_types: Tensor, s: Tensor, lag_ps: Tensor) -> Tensor:
        """dy/ds at flow time ``s`` (B,), for states ``y`` (B, N, 3) given ``x0`` (B, N, 3) and lags (B,) in ps.

        ``atom_types`` is (N,): every row of the batch is the same molecule.
        """
        n = y.shape[1]
        off_diagonal = 1.0 - torch.eye(n, dtype=y.dtype, device=y.device)
        rel_y = y[:, :, None, :] - y[:, None, :, :]
        rel_x = x0[:, :, None, :] - x0[:, None, :, :]
        rbf_y = self._rbf(torch.sqrt((rel_y ** 2).sum(-1) + 1e-12))
        rbf_x = self._rbf(torch.sqrt((rel_x ** 2).sum(-1) + 1e-12))
        time = torch.cat([_fourier(s, 4), _fourier(self.lag_feature(lag_ps), 4)], dim=1)
        h = self.embed(atom_types)[None] + self.condition(time)[:, None, :]
        messages = h[:, :, None, :].expand(-1, -1, n, -1)
        for edge_net, node_net in zip(self.edge_nets, self.node_nets):
            pair = torch.cat([h[:, :, None, :].expand(-1, -1, n, -1), h[:, None, :, :].expand(-1, n, -1, -1),
                              rbf_y, rbf_x], dim=-1)
            messages = edge_net(pair) * off_diagonal[None, :, :, None]
            h = h + node_net(torch.cat([h, messages.sum(2) / max(n - 1, 1)], dim=-1))
        weights = self.pair_weights(messages) * off_diagonal[None, :, :, None]
        v = (weights[..., 0:1] * rel_y + weights[..., 1:2] * rel_x).sum(2) / max(n - 1, 1)
        v = v + self.self_weight(h) * (x0 - y)
        return mean_free(v)

    def base_sample(self, x0: Tensor) -> Tensor:
        """y(0) = x0 + sigma * mean-free standard normal noise."""
        return x0 + self.base_scale * mean_free(torch.randn_like(x0))

    @torch.jit.export
    def set_lag_ps(self, lag_ps: float) -> None:
        """Lag of later proposals; it must lie in the trained range."""
        if not self.min_lag_ps <= lag_ps <= self.max_lag_ps:
            raise ValueError(f"lag {lag_ps} ps is outside the trained range [{self.min_lag_ps}, {self.max_lag_ps}] ps")
        self.lag_ps = float(lag_ps)

    def sample(self, x0: Tensor, atom_types: Tensor, lag_ps: Tensor) -> Tensor:
        """Samples of x(t + lag) (B, N, 3) given mean-free x0 (B, N, 3), by fixed midpoint steps."""
        y = self.base_sample(x0)
        ds = 1.0 / self.num_steps
        for k in range(self.num_steps):
            s = torch.full((x0.shape[0],), k * ds, dtype=x0.dtype, device=x0.device)
            half = y + 0.5 * ds * self.velocity(y, x0, atom_types, s, lag_ps)
            y = y + ds * self.velocity(half, x0, atom_types, s + 0.5 * ds, lag_ps)
        return y

    @torch.jit.export
    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposal-contract sampling: (num_proposals, N, 3) float64 proposals and NaN log ratios."""
        dtype = self.rbf_centres.dtype
        centre = positions.mean(dim=0, keepdim=True)
        x0 = (positions - centre).to(dtype)[None].expand(num_proposals, -1, -1)
        lag = torch.full((num_proposals,), self.lag_ps, dtype=dtype)
        proposals = self.sample(x0, atom_types, lag).to(torch.float64) + centre
        return proposals, torch.full((num_proposals,), float("nan"), dtype=torch.float64)
