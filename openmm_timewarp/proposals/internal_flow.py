"""Timewarp's augmented conditional RealNVP over internal-coordinate moves.

The Cartesian flow (``flow.py``) must reproduce every bond length to a few thousandths of a nm
before a proposal of a 22-atom peptide can be accepted; small CPU-sized flows miss that by far
(acceptance about 1e-73 on ACE-ALA-NME). This flow keeps Timewarp's design (augmented state,
couplings that alternate between the move and the auxiliaries, kernel attention over the atoms of
x(t), element embeddings only) but models the move in internal coordinates of a Z-matrix that the
model derives from x(t) itself (``zmatrix.py``): per atom a bond length, a bond angle and a
torsion, with the rigid-body frame kept fixed. Stiff bonds and angles then become nearly
independent one-dimensional targets, and the slow motions are a few torsions.

The move u (3 per atom, 3N - 6 in all) maps to new internal coordinates

    b' = b + s_b u_b,   a' = a + s_a u_a,   t' = wrap(t + pi tanh(s_t u_t / pi)),

with per-(element, coordinate, sibling-torsion) scales s. Proposals with b' <= 0, a' outside
(0, pi) or another bond graph are certain rejections (log_ratio = REJECT): from such a y the reverse move would
use another parametrisation, so rejecting them keeps the chain exact. The Cartesian density is the
internal-coordinate density divided by the Jacobian J of ``zmatrix``; the MH ratio of DESIGN.md
section 2 becomes

    log N(w) + log p(q, v | y) - log N(v) - log p(q', w | x) + log J(q') - log J(q).
"""
import dataclasses
import json
import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from .attention import KernelAttentionBlock, kernel_attention_weights, length_scale_tensor
from .geometry import COVALENT_RADII_NM, bond_graph, wrap_angle
from .kernel import KernelConfig, ProposalKernel
from .zmatrix import build_zmatrix, frame, log_jacobian, to_cartesian, to_internal


@dataclasses.dataclass
class InternalFlowConfig(KernelConfig):
    """Settings of an :class:`InternalTimewarpFlow`: its constructor arguments and the proposal
    kernels of :meth:`InternalTimewarpFlow.set_kernels` (weights of full, torsion, local)."""

    elements: List[str]
    hidden: int = 32
    num_couplings: int = 4
    num_geometry_couplings: int = 2
    num_blocks: int = 1
    embed_dim: int = 8
    length_scales: List[float] = dataclasses.field(default_factory=lambda: [0.15, 0.3, 0.6, 1.2])
    scale_limit: float = 3.0
    kernel_weights: List[float] = dataclasses.field(default_factory=lambda: [1.0, 0.0, 0.0])
    local_step: float = 0.1


class InternalTransformer(nn.Module):
    """Per-atom (log_scale, shift) of 3 coordinates from the context and the 6 held-fixed values."""

    def __init__(self, context_dim: int, hidden: int, num_blocks: int, num_heads: int, scale_limit: float) -> None:
        super().__init__()
        self.scale_limit = scale_limit
        self.context_proj = nn.Linear(context_dim, hidden)
        self.input_proj = nn.Linear(6, hidden, bias=False)
        self.blocks = nn.ModuleList([KernelAttentionBlock(hidden, num_heads) for _ in range(num_blocks)])
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, 6)
        # Start as the identity map so training begins from the base distribution.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, context: Tensor, fixed: Tensor, weights: Tensor) -> Tuple[Tensor, Tensor]:
        h = self.context_proj(context) + self.input_proj(fixed)
        for block in self.blocks:
            h = block(h, weights)
        out = self.head(self.norm(h))
        return self.scale_limit * torch.tanh(out[..., :3] / self.scale_limit), out[..., 3:]


class MaskedCoupling(nn.Module):
    """Affine update of the move coordinates selected by ``target`` (3 per atom) or, when
    ``target`` is None, of the auxiliaries, given the context and the coordinates in ``given``."""

    def __init__(self, context_dim: int, hidden: int, num_blocks: int, num_heads: int, scale_limit: float,
                 target: Optional[List[float]], given: List[float], given_auxiliary: bool) -> None:
        super().__init__()
        self.net = InternalTransformer(context_dim, hidden, num_blocks, num_heads, scale_limit)
        self.update_auxiliary = target is None
        self.register_buffer("target", torch.tensor([1.0, 1.0, 1.0] if target is None else target))
        self.register_buffer("given", torch.tensor(given))
        self.given_auxiliary = given_auxiliary

    def forward(self, u: Tensor, v: Tensor, context: Tensor, weights: Tensor, dims: Tensor,
                inverse: bool) -> Tuple[Tensor, Tensor, Tensor]:
        """Generative update (or its inverse) of (u, v); returns them and log|det forward| (B,)."""
        fixed_v = v if self.given_auxiliary else torch.zeros_like(v)
        params = self.net(context, torch.cat([u * (dims * self.given), fixed_v], -1), weights)
        if self.update_auxiliary:
            v, log_det = _affine(v, torch.ones_like(v), params, inverse)
        else:
            u, log_det = _affine(u, dims * self.target, params, inverse)
        return u, v, log_det


def _affine(target: Tensor, part: Tensor, params: Tuple[Tensor, Tensor], inverse: bool) -> Tuple[Tensor, Tensor]:
    """Affine update of the coordinates selected by ``part``; returns them and log|det forward| (B,)."""
    log_scale, shift = params[0] * part, params[1] * part
    if inverse:
        out = (target - shift) * torch.exp(-log_scale)
    else:
        out = target * torch.exp(log_scale) + shift
    return out, log_scale.sum((1, 2), dtype=torch.float64)


class InternalTimewarpFlow(ProposalKernel):
    """Conditional augmented flow of internal-coordinate moves, p(q', w | x), and its MH proposals.

    The generative direction first runs ``num_couplings`` pairs of (torsions given auxiliaries,
    auxiliaries given torsions), then ``num_geometry_couplings`` pairs of (bonds given angles,
    angles given bonds), both also given the torsions and auxiliaries. Nothing upstream depends on
    bonds and angles, so the torsion-and-auxiliary marginal p(t', w | x) is exact on its own.
    That allows three proposal kernels, one picked at random per proposal with fixed
    ``kernel_weights`` (a random-scan mixture of reversible kernels, so MH stays exact):

    - ``full``: every internal coordinate from the flow;
    - ``torsion``: torsions from the flow, bonds and angles kept (their small strain after a
      torsion move costs far less than proposing 40 stiff coordinates at once);
    - ``local``: a symmetric Gaussian random walk of bonds and angles, ``local_step`` times the
      learned move scale, torsions kept; it keeps the stiff coordinates mixing.

    Parameters
    ----------
    elements : list of str
        Element symbols; ``atom_types`` index into this list. Each needs a covalent radius.
    hidden, num_couplings, num_geometry_couplings, num_blocks, embed_dim : int
        Network width, torsion coupling pairs, bond/angle coupling pairs, attention blocks per
        network, element embedding width.
    length_scales : list of float
        Kernel attention length scales, nm, one head each.
    scale_limit : float
        Bound on each coupling's log-scale.
    """

    def __init__(self, elements: List[str], hidden: int = 32, num_couplings: int = 4, num_geometry_couplings: int = 2,
                 num_blocks: int = 1, embed_dim: int = 8, length_scales: Optional[List[float]] = None,
                 scale_limit: float = 3.0) -> None:
        super().__init__()
        length_scales = [0.15, 0.3, 0.6, 1.2] if length_scales is None else list(length_scales)
        unknown = [e for e in elements if e not in COVALENT_RADII_NM]
        if unknown:
            raise ValueError(f"no covalent radius for elements {unknown}")
        self.config_json = json.dumps(dict(
            elements=list(elements), hidden=hidden, num_couplings=num_couplings,
            num_geometry_couplings=num_geometry_couplings, num_blocks=num_blocks, embed_dim=embed_dim,
            length_scales=length_scales, scale_limit=scale_limit))
        self.element_symbols = list(elements)
        self.register_buffer("radii", torch.tensor([COVALENT_RADII_NM[e] for e in elements], dtype=torch.float64))
        self.register_buffer("is_heavy", torch.tensor([e != "H" for e in elements]))
        self.register_buffer("length_scales", length_scale_tensor(length_scales))
        self.register_buffer("kernel_weights", torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
        self.local_step = 0.1
        # The Z-matrix of the last bond graph seen: rebuilding it costs about 10 ms per call.
        self.cached_graph = torch.zeros(0, 0, dtype=torch.bool)
        self.cached_types = torch.zeros(0, dtype=torch.int64)
        self.cached_zmatrix = torch.zeros(0, 5, dtype=torch.int64)
        # index len(elements) stands for "no reference atom"
        self.embedding = nn.Embedding(len(elements) + 1, embed_dim)
        # log of the move scale per (element, sibling-torsion flag, coordinate), set from data
        self.log_scale_table = nn.Parameter(torch.zeros(len(elements), 2, 3))
        context_dim = 4 * embed_dim + 4 + 4
        heads = len(length_scales)

        def coupling(target: Optional[List[float]], given: List[float], given_auxiliary: bool) -> MaskedCoupling:
            return MaskedCoupling(context_dim, hidden, num_blocks, heads, scale_limit, target, given, given_auxiliary)

        torsion: List[nn.Module] = []
        for _ in range(num_couplings):
            torsion += [coupling([0.0, 0.0, 1.0], [0.0, 0.0, 0.0], True), coupling(None, [0.0, 0.0, 1.0], False)]
        geometry: List[nn.Module] = []
        for _ in range(num_geometry_couplings):
            geometry += [coupling([1.0, 0.0, 0.0], [0.0, 1.0, 1.0], True), coupling([0.0, 1.0, 0.0], [1.0, 0.0, 1.0], True)]
        self.torsion_layers = nn.ModuleList(torsion)
        self.geometry_layers = nn.ModuleList(geometry)
        # The same modules in inverse order: TorchScript cannot iterate a ModuleList backwards.
        self.torsion_layers_reversed = nn.ModuleList(list(reversed(torsion)))
        self.geometry_layers_reversed = nn.ModuleList(list(reversed(geometry)))

    kind = "internal"
    config_class = InternalFlowConfig

    def to_config(self) -> InternalFlowConfig:
        """The flow's settings: constructor arguments, kernel weights and local step."""
        return InternalFlowConfig(**json.loads(self.config_json), kernel_weights=self.kernel_weights.tolist(),
                                  local_step=self.local_step)

    @classmethod
    def from_config(cls, config) -> "InternalTimewarpFlow":
        """An untrained flow with the settings ``config`` (an :class:`InternalFlowConfig` or its dict)."""
        values = dataclasses.asdict(cls.parse_config(config))
        weights, step = values.pop("kernel_weights"), values.pop("local_step")
        flow = cls(**values)
        flow.set_kernels(*weights, local_step=step)
        return flow

    def moves_geometry(self) -> bool:
        """Whether the full or the local kernel, which change bonds and angles, has a positive weight."""
        return bool(self.kernel_weights[0] > 0 or self.kernel_weights[2] > 0)

    def set_kernels(self, full: float, torsion: float, local: float, local_step: float) -> None:
        """Probabilities of the three proposal kernels (normalised here) and the local step fraction."""
        weights = torch.tensor([full, torsion, local], dtype=torch.float64)
        if (weights < 0).any() or weights.sum() <= 0 or local_step <= 0:
            raise ValueError(f"invalid kernel weights {weights.tolist()} or local step {local_step}")
        self.kernel_weights.copy_(weights / weights.sum())
        self.local_step = float(local_step)

    def zmatrix(self, positions: Tensor, atom_types: Tensor) -> Tensor:
        """Z-matrix (N, 5) of one configuration (N, 3); see :func:`zmatrix.build_zmatrix`."""
        adjacency = bond_graph(positions.to(torch.float64), self.radii[atom_types])
        if (self.cached_graph.shape == adjacency.shape and bool(torch.equal(self.cached_graph, adjacency))
                and bool(torch.equal(self.cached_types, atom_types))):
            return self.cached_zmatrix
        zm = build_zmatrix(adjacency, self.is_heavy[atom_types])
        self.cached_graph, self.cached_types, self.cached_zmatrix = adjacency, atom_types.clone(), zm
        return zm

    def context(self, internal: Tensor, positions: Tensor, atom_types: Tensor, zmatrix: Tensor) -> Tuple[Tensor, Tensor]:
        """Per-atom context (B, N, C) and attention weights (B, H, N, N) of the conditioning state.

        Per atom: embeddings of the atom and of its three reference atoms (the chemistry of its
        bond, angle and torsion), its current bond, angle, cos and sin of the torsion, and flags
        for which coordinates exist and whether the torsion is a sibling offset. Everything is
        invariant under rigid motions.
        """
        batch, n = internal.shape[0], internal.shape[1]
        none = torch.full_like(atom_types, len(self.element_symbols))
        refs = [atom_types]
        for column in range(3):
            index = zmatrix[:, column]
            refs.append(torch.where(index >= 0, atom_types[index.clamp(min=0)], none))
        embedded = torch.cat([self.embedding(r) for r in refs], -1)
        dims = (zmatrix[:, :3] >= 0).to(torch.float32)
        q = internal.to(torch.float32)
        geometry = torch.stack([q[..., 0] * 10.0, q[..., 1], torch.cos(q[..., 2]), torch.sin(q[..., 2])], -1)
        geometry = geometry * torch.cat([dims, dims[:, 2:3]], -1)
        flags = torch.cat([dims, zmatrix[:, 4:5].to(torch.float32)], -1)
        static = torch.cat([embedded, flags], -1)
        features = torch.cat([static[None].expand(batch, n, static.shape[-1]), geometry], -1)
        mask = torch.ones(batch, n, dtype=torch.float32, device=positions.device)
        weights = kernel_attention_weights(positions.to(torch.float32), mask, self.length_scales)
        return features, weights

    def move_log_scales(self, atom_types: Tensor, zmatrix: Tensor) -> Tensor:
        """Log move scales (N, 3): bond (nm), angle and torsion (rad)."""
        return self.log_scale_table[atom_types, zmatrix[:, 4]].to(torch.float64)

    def generate(self, z_u: Tensor, z_v: Tensor, context: Tensor, weights: Tensor,
                 dims: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Base samples -> (u, w); log|det| of the torsion part and of the bond/angle part (B,) float64."""
        log_det_t = torch.zeros(z_u.shape[0], dtype=torch.float64, device=z_u.device)
        log_det_g = torch.zeros_like(log_det_t)
        u, v = z_u, z_v
        for layer in self.torsion_layers:
            u, v, ld = layer(u, v, context, weights, dims, False)
            log_det_t = log_det_t + ld
        for layer in self.geometry_layers:
            u, v, ld = layer(u, v, context, weights, dims, False)
            log_det_g = log_det_g + ld
        return u, v, log_det_t, log_det_g

    def normalise(self, u: Tensor, w: Tensor, context: Tensor, weights: Tensor,
                  dims: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Inverse of :meth:`generate`; returns base variables and both log|det| of the generative map."""
        log_det_t = torch.zeros(u.shape[0], dtype=torch.float64, device=u.device)
        log_det_g = torch.zeros_like(log_det_t)
        z, v = u, w
        for layer in self.geometry_layers_reversed:
            z, v, ld = layer(z, v, context, weights, dims, True)
            log_det_g = log_det_g + ld
        for layer in self.torsion_layers_reversed:
            z, v, ld = layer(z, v, context, weights, dims, True)
            log_det_t = log_det_t + ld
        return z, v, log_det_t, log_det_g

    def apply_move(self, internal: Tensor, u: Tensor, log_scales: Tensor, dims: Tensor) -> Tuple[Tensor, Tensor]:
        """New internal coordinates from the move u, and log|dq'/du| per coordinate (B, N, 3) float64."""
        step = u.to(torch.float64) * torch.exp(log_scales)
        squashed = math.pi * torch.tanh(step[..., 2] / math.pi)
        new = internal + torch.stack([step[..., 0], step[..., 1], squashed], -1)
        new = torch.stack([new[..., 0], new[..., 1], wrap_angle(new[..., 2])], -1) * dims
        return new, _move_log_det(log_scales, torch.log1p(-torch.tanh(step[..., 2] / math.pi) ** 2), dims)

    def recover_move(self, internal: Tensor, target: Tensor, log_scales: Tensor, dims: Tensor) -> Tuple[Tensor, Tensor]:
        """Inverse of :meth:`apply_move`: the move u from ``internal`` to ``target``, and log|dq'/du|."""
        delta = target - internal
        torsion = wrap_angle(delta[..., 2]) / math.pi
        # |torsion| < 1 except for a move of exactly pi, which has density zero (atanh = inf).
        step_t = math.pi * torch.atanh(torsion)
        step = torch.stack([delta[..., 0], delta[..., 1], step_t], -1) * dims
        u = step * torch.exp(-log_scales) * dims
        return u, _move_log_det(log_scales, torch.log1p(-torsion ** 2), dims)

    def log_prob_internal(self, x_t: Tensor, internal_tau: Tensor, w: Tensor, atom_types: Tensor,
                          zmatrix: Tensor) -> Tensor:
        """log p(q(x_tau), w | x_t) in internal coordinates (B,), float64, for training.

        ``x_t`` (B, N, 3) nm of one molecule, ``internal_tau`` its target internal coordinates
        (B, N, 3), ``w`` auxiliaries (B, N, 3), ``atom_types`` (N,), ``zmatrix`` (N, 5).
        """
        dims = (zmatrix[:, :3] >= 0).to(torch.float64)
        internal_t = to_internal(x_t.to(torch.float64), zmatrix)
        context, weights = self.context(internal_t, x_t, atom_types, zmatrix)
        u, log_det_move = self.recover_move(internal_t, internal_tau.to(torch.float64),
                                            self.move_log_scales(atom_types, zmatrix), dims)
        z_u, z_v, log_det_t, log_det_g = self.normalise(u.to(torch.float32), w.to(torch.float32), context, weights,
                                                        dims.to(torch.float32))
        return (_normal_log_prob(z_u, dims) + _normal_log_prob(z_v, torch.ones_like(dims))
                - log_det_t - log_det_g - log_det_move.sum((1, 2)))

    def log_volume(self, internal: Tensor, zmatrix: Tensor) -> Tensor:
        """log J: Cartesian volume per internal-coordinate volume, (B,) (see ``zmatrix``)."""
        return log_jacobian(internal, zmatrix)

    def flow_moves(self, flow_kind: Tensor, z_u: Tensor, z_v: Tensor, v: Tensor, internal: Tensor, context: Tensor,
                   weights: Tensor, atom_types: Tensor, zm: Tensor,
                   frame_x: Tuple[Tensor, Tensor, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """The full (``flow_kind`` 0) or torsion-only (1) flow moves (B,) from the base draws
        ``z_u``, ``z_v`` and the current auxiliaries ``v`` (B, N, 3) of the state with internal
        coordinates ``internal`` (N, 3), its context and the frame (origin, e1, e2) of x.

        Returns the new internal coordinates and positions (B, N, 3) and their log MH ratios (B,).
        """
        dims = (zm[:, :3] >= 0).to(torch.float64)
        torsion_dims = dims * torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        geometry_dims = dims - torsion_dims
        dims32 = dims.to(torch.float32)
        log_scales = self.move_log_scales(atom_types, zm)
        u, w, log_det_t, log_det_g = self.generate(z_u, z_v, context, weights, dims32)
        flow_internal, move_det = self.apply_move(internal, u, log_scales, dims)
        torsion_only = internal * geometry_dims + flow_internal * torsion_dims
        moved = torch.where(flow_kind[:, None, None] == 0, flow_internal, torsion_only)
        moved_y = to_cartesian(moved, zm, frame_x[0], frame_x[1], frame_x[2])

        # Reverse moves y -> x, conditioned on each proposal, with the current v as auxiliary.
        internal_y = to_internal(moved_y, zm)
        context_r, weights_r = self.context(internal_y, moved_y, atom_types, zm)
        u_r, move_det_r = self.recover_move(internal_y, internal[None].expand_as(internal_y), log_scales, dims)
        z_u_r, z_v_r, log_det_t_r, log_det_g_r = self.normalise(u_r.to(torch.float32), v, context_r, weights_r,
                                                                dims32)
        ones = torch.ones_like(dims)
        aux = _normal_log_prob(w, ones) - _normal_log_prob(v, ones)
        torsion_forward = (_normal_log_prob(z_u, torsion_dims) + _normal_log_prob(z_v, ones)
                           - log_det_t - (move_det * torsion_dims).sum((1, 2)))
        torsion_reverse = (_normal_log_prob(z_u_r, torsion_dims) + _normal_log_prob(z_v_r, ones)
                           - log_det_t_r - (move_det_r * torsion_dims).sum((1, 2)))
        geometry_forward = (_normal_log_prob(z_u, geometry_dims) - log_det_g - (move_det * geometry_dims).sum((1, 2)))
        geometry_reverse = (_normal_log_prob(z_u_r, geometry_dims) - log_det_g_r
                            - (move_det_r * geometry_dims).sum((1, 2)))
        volume = self.log_volume(moved, zm) - self.log_volume(internal, zm)
        full_ratio = aux + torsion_reverse + geometry_reverse - torsion_forward - geometry_forward + volume
        torsion_ratio = aux + torsion_reverse - torsion_forward
        return moved, moved_y, torch.where(flow_kind == 0, full_ratio, torsion_ratio)

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposals (B, N, 3) in the frame of ``positions`` (N, 3) and their log MH ratios (B,) float64."""
        x = positions.to(torch.float64)
        zm = self.zmatrix(x, atom_types)
        dims = (zm[:, :3] >= 0).to(torch.float64)
        torsion_dims = dims * torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
        geometry_dims = dims - torsion_dims
        dims32 = dims.to(torch.float32)
        log_scales = self.move_log_scales(atom_types, zm)
        internal = to_internal(x, zm)
        context, weights = self.context(internal[None], x[None], atom_types, zm)

        n = x.shape[0]
        kind = torch.multinomial(self.kernel_weights, num_proposals, replacement=True)
        z_u = torch.randn(num_proposals, n, 3, dtype=torch.float32, device=x.device) * dims32
        z_v = torch.randn(num_proposals, n, 3, dtype=torch.float32, device=x.device)
        v = torch.randn(num_proposals, n, 3, dtype=torch.float32, device=x.device)
        # Kernel 2 (local): a symmetric random walk of bonds and angles; its ratio is log J(q') - log J(q).
        # Each row is built in Cartesian coordinates once, by its own kernel.
        new_internal = internal + z_u.to(torch.float64) * self.local_step * torch.exp(log_scales) * geometry_dims
        origin, e1, e2 = frame(x, zm)
        proposals = x[None].repeat(num_proposals, 1, 1)
        log_ratio = torch.zeros(num_proposals, dtype=torch.float64, device=x.device)
        local = torch.nonzero(kind == 2).flatten()
        if local.numel() > 0:
            stepped = new_internal[local]
            proposals = proposals.index_copy(0, local, to_cartesian(stepped, zm, origin, e1, e2))
            log_ratio = log_ratio.index_copy(0, local, self.log_volume(stepped, zm) - self.log_volume(internal, zm))

        # Kernels 0 (full) and 1 (torsions only) run the flow; only their rows pay for it.
        rows = torch.nonzero(kind < 2).flatten()
        if rows.numel() > 0:
            moved, moved_y, ratio = self.flow_moves(kind[rows], z_u[rows], z_v[rows], v[rows], internal, context,
                                                    weights, atom_types, zm, (origin, e1, e2))
            new_internal = new_internal.index_copy(0, rows, moved)
            proposals = proposals.index_copy(0, rows, moved_y)
            log_ratio = log_ratio.index_copy(0, rows, ratio)

        valid = ((new_internal[..., 0] > 0) | (dims[:, 0] == 0)).all(-1)
        valid = valid & (((new_internal[..., 1] > 0) & (new_internal[..., 1] < math.pi)) | (dims[:, 1] == 0)).all(-1)
        same_graph = (bond_graph(proposals, self.radii[atom_types]) == bond_graph(x, self.radii[atom_types])[None])
        valid = valid & same_graph.flatten(1).all(-1) & torch.isfinite(log_ratio)
        valid = valid & torch.isfinite(proposals).flatten(1).all(-1)
        # An invalid proposal is returned as the current state with a log ratio of REJECT (a
        # finite stand-in for log 0, as the contract asks for finite values): a certain rejection.
        log_ratio = torch.where(valid, log_ratio, torch.full_like(log_ratio, self.reject))
        proposals = torch.where(valid[:, None, None], proposals, x[None])
        return proposals.to(positions.dtype), log_ratio


def _move_log_det(log_scales: Tensor, log_tanh: Tensor, dims: Tensor) -> Tensor:
    """log|dq'/du| per coordinate (B, N, 3): the scales, plus the tanh squashing of the torsions."""
    squash = torch.stack([torch.zeros_like(log_tanh), torch.zeros_like(log_tanh), log_tanh], -1)
    return (log_scales.expand_as(squash) + squash) * dims


def _normal_log_prob(z: Tensor, dims: Tensor) -> Tensor:
    """log N(z; 0, I) over the coordinates selected by ``dims`` (N, 3), (B,) float64."""
    d = dims.to(torch.float64)
    sq = (z.to(torch.float64) ** 2 * d).sum((1, 2))
    return -0.5 * sq - 0.5 * d.sum() * math.log(2.0 * math.pi)
