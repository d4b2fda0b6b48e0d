"""TITO over the slow coordinates: a lag-conditioned flow-matching model of each residue's
(phi, psi, chi1) at t + lag given the torsions at t, the residues' chemistry and the lag.

The Cartesian TITO model (:mod:`.tito`) must place every bond to about 0.002 nm and does not train
on CPUs; this one generates only torsions, which carry the slow dynamics of a peptide, and moves
the molecule to them by rigid turns about the torsion bonds (as :mod:`.backbone`'s pivots do), so
bond lengths and angles stay as they were. The integrator then relaxes the fast coordinates with
hybrid Monte Carlo in the same ``Context`` (``TitoIntegrator``), as TITO's authors relax
generated samples with short MD.

Model. Each residue with a rotatable psi (found from the bond graph, as in :mod:`.backbone`) is a
token: its chemistry features (``residues.residue_features``), which of its torsions exist
(phi is fixed in proline's ring, chi1 absent in Gly and Ala), sin/cos of its torsions at t and the
lag (log scale). Two networks of the same shape (residual layers that mix each token with its
chain neighbours and the molecule mean) read them:

- the *jump* network gives each residue's probabilities of being in each Ramachandran basin
  (``analysis.basins``) after the lag, trained by cross-entropy: the slow, rare basin changes get
  calibrated probabilities, which a flow alone learns poorly (measured: a flow trained for 2,000
  steps flipped phi within 500 ps 18% of the time where MD never did);
- the *field* also reads the flowing torsions y, the flow time s and the target basins, and gives
  dy/ds per torsion.

A move draws each residue's basin, integrates the field for ``candidates`` samples at once, and
gives each residue the first sample in its basin (it keeps its torsions if none is).

Thermodynamic consistency (optional, ``set_basin_populations``). The rare basin changes (phi > 0
in most residues) are entered a handful of times in any affordable MD data, so the jump network
learns them poorly, and a chain of its moves settles in wrong basin populations. Given each
residue's equilibrium basin populations pi (from an exact sampler, e.g. a Timewarp run of the same
peptide), a residue's basin change b -> b' is kept with probability
min(1, pi(b') q(b | y') / (pi(b) q(b' | y))), q the jump network's probabilities at the torsions
y before and y' after the move; a refused residue keeps its torsions. This is a Metropolis test
on the basin labels with q as the proposal: the basin chain obeys detailed balance with respect
to pi, each rate being the smaller of the learned one and the one the way back implies. It fixes
the basin populations, not the exactness of the whole chain.

Flow matching on the flat torus: y(0) = wrap(torsions at t + sigma * normal noise), the path
y(s) = wrap(y0 + s * wrap(y1 - y0)) to the data y1 = torsions at t + lag, target velocity
wrap(y1 - y0). Sampling integrates dy/ds with ``num_steps`` midpoint steps. A base centred on the
present torsions (TITO's choice too) keeps the model's errors local: from a uniform base, the
small errors of a briefly trained field spread probability over the whole torus, and a chain of
moves then drifts into basins MD rarely visits (measured: phi > 0 populated 20% instead of 3%).

The model has no tractable density (``exact_density`` False): it is a surrogate of the dynamics,
never a Metropolis-Hastings proposal. Its moves keep bond lengths and angles, so the exported file
recommends a hybrid Monte Carlo move after every step (``needs_fast_coordinate_moves``).
"""

import dataclasses
import math
from typing import Any, List, Tuple

import torch
from torch import Tensor, nn

from .backbone import BackboneProposal
from .geometry import dihedral, wrap_angle
from .kernel import KernelConfig, ProposalKernel
from .side_chains import turn_torsion_rows
from .tito import _fourier  # the same time features as the Cartesian model

__all__ = ["TorsionTitoConfig", "TorsionTito", "TORSIONS"]

TORSIONS = ("phi", "psi", "chi1")
"""The torsions of each residue the model generates, in the order of its columns."""
NUM_BASINS = 4
"""Basins of the Ramachandran plane the jumps choose among (``analysis.basins``)."""


@dataclasses.dataclass
class TorsionTitoConfig(KernelConfig):
    """Settings of a :class:`TorsionTito`: its constructor arguments, ``lag_ps`` the lag it proposes."""

    elements: List[str]
    hidden: int = 128
    layers: int = 4
    min_lag_ps: float = 10.0
    max_lag_ps: float = 1000.0
    num_steps: int = 20
    lag_ps: float = 100.0
    base_scale_rad: float = 0.5
    jump_hidden: int = 32
    candidates: int = 8


class _ResidueNet(nn.Module):
    """Residue tokens -> per-residue outputs: an embedding, residual layers that mix each token with
    its chain neighbours and the molecule mean, and a linear head."""

    def __init__(self, n_in: int, hidden: int, layers: int, n_out: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.embed = nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.mix = nn.ModuleList([nn.Sequential(nn.Linear(4 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
                                  for _ in range(layers)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden) for _ in range(layers)])
        self.head = nn.Linear(hidden, n_out)

    def forward(self, tokens: Tensor, present: Tensor, neighbours: Tensor) -> Tensor:
        """Outputs (B, R, n_out) of ``tokens`` (B, R, n_in); ``present`` (B, R, 1) is 0 for padding,
        ``neighbours`` (B, R, 2) the previous and next residue (R: none)."""
        r = tokens.shape[1]
        h = self.embed(tokens)
        count = present.sum(1, keepdim=True).clamp(min=1.0)
        for layer, norm in zip(self.mix, self.norms):
            padded = torch.cat([h, torch.zeros_like(h[:, :1])], 1)
            previous = torch.gather(padded, 1, neighbours[:, :, 0:1].expand(-1, -1, self.hidden))
            following = torch.gather(padded, 1, neighbours[:, :, 1:2].expand(-1, -1, self.hidden))
            mean = ((h * present).sum(1, keepdim=True) / count).expand(-1, r, -1)
            h = h + layer(torch.cat([norm(h), previous, following, mean], -1))
        return self.head(h)


def basins_of(torsions: Tensor) -> Tensor:
    """Basin index (..., R) of :data:`~openmm_timewarp.analysis.basins.BASIN_NAMES` (beta, alpha_R,
    alpha_L, PII_L) of torsions (..., R, 3) rad; the boundaries of ``analysis.basins``."""
    phi, psi = torsions[..., 0] * (180.0 / math.pi), torsions[..., 1] * (180.0 / math.pi)
    alpha_r = (psi >= -120.0) & (psi < 50.0)
    alpha_l = (psi >= -110.0) & (psi < 100.0)
    negative = torch.where(alpha_r, torch.ones_like(phi), torch.zeros_like(phi))
    positive = torch.where(alpha_l, torch.full_like(phi, 2.0), torch.full_like(phi, 3.0))
    return torch.where(phi < 0.0, negative, positive).to(torch.int64)


class TorsionTito(ProposalKernel):
    """Lag-conditioned generator of residue torsions, applied to the molecule by rigid turns.

    Parameters
    ----------
    elements
        Element symbols that atom types index into.
    hidden, layers
        Width and number of the residual layers.
    min_lag_ps, max_lag_ps
        Range of lags the model is trained for.
    num_steps
        Midpoint steps of the sampling ODE.
    lag_ps
        Lag of :meth:`propose` (``set_lag_ps`` changes it within the trained range).
    base_scale_rad
        Width of the base distribution, a normal about the torsions at t (wrapped).
    jump_hidden
        Width of the jump network (small: rare jumps are few in any data set, and a wide network
        learns them by heart).
    candidates
        Samples of the field integrated at once per move, of which each residue takes the first in
        its basin (more: fewer residues left where they were; fewer: a cheaper move).
    """

    kind = "tito-torsion"
    config_class = TorsionTitoConfig
    changes_geometry = False
    exact_density = False
    adjustable_lag = True
    balances_basins = True
    cached_molecule: List[Tensor]  # declared for TorchScript, which cannot type an empty list

    def __init__(self, elements: List[str], hidden: int = 128, layers: int = 4, min_lag_ps: float = 10.0,
                 max_lag_ps: float = 1000.0, num_steps: int = 20, lag_ps: float = 100.0,
                 base_scale_rad: float = 0.5, jump_hidden: int = 32, candidates: int = 8) -> None:
        super().__init__()
        if not 0 < min_lag_ps < max_lag_ps:
            raise ValueError(f"need 0 < min_lag_ps < max_lag_ps, got {min_lag_ps}, {max_lag_ps}")
        if num_steps < 1 or candidates < 1:
            raise ValueError(f"need at least one ODE step and one candidate, got {num_steps} and {candidates}")
        self.element_symbols: List[str] = list(elements)
        self.hidden, self.num_layers, self.num_steps = int(hidden), int(layers), int(num_steps)
        self.jump_hidden = int(jump_hidden)
        self.min_lag_ps, self.max_lag_ps, self.lag_ps = float(min_lag_ps), float(max_lag_ps), float(lag_ps)
        self.base_scale = float(base_scale_rad)
        # Residues, torsions and chemistry come from the backbone kernel's bond-graph search (its
        # density is not used).
        self.finder = BackboneProposal(list(elements))
        features = self.finder.num_features()
        n = len(TORSIONS)
        # The basin each residue jumps to (a classifier: rare jumps get calibrated probabilities), then
        # the torsions within those basins (the flow's field, told the target basins).
        self.jump = _ResidueNet(features + n + 2 * n + 8, jump_hidden, layers, NUM_BASINS)
        self.field = _ResidueNet(features + n + 4 * n + NUM_BASINS + 16, hidden, layers, n)
        self.candidates = int(candidates)
        self.num_basins = NUM_BASINS  # TorchScript reads no globals
        self.cached_molecule: List[Tensor] = []
        self.cached_graph = torch.zeros(0, 0, dtype=torch.bool)
        # log pi (R, 4) of set_basin_populations; no rows: no basin-level correction.
        self.basin_log_populations = torch.zeros(0, NUM_BASINS, dtype=torch.float64)

    def to_config(self) -> TorsionTitoConfig:
        """The model's settings, with the lag it proposes now."""
        return TorsionTitoConfig(self.element_symbols, self.hidden, self.num_layers, self.min_lag_ps,
                                 self.max_lag_ps, self.num_steps, self.lag_ps, self.base_scale, self.jump_hidden,
                                 self.candidates)

    @classmethod
    def from_config(cls, config: Any) -> "TorsionTito":
        """An untrained model with the settings ``config`` (a :class:`TorsionTitoConfig` or its dict)."""
        return cls(**dataclasses.asdict(cls.parse_config(config)))

    def available(self, positions: Tensor, atom_types: Tensor) -> bool:
        """Whether the molecule has a residue with a rotatable psi."""
        return self.finder.available(positions, atom_types)

    def molecule(self, positions: Tensor, atom_types: Tensor) -> List[Tensor]:
        """What the model needs from the bond graph of ``positions`` (cached per bond graph):

        0. residue features (R, F); 1. which torsions exist (R, 3) float (0 or 1);
        2. chain neighbours (R, 2): the previous and next residue, R where there is none;
        3. torsion atoms (R, 3, 4), IUPAC order; 4. the bond (b, c) of each torsion (R, 3, 2), turned
           by rotating 5. its moving side (R, 3, N) about b -> c.
        """
        backbone, sides, features = self.finder.residues(positions, atom_types)
        graph = self.finder.cached_graph
        if self.cached_graph.shape == graph.shape and bool(torch.equal(self.cached_graph, graph)):
            return self.cached_molecule
        r, n = backbone.shape[0], positions.shape[0]
        chi1, chi_sides = self.finder.cached_chi1, self.finder.cached_chi_sides
        has_chi = chi1[:, 0] >= 0
        mask = torch.stack([sides[:, 0].any(1), torch.ones(r, dtype=torch.bool), has_chi], 1).to(torch.float64)
        neighbours = torch.full((r, 2), r, dtype=torch.int64)
        for i in range(r):
            for j in range(r):
                if int(backbone[i, 4]) == int(backbone[j, 1]):
                    neighbours[i, 1] = j
                    neighbours[j, 0] = i
        chi_atoms = torch.where(has_chi[:, None], chi1[:, :4], backbone[:, 1:5])
        quads = torch.stack([backbone[:, 0:4], backbone[:, 1:5], chi_atoms], 1)
        bonds = torch.stack([backbone[:, [2, 1]], backbone[:, [2, 3]], torch.where(has_chi[:, None], chi1[:, 1:3],
                                                                                    backbone[:, [2, 3]])], 1)
        chi_side = torch.zeros(r, n, dtype=torch.bool)
        for i in range(r):
            if bool(has_chi[i]):
                chi_side[i] = chi_sides[int(chi1[i, 4])]
        moving = torch.stack([sides[:, 0], sides[:, 1], chi_side], 1)
        self.cached_graph = graph
        self.cached_molecule = [features, mask, neighbours, quads, bonds, moving]
        return self.cached_molecule

    def torsions(self, x: Tensor, quads: Tensor) -> Tensor:
        """Torsions (..., R, 3) rad of positions ``x`` (..., N, 3), IUPAC sign (as mdtraj and OpenMM)."""
        p = [x.index_select(-2, quads[:, :, i].flatten()) for i in range(4)]
        angles = -dihedral(p[0], p[1], p[2], p[3])
        return angles.reshape(angles.shape[:-1] + quads.shape[:2])

    def lag_feature(self, lag_ps: Tensor) -> Tensor:
        """Position of each lag on the log scale of the trained range, 0 at the minimum, 1 at the maximum."""
        return (torch.log(lag_ps) - math.log(self.min_lag_ps)) / (math.log(self.max_lag_ps) - math.log(self.min_lag_ps))

    def jump_logits(self, now: Tensor, features: Tensor, mask: Tensor, neighbours: Tensor, lag_ps: Tensor) -> Tensor:
        """Log-probabilities (B, R, 4) of the basin each residue is in after the lag, given the
        torsions ``now`` (B, R, 3); a residue whose phi cannot turn (proline) keeps phi's sign."""
        angles = torch.cat([torch.sin(now), torch.cos(now)], -1) * mask.repeat(1, 1, 2)
        time = _fourier(self.lag_feature(lag_ps), 4)
        tokens = torch.cat([features, mask, angles, time[:, None].expand(-1, now.shape[1], -1)], -1)
        logits = self.jump(tokens, mask[:, :, 1:2], neighbours)
        phi_negative = (now[..., 0] < 0.0)[..., None]
        basin_negative = torch.tensor([True, True, False, False], device=now.device)
        allowed = (mask[..., 0:1] > 0) | (phi_negative == basin_negative)
        logits = torch.where(allowed, logits, torch.full_like(logits, -1e9))
        return torch.log_softmax(logits, -1)

    def velocity(self, y: Tensor, now: Tensor, target: Tensor, features: Tensor, mask: Tensor, neighbours: Tensor,
                 s: Tensor, lag_ps: Tensor) -> Tensor:
        """dy/ds (B, R, 3) at flow time ``s`` (B,) of torsions ``y`` (B, R, 3) given the torsions
        ``now`` (B, R, 3), the target basins ``target`` (B, R) and lags (B,) ps; ``features``
        (B, R, F), ``mask`` (B, R, 3) and ``neighbours`` (B, R, 2) as :meth:`molecule` gives them
        (index R: none; a padded residue has an all-zero mask)."""
        r = y.shape[1]
        time = torch.cat([_fourier(s, 4), _fourier(self.lag_feature(lag_ps), 4)], -1)
        angles = torch.cat([torch.sin(now), torch.cos(now), torch.sin(y), torch.cos(y)], -1) * mask.repeat(1, 1, 4)
        basin = nn.functional.one_hot(target, self.num_basins).to(y.dtype)
        tokens = torch.cat([features, mask, angles, basin, time[:, None].expand(-1, r, -1)], -1)
        return self.field(tokens, mask[:, :, 1:2], neighbours) * mask

    @torch.jit.export
    def set_lag_ps(self, lag_ps: float) -> None:
        """Lag of later proposals; it must lie in the trained range."""
        if not self.min_lag_ps <= lag_ps <= self.max_lag_ps:
            raise ValueError(f"lag {lag_ps} ps is outside the trained range [{self.min_lag_ps}, {self.max_lag_ps}] ps")
        self.lag_ps = float(lag_ps)

    @torch.jit.export
    def set_basin_populations(self, populations: Tensor) -> None:
        """Equilibrium basin populations (R, 4) of the residues of the molecule to be moved, in the
        order of :data:`~openmm_timewarp.analysis.basins.BASIN_NAMES` (beta, alpha_R, alpha_L, PII_L)
        and of the residues along the chain; each row is normalised. Later moves keep a residue's
        basin change only with the probability of the module docstring. An empty (0, 4)
        tensor switches the correction off."""
        if populations.dim() != 2 or populations.shape[1] != self.num_basins:
            raise ValueError(f"basin populations must have shape (residues, {self.num_basins})")
        p = populations.to(torch.float64)
        if bool((p < 0).any()) or bool((p.sum(1) <= 0).any()) or not bool(torch.isfinite(p).all()):
            raise ValueError("basin populations must be finite, non-negative, with a positive total per residue")
        # A basin of population 0 is never entered; clamping keeps 0/0 out of the ratio.
        self.basin_log_populations = torch.log((p / p.sum(1, keepdim=True)).clamp(min=1e-12))

    @torch.jit.export
    def basin_populations(self) -> Tensor:
        """The populations of :meth:`set_basin_populations` (empty if none)."""
        return torch.exp(self.basin_log_populations)

    def balance_basins(self, now: Tensor, new: Tensor, features: Tensor, mask: Tensor, neighbours: Tensor,
                       lag_ps: Tensor) -> Tensor:
        """``new`` (B, R, 3) with each residue's basin change kept with probability
        min(1, pi(b') q(b | new) / (pi(b) q(b' | now))); a refused residue keeps its torsions ``now``.

        If the bond graph shows another number of residues than the populations were set for (a
        close contact read as a bond makes a ring, and a residue's psi no longer turns), nothing
        moves: ``now`` is returned. ``TitoIntegrator`` checks the count against the topology."""
        if self.basin_log_populations.shape[0] != now.shape[1]:
            return now
        before, after = basins_of(now), basins_of(new)
        log_pi = self.basin_log_populations.to(now.dtype)[None].expand(now.shape[0], -1, -1)
        forward = self.jump_logits(now, features, mask, neighbours, lag_ps)
        backward = self.jump_logits(new, features, mask, neighbours, lag_ps)
        into, out_of = after[..., None], before[..., None]
        log_ratio = (torch.gather(log_pi, -1, into) - torch.gather(log_pi, -1, out_of)
                     + torch.gather(backward, -1, out_of) - torch.gather(forward, -1, into))[..., 0]
        keep = (after == before) | (torch.log(torch.rand_like(log_ratio)) < log_ratio)
        return torch.where(keep[..., None], new, now)

    def sample(self, now: Tensor, features: Tensor, mask: Tensor, neighbours: Tensor, lag_ps: Tensor) -> Tensor:
        """Torsions (B, R, 3) at t + lag given ``now`` (B, R, 3): each residue's basin from
        :meth:`jump_logits`, then the torsions by midpoint steps of the field from the base
        distribution, ``candidates`` at once; each residue takes the first candidate that lies in
        its basin (if none does, it keeps its torsions). Torsions that do not exist keep theirs.
        With basin populations set, :meth:`balance_basins` then tests each residue's basin change."""
        b, r, k = now.shape[0], now.shape[1], self.candidates
        probabilities = torch.exp(self.jump_logits(now, features, mask, neighbours, lag_ps))
        target = torch.multinomial(probabilities.reshape(b * r, probabilities.shape[-1]), 1).reshape(b, r)
        y = self.integrate(now.repeat(k, 1, 1), target.repeat(k, 1), features.repeat(k, 1, 1), mask.repeat(k, 1, 1),
                           neighbours.repeat(k, 1, 1), lag_ps.repeat(k)).reshape(k, b, r, -1)
        hit = basins_of(y) == target[None]
        first = torch.argmax(hit.to(torch.int64), 0)
        chosen = torch.gather(y, 0, first[None, :, :, None].expand(1, -1, -1, y.shape[-1]))[0]
        found = hit.any(0)[..., None]
        new = torch.where((mask > 0) & found, chosen, now)
        if self.basin_log_populations.shape[0] > 0:
            new = self.balance_basins(now, new, features, mask, neighbours, lag_ps)
        return new

    def integrate(self, now: Tensor, target: Tensor, features: Tensor, mask: Tensor, neighbours: Tensor,
                  lag_ps: Tensor) -> Tensor:
        """Torsions (B, R, 3) from the base distribution about ``now`` by ``num_steps`` midpoint steps of
        the field towards the basins ``target`` (B, R)."""
        y = self.base_sample(now, mask)
        ds = 1.0 / self.num_steps
        for k in range(self.num_steps):
            s = torch.full((now.shape[0],), k * ds, dtype=now.dtype, device=now.device)
            half = wrap_angle(y + 0.5 * ds * self.velocity(y, now, target, features, mask, neighbours, s, lag_ps))
            y = wrap_angle(y + ds * self.velocity(half, now, target, features, mask, neighbours, s + 0.5 * ds,
                                                  lag_ps))
        return y

    def base_sample(self, now: Tensor, mask: Tensor) -> Tensor:
        """y(0): the torsions ``now`` plus normal noise of width ``base_scale_rad``, wrapped, where
        ``mask`` says they exist."""
        return torch.where(mask > 0, wrap_angle(now + self.base_scale * torch.randn_like(now)), now)

    def turn_to(self, x: Tensor, now: Tensor, new: Tensor, bonds: Tensor, moving: Tensor) -> Tensor:
        """Positions (B, N, 3) of ``x`` (N, 3) with each residue's torsions turned from ``now``
        (R, 3) to ``new`` (B, R, 3); the atom mean stays. Turning one torsion moves a whole side of
        the molecule rigidly, which keeps every other residue's torsions."""
        y = x[None].expand(new.shape[0], -1, -1)
        delta = wrap_angle(new - now[None])
        for i in range(new.shape[1]):
            for k in range(new.shape[2]):
                y = turn_torsion_rows(y, bonds[i, k][None].expand(new.shape[0], -1),
                                      moving[i, k][None].expand(new.shape[0], -1), delta[:, i, k])
        return y - y.mean(1, keepdim=True) + x.mean(0)

    @torch.jit.export
    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposal-contract sampling: (num_proposals, N, 3) float64 proposals and NaN log ratios."""
        x = positions.to(torch.float64)
        features, mask, neighbours, quads, bonds, moving = self.molecule(x, atom_types)
        if features.shape[0] == 0:
            raise ValueError("TorsionTito: the molecule has no residue with a rotatable psi")
        dtype = self.field.head.weight.dtype
        now = self.torsions(x, quads)
        b = num_proposals
        new = self.sample(now.to(dtype)[None].expand(b, -1, -1), features.to(dtype)[None].expand(b, -1, -1),
                          mask.to(dtype)[None].expand(b, -1, -1), neighbours[None].expand(b, -1, -1),
                          torch.full((b,), self.lag_ps, dtype=dtype))
        y = self.turn_to(x, now, new.to(torch.float64), bonds, moving)
        return y, torch.full((b,), float("nan"), dtype=torch.float64)
