"""Backbone pivot proposals: new (phi, psi) of one residue from a learned Ramachandran density.

A proposal picks one residue uniformly, draws its new (phi, psi) from
:class:`~.ramachandran.RamachandranDensity` given the residue's chemistry, and turns N's side of
the N-CA bond and C's side of the CA-C bond rigidly about those bonds, C-alpha's fragment staying
in place, then the whole proposal is shifted back onto the atom mean of x; every other internal
coordinate is kept. For fixed angles such a move is volume preserving, and the density does not
depend on the current state, so the Metropolis-Hastings ratio is

    log_ratio = log g(phi, psi) - log g(phi', psi').

The residue choice depends on the bond graph only, which proposals never change (a proposal with
another bond graph is a certain rejection), so it is symmetric.

Residues are found from the bond graph and the elements alone, as the proposal contract gives a
model nothing else: a carbonyl carbon is a carbon bonded to an oxygen that has no other bond, an
amide nitrogen is a nitrogen bonded to a carbonyl carbon, and a C-alpha is a carbon, itself no
carbonyl, bonded to an amide nitrogen N and to a carbonyl carbon C whose own amide nitrogen is
another one: phi = C(i-1)-N-CA-C and psi = N-CA-C-N(i+1). Capped peptides (ACE ... NME) give
every residue both angles. A torsion bond inside a ring (proline's N-CA) is never rotated.

Side chains can move too (:meth:`BackboneProposal.set_side_chains`, module ``side_chains``):
chi-only proposals, and pivots that also turn the pivoted residue's chi angles, both by a
symmetric law of increments, so the ratio stays the density ratio (0 for chi-only moves).

A pivot can also redraw the pivoted residue's chi1 (:meth:`BackboneProposal.set_rotamers`) from a
fixed rotamer density h, independently of its current value: a bulky side chain often fits only one
rotamer once phi changes sign, and a jump of chi1 alone clashes with the backbone it leaves. Whether
a pivot redraws chi1 depends on an independent coin and on whether phi changes sign, which is the
same for the move and its reverse, and chi1 (N-CA-CB-X) is unchanged by the pivot (N lies on the
N-CA axis), so the ratio gains log h(chi1) - log h(chi1').
"""
import dataclasses
import json
import math
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor

from .geometry import COVALENT_RADII_NM, bond_graph, dihedral, far_side, rotation_matrices, wrap_angle
from .kernel import KernelConfig, ProposalKernel
from .ramachandran import RamachandranDensity, wrapped_normal_log_prob
from .residues import backbone_angles, feature_count, find_backbone, residue_features
from .side_chains import JUMPS, ROTAMERS, chi1_quads, find_torsions, torsion_increments_from, turn_torsion_rows

__all__ = ["BackboneConfig", "BackboneProposal", "backbone_angles", "MAX_TORSIONS_PER_RESIDUE", "NORMALS", "UNIFORMS"]

MAX_TORSIONS_PER_RESIDUE = 8
"""Side-chain torsions a residue may have (arginine has 5); the noise has a column for each."""

UNIFORM_COLUMNS = {"residue": 0, "component": 1, "floor": 2, "floor_phi": 3, "floor_psi": 4, "local": 5,
                   "rotamer": 6, "rotamer_centre": 7, "chi_only": 8, "with_pivot": 9, "chi_pick": 10, "torsions": 11}
"""Columns of the uniform variates of one proposal (:meth:`BackboneProposal.propose_noise`); from
``torsions`` on, two per torsion slot k: whether it jumps (11 + 2k) and by which jump (12 + 2k)."""
UNIFORMS = UNIFORM_COLUMNS["torsions"] + 2 * MAX_TORSIONS_PER_RESIDUE
NORMAL_COLUMNS = {"phi": 0, "psi": 1, "local_phi": 2, "local_psi": 3, "rotamer": 4, "torsions": 5}
"""Columns of the standard normal variates of one proposal; from ``torsions`` on, one per torsion slot."""
NORMALS = NORMAL_COLUMNS["torsions"] + MAX_TORSIONS_PER_RESIDUE


@dataclasses.dataclass
class BackboneConfig(KernelConfig):
    """Every setting of a :class:`BackboneProposal`: the density's shape and basin prior
    (:meth:`RamachandranDensity.set_basin_prior`), local pivots (:meth:`BackboneProposal.set_local`),
    side-chain moves (:meth:`BackboneProposal.set_side_chains`) and rotamer redraws
    (:meth:`BackboneProposal.set_rotamers`). The defaults switch every option off."""

    elements: List[str]
    num_components: int = 16
    hidden: int = 64
    floor: float = 0.02
    basin_prior_weight: float = 0.0
    basin_prior_width: float = 0.35
    local_fraction: float = 0.0
    local_width: float = 0.3
    side_chain_fraction: float = 0.0
    side_chain_jump: float = 0.0
    side_chain_width: float = 0.0
    side_chains_with_pivots: float = 0.0
    rotamer_crossing: float = 0.0
    rotamer_other: float = 0.0
    rotamer_width: float = 0.35

class BackboneProposal(ProposalKernel):
    """Backbone pivot proposals of the residues of a peptide (see the module docstring).

    Parameters
    ----------
    elements : list of str
        Element symbols that ``atom_types`` index into; must include C, N and O for residues to be
        found.
    density : RamachandranDensity, optional
        The learned (phi, psi) density; a fresh one if None.
    """

    kind = "backbone"
    config_class = BackboneConfig
    changes_geometry = False  # rigid turns about bonds
    float32_networks = False  # the density enters the ratio
    supports_noise = True
    cached_topology: List[Tensor]  # declared for TorchScript, which cannot type an empty list

    def __init__(self, elements: List[str], density: Optional[RamachandranDensity] = None) -> None:
        super().__init__()
        unknown = [e for e in elements if e not in COVALENT_RADII_NM]
        if unknown:
            raise ValueError(f"no covalent radius for elements {unknown}")
        self.element_symbols = list(elements)
        self.num_elements = len(elements)
        self.carbon = elements.index("C") if "C" in elements else -1
        self.nitrogen = elements.index("N") if "N" in elements else -1
        self.oxygen = elements.index("O") if "O" in elements else -1
        self.density = RamachandranDensity(self.num_features()) if density is None else density
        self.local_fraction, self.local_width = 0.0, 0.3
        self.local_log_width = math.log(0.3)
        self.chi_fraction = 0.0
        self.chi_jump = 0.0
        self.chi_width = 0.0
        self.pivot_chi = 0.0
        self.chi_jumps: List[float] = list(JUMPS)
        self.rotamer_crossing = 0.0
        self.rotamer_other = 0.0
        self.rotamer_width = 0.35
        self.rotamer_log_width = math.log(0.35)
        self.rotamer_centres: List[float] = list(ROTAMERS)
        # TorchScript reads no globals: the noise layout is reached through the instance.
        self.max_torsions = MAX_TORSIONS_PER_RESIDUE
        self.uniform_columns = dict(UNIFORM_COLUMNS)
        self.normal_columns = dict(NORMAL_COLUMNS)
        self.num_uniforms, self.num_normals = UNIFORMS, NORMALS
        self.register_buffer("radii", torch.tensor([COVALENT_RADII_NM[e] for e in elements], dtype=torch.float64))
        self.register_buffer("is_heavy", torch.tensor([e != "H" for e in elements]))
        # Residues of the last bond graph seen (finding them costs several ms).
        self.cached_graph = torch.zeros(0, 0, dtype=torch.bool)
        self.cached_types = torch.zeros(0, dtype=torch.int64)
        self.cached_backbone = torch.zeros(0, 5, dtype=torch.int64)
        self.cached_sides = torch.zeros(0, 2, 0, dtype=torch.bool)
        self.cached_features = torch.zeros(0, 0, dtype=torch.float64)
        self.cached_chi_bonds = torch.zeros(0, 2, dtype=torch.int64)
        self.cached_chi_sides = torch.zeros(0, 0, dtype=torch.bool)
        self.cached_chi_residues = torch.zeros(0, dtype=torch.int64)
        self.cached_chi1 = torch.zeros(0, 5, dtype=torch.int64)
        # What topology() returns for the last bond graph seen, built with the cache above.
        self.cached_topology: List[Tensor] = []

    def set_local(self, fraction: float, width: float) -> None:
        """Draw a fraction of the new (phi, psi) as a symmetric wrapped-normal step of ``width`` (rad)
        from the current ones instead of from the density (0: none). The proposal density is then
        the mixture (1 - fraction) g + fraction n, with both terms in the ratio; local steps keep
        the chain moving where the target is far from g (a bias that flattens (phi, psi))."""
        if not 0.0 <= fraction < 1.0 or not 0.0 < width <= 1.5:
            raise ValueError(f"local fraction must lie in [0, 1) and width in (0, 1.5] rad, got {fraction}, {width}")
        self.local_fraction, self.local_width = float(fraction), float(width)
        self.local_log_width = math.log(width)

    def set_side_chains(self, fraction: float, jump: float, width: float, with_pivots: float) -> None:
        """Side-chain torsion moves (see ``side_chains``): a ``fraction`` of the proposals turns one
        chi torsion (picked uniformly among all) by the symmetric increment law with rotamer-jump
        probability ``jump`` and noise ``width`` (rad) instead of pivoting, and
        a fraction ``with_pivots`` of the pivots also turns the pivoted residue's chi angles by the
        same law, so that a side chain can follow its backbone into another basin. 0, 0, 0, 0: none."""
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"side-chain fraction must lie in [0, 1), got {fraction}")
        for name, value, high in (("jump", jump, 1.0), ("with_pivots", with_pivots, 1.0), ("width", width, 1.5)):
            if not 0.0 <= value <= high:
                raise ValueError(f"side-chain {name} must lie in [0, {high}], got {value}")
        self.chi_fraction, self.chi_jump, self.chi_width, self.pivot_chi = (float(fraction), float(jump), float(width),
                                                                             float(with_pivots))

    def set_rotamers(self, crossing: float, other: float, width: float) -> None:
        """Redraw the pivoted residue's chi1 from the rotamer density h (equal wrapped normals of
        ``width`` rad at -60, 180 and 60 degrees) in a fraction ``crossing`` of the pivots that
        change the sign of its phi and a fraction ``other`` of the rest (0, 0: never); see the module
        docstring. Residues without a chi1 (glycine, alanine, proline) are pivoted alone."""
        for name, value in (("crossing", crossing), ("other", other)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rotamer {name} fraction must lie in [0, 1], got {value}")
        if not 0.0 < width <= 1.5:
            raise ValueError(f"rotamer width must lie in (0, 1.5] rad, got {width}")
        self.rotamer_crossing, self.rotamer_other = float(crossing), float(other)
        self.rotamer_width = float(width)
        self.rotamer_log_width = math.log(width)

    def to_config(self) -> BackboneConfig:
        """Every setting of the kernel (the density's parameters excluded)."""
        density = json.loads(self.density.config_json)
        return BackboneConfig(
            elements=list(self.element_symbols), num_components=density["num_components"], hidden=density["hidden"],
            floor=density["floor"], basin_prior_weight=self.density.prior_weight,
            basin_prior_width=self.density.prior_width, local_fraction=self.local_fraction,
            local_width=self.local_width, side_chain_fraction=self.chi_fraction, side_chain_jump=self.chi_jump,
            side_chain_width=self.chi_width, side_chains_with_pivots=self.pivot_chi,
            rotamer_crossing=self.rotamer_crossing, rotamer_other=self.rotamer_other, rotamer_width=self.rotamer_width)

    @classmethod
    def from_config(cls, config) -> "BackboneProposal":
        """An untrained kernel with the settings ``config`` (a :class:`BackboneConfig` or its dict)."""
        c = cls.parse_config(config)
        density = RamachandranDensity(feature_count(len(c.elements)), c.num_components, c.hidden, c.floor)
        density.set_basin_prior(c.basin_prior_weight, c.basin_prior_width)
        kernel = cls(c.elements, density)
        kernel.set_local(c.local_fraction, c.local_width)
        kernel.set_side_chains(c.side_chain_fraction, c.side_chain_jump, c.side_chain_width, c.side_chains_with_pivots)
        kernel.set_rotamers(c.rotamer_crossing, c.rotamer_other, c.rotamer_width)
        return kernel

    def num_features(self) -> int:
        """Length of a residue's feature vector."""
        return feature_count(self.num_elements)

    def available(self, positions: Tensor, atom_types: Tensor) -> bool:
        """Whether the molecule has a residue with a rotatable psi (the bond graph decides)."""
        backbone, sides, features = self.residues(positions, atom_types)
        return backbone.shape[0] > 0

    def residues(self, positions: Tensor, atom_types: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Backbone atoms (R, 5), moving sides (R, 2, N) bool and features (R, F) of the residues of
        the bond graph of ``positions``; side 0 (N's side of N-CA, all False for a ring) turns phi,
        side 1 (C's side of CA-C) turns psi. Cached per bond graph."""
        adjacency = bond_graph(positions.to(torch.float64), self.radii[atom_types])
        if (self.cached_graph.shape == adjacency.shape and bool(torch.equal(self.cached_graph, adjacency))
                and bool(torch.equal(self.cached_types, atom_types))):
            return self.cached_backbone, self.cached_sides, self.cached_features
        if self.carbon < 0 or self.nitrogen < 0 or self.oxygen < 0:
            backbone = torch.zeros(0, 5, dtype=torch.int64)
        else:
            backbone = find_backbone(adjacency, atom_types, self.carbon, self.nitrogen, self.oxygen)
        sides = torch.zeros(backbone.shape[0], 2, positions.shape[0], dtype=torch.bool)
        for r in range(backbone.shape[0]):
            n, ca, c = int(backbone[r, 1]), int(backbone[r, 2]), int(backbone[r, 3])
            sides[r, 0] = far_side(adjacency, ca, n)
            sides[r, 1] = far_side(adjacency, ca, c)
        movable = sides[:, 1].any(1)
        backbone, sides = backbone[movable], sides[movable]
        features = residue_features(adjacency, atom_types, self.is_heavy[atom_types], backbone, self.num_elements,
                                    sides[:, 0].any(1))
        chi_bonds, chi_sides, chi_residues = find_torsions(adjacency, self.is_heavy[atom_types], backbone)
        self.cached_chi1 = chi1_quads(adjacency, self.is_heavy[atom_types], backbone, chi_bonds, chi_sides,
                                      chi_residues)
        self.cached_graph, self.cached_types = adjacency, atom_types.clone()
        self.cached_backbone, self.cached_sides, self.cached_features = backbone, sides, features
        self.cached_chi_bonds, self.cached_chi_sides, self.cached_chi_residues = chi_bonds, chi_sides, chi_residues
        self.cached_topology = self.padded_topology(positions.shape[0])
        return backbone, sides, features

    def topology(self, positions: Tensor, atom_types: Tensor) -> List[Tensor]:
        """What the proposals of this molecule need from its bond graph, as the tensors of
        :meth:`propose_noise` (contract v2's topology step; cached per bond graph with
        :meth:`residues`):

        0. whether the kernel can move the molecule, () bool;
        1. the bond graph (N, N) bool;
        2. backbone atoms (R, 5), 3. moving sides (R, 2, N), 4. residue features (R, F), as
           :meth:`residues` (R is at least 1: a molecule without residues gets one row of zeros);
        5. side-chain torsion bonds (T + 1, 2) and 6. their moving sides (T + 1, N): the torsions of
           ``side_chains.find_torsions`` and a last row that turns nothing, so that no size is ever 0;
        7. chi1 rows (R, 5) of ``side_chains.chi1_quads``;
        8. each residue's torsions (R, MAX_TORSIONS_PER_RESIDUE), outwards, -1 where none.
        """
        self.residues(positions, atom_types)
        return self.cached_topology

    def padded_topology(self, n: int) -> List[Tensor]:
        """:meth:`topology` built from the cached residues and torsions of a molecule of ``n`` atoms."""
        backbone, sides, features, chi1 = self.cached_backbone, self.cached_sides, self.cached_features, self.cached_chi1
        available = torch.tensor(backbone.shape[0] > 0)
        if backbone.shape[0] == 0:
            backbone = torch.zeros(1, 5, dtype=torch.int64)
            sides = torch.zeros(1, 2, n, dtype=torch.bool)
            features = torch.zeros(1, self.num_features(), dtype=torch.float64)
            chi1 = torch.full((1, 5), -1, dtype=torch.int64)
        bonds = torch.cat([self.cached_chi_bonds, torch.tensor([[0, 1]], dtype=torch.int64)])
        chi_sides = torch.cat([self.cached_chi_sides.view(-1, n), torch.zeros(1, n, dtype=torch.bool)])
        own = torch.full((backbone.shape[0], self.max_torsions), -1, dtype=torch.int64)
        filled = [0 for _ in range(backbone.shape[0])]
        for t in range(self.cached_chi_bonds.shape[0]):
            r = int(self.cached_chi_residues[t])
            if filled[r] >= self.max_torsions:
                raise ValueError("BackboneProposal: a residue has more than " + str(self.max_torsions)
                                 + " side-chain torsions")
            own[r, filled[r]] = t
            filled[r] += 1
        return [available, self.cached_graph, backbone, sides, features, bonds, chi_sides, chi1, own]

    def topology_axes(self) -> List[Dict[int, str]]:
        """Axes of the tensors of :meth:`topology` (after the first) that vary with the molecule."""
        return [{0: "atoms", 1: "atoms"}, {0: "residues"}, {0: "residues", 2: "atoms"}, {0: "residues"},
                {0: "torsions"}, {0: "torsions", 1: "atoms"}, {0: "residues"}, {0: "residues"}]

    def noise_counts(self) -> List[int]:
        """Standard normal and uniform variates per proposal that :meth:`propose_noise` reads."""
        return [self.num_normals, self.num_uniforms]

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposals (B, N, 3) float64 in the frame of ``positions`` and their log MH ratios (B,):
        :meth:`propose_noise` with variates from torch's default generator."""
        topology = self.topology(positions, atom_types)
        if not bool(topology[0]):
            raise ValueError("BackboneProposal: the molecule has no residue with a rotatable psi")
        normals = torch.randn(num_proposals, self.num_normals, dtype=torch.float64)
        uniforms = torch.rand(num_proposals, self.num_uniforms, dtype=torch.float64)
        y, log_ratio, same = self.propose_noise(positions, atom_types, topology[1:], normals, uniforms)
        return y, log_ratio

    def propose_noise(self, positions: Tensor, atom_types: Tensor, topology: List[Tensor], normals: Tensor,
                      uniforms: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Proposals (B, N, 3) float64 in the frame of ``positions`` and their log MH ratios (B,),
        a pure function of its arguments (contract v2): ``topology`` is :meth:`topology` without its
        first entry, ``normals`` (B, NORMALS) and ``uniforms`` (B, UNIFORMS) the variates (their
        columns: ``NORMAL_COLUMNS`` and ``UNIFORM_COLUMNS``). Also returns whether the bond graph of
        ``positions`` is still the one of ``topology`` (() bool; if not, the topology must be
        recomputed).

        C-alpha's fragment stays in place: N's side of N-CA turns about that bond, C's side of CA-C
        about that one (the two sides are disjoint unless a bond lies in a ring). No branch depends
        on a tensor's values, so that ``torch.export`` can compile it.
        """
        adjacency, backbone, sides, features = topology[0], topology[1], topology[2], topology[3]
        chi_bonds, chi_sides, chi1, own = topology[4], topology[5], topology[6], topology[7]
        u, z = self.uniform_columns, self.normal_columns
        x = positions.to(torch.float64)
        radii = self.radii[atom_types]
        same_topology = torch.eq(bond_graph(x, radii), adjacency).all()
        num_proposals = normals.shape[0]
        residues = backbone.shape[0]
        pick = torch.clamp((uniforms[:, u["residue"]] * residues).to(torch.int64), max=residues - 1)
        phi_free = sides[:, 0].any(1)[pick]
        params = self.density.mixture(features)
        params = (params[0][pick], params[1][pick], params[2][pick], params[3][pick], params[4][pick])
        phi_now, psi_now = backbone_angles(x, backbone)
        phi_now, psi_now = phi_now[pick], psi_now[pick]
        phi_new, psi_new = self.density.sample_from(params, normals[:, z["phi"]:z["psi"] + 1],
                                                    uniforms[:, u["component"]:u["floor_psi"] + 1])
        if self.local_fraction > 0:
            local = uniforms[:, u["local"]] < self.local_fraction
            step = normals[:, z["local_phi"]:z["local_psi"] + 1] * math.exp(self.local_log_width)
            phi_new = torch.where(local, wrap_angle(phi_now + step[:, 0]), phi_new)
            psi_new = torch.where(local, wrap_angle(psi_now + step[:, 1]), psi_new)
        phi_new = torch.where(phi_free, phi_new, phi_now)
        both = (torch.cat([params[0], params[0]]), torch.cat([params[1], params[1]]),
                torch.cat([params[2], params[2]]), torch.cat([params[3], params[3]]), torch.cat([params[4], params[4]]))
        log_g = self.density.log_prob(both, torch.cat([phi_now, phi_new]), torch.cat([psi_now, psi_new]),
                                      torch.cat([phi_free, phi_free]))
        log_reverse, log_forward = log_g[:num_proposals], log_g[num_proposals:]
        if self.local_fraction > 0:
            # q(new | now) = (1 - f) g(new) + f n(new - now); n is symmetric, so it is the same both ways.
            width = torch.full_like(phi_now, self.local_log_width)
            log_n = (wrapped_normal_log_prob(wrap_angle(psi_new - psi_now), torch.zeros_like(psi_now), width)
                     + phi_free.to(torch.float64) * wrapped_normal_log_prob(wrap_angle(phi_new - phi_now),
                                                                            torch.zeros_like(phi_now), width))
            log_f, log_1f = math.log(self.local_fraction), math.log(1.0 - self.local_fraction)
            log_reverse = torch.logaddexp(log_1f + log_reverse, log_f + log_n)
            log_forward = torch.logaddexp(log_1f + log_forward, log_f + log_n)
        log_ratio = log_reverse - log_forward

        atoms = backbone[pick]
        centre = x[atoms[:, 2]]
        # Axes N -> CA and CA -> C. A right-handed turn by d about b -> c changes the dihedral a-b-c-d
        # by -d when it moves a's side and by +d when it moves d's side.
        axes = torch.cat([centre - x[atoms[:, 1]], x[atoms[:, 3]] - centre])
        turns = rotation_matrices(axes / torch.linalg.norm(axes, dim=-1, keepdim=True),
                                  torch.cat([phi_now - phi_new, psi_new - psi_now]))
        relative = x[None] - centre[:, None]
        moved = torch.bmm(torch.cat([relative, relative]), turns.transpose(1, 2))
        moved_n, moved_c = moved[:num_proposals], moved[num_proposals:]
        side = sides[pick]
        y = torch.where(side[:, 0, :, None], moved_n, torch.where(side[:, 1, :, None], moved_c, relative))
        redrawn = torch.zeros(num_proposals, dtype=torch.bool)
        if self.rotamer_crossing > 0.0 or self.rotamer_other > 0.0:
            y, log_ratio, redrawn = self.rotamer_moves(y, log_ratio, pick, phi_now, phi_new, chi_bonds, chi_sides,
                                                       chi1, normals, uniforms)
        if self.chi_fraction > 0.0 or self.pivot_chi > 0.0:
            y, log_ratio = self.side_chain_moves(relative, y, log_ratio, pick, redrawn, chi_bonds, chi_sides, own,
                                                 normals, uniforms)
        # Keep the atom mean of x, as the flows do: the turn then acts on positions relative to the
        # mean only, where it is volume preserving, and leaves the mean unchanged.
        y = y - y.mean(1, keepdim=True) + x.mean(0)

        same_graph = (bond_graph(y, radii) == adjacency[None]).flatten(1).all(-1)
        valid = same_graph & torch.isfinite(log_ratio) & torch.isfinite(y).flatten(1).all(-1)
        log_ratio = torch.where(valid, log_ratio, torch.full_like(log_ratio, self.reject))
        y = torch.where(valid[:, None, None], y, x[None])
        return y.to(positions.dtype), log_ratio, same_topology

    def rotamer_log_prob(self, chi: Tensor) -> Tensor:
        """log h(chi) per radian of the rotamer density of :meth:`set_rotamers`."""
        centres = torch.tensor(self.rotamer_centres, dtype=torch.float64)
        log_width = torch.full_like(centres, self.rotamer_log_width)
        return torch.logsumexp(wrapped_normal_log_prob(chi[:, None], centres[None], log_width[None]), 1) - math.log(
            len(self.rotamer_centres))

    def rotamer_moves(self, pivoted: Tensor, log_ratio: Tensor, pick: Tensor, phi_now: Tensor, phi_new: Tensor,
                      chi_bonds: Tensor, chi_sides: Tensor, chi1: Tensor, normals: Tensor,
                      uniforms: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Redraw chi1 of the pivoted residue ``pick`` (B,) of the pivots ``pivoted`` (B, N, 3) as
        :meth:`set_rotamers` says (a pivot leaves chi1 as it was); returns the proposals, their log
        ratios and which rows (B,) were redrawn. Residues without a chi1 (Gly, Ala, Pro) have a
        chi1 row of -1 and are never redrawn."""
        u, z = self.uniform_columns, self.normal_columns
        batch = pivoted.shape[0]
        rows = chi1[pick]
        crossing = (phi_now >= 0) != (phi_new >= 0)
        chance = torch.where(crossing, torch.full_like(phi_now, self.rotamer_crossing),
                             torch.full_like(phi_now, self.rotamer_other))
        redrawn = (rows[:, 0] >= 0) & (uniforms[:, u["rotamer"]] < chance)
        atoms = rows.clamp(min=0)
        batch_index = torch.arange(batch)
        p = [pivoted[batch_index, atoms[:, i]] for i in range(4)]
        chi_now = -dihedral(p[0], p[1], p[2], p[3])
        centres = torch.tensor(self.rotamer_centres, dtype=torch.float64)
        which = torch.clamp((uniforms[:, u["rotamer_centre"]] * centres.shape[0]).to(torch.int64), max=centres.shape[0] - 1)
        chi_new = wrap_angle(centres[which] + normals[:, z["rotamer"]] * math.exp(self.rotamer_log_width))
        log_ratio = torch.where(redrawn, log_ratio + self.rotamer_log_prob(chi_now) - self.rotamer_log_prob(chi_new),
                                log_ratio)
        # A right-handed turn about CA -> CB moves CB's side and changes chi1 by +d (see propose_noise).
        angle = torch.where(redrawn, wrap_angle(chi_new - chi_now), torch.zeros_like(chi_new))
        return turn_torsion_rows(pivoted, chi_bonds[atoms[:, 4]], chi_sides[atoms[:, 4]], angle), log_ratio, redrawn

    def side_chain_moves(self, x: Tensor, pivoted: Tensor, log_ratio: Tensor, pick: Tensor, redrawn: Tensor,
                         chi_bonds: Tensor, chi_sides: Tensor, own: Tensor, normals: Tensor,
                         uniforms: Tensor) -> Tuple[Tensor, Tensor]:
        """Replace a ``chi_fraction`` of the pivots ``pivoted`` (B, N, 3) of ``x`` (B, N, 3) by chi-only
        moves (ratio 0) and turn the chi angles of a ``pivot_chi`` fraction of the rest (see
        :meth:`set_side_chains`), except those whose chi1 was ``redrawn`` (B,) (h would no longer be
        their density); returns the proposals and their log ratios. A molecule without side-chain
        torsions (only the last, empty row of ``chi_bonds``) only pivots."""
        u, z = self.uniform_columns, self.normal_columns
        count = chi_bonds.shape[0] - 1
        # Whether there is a torsion, as a tensor (the last row of chi_sides is empty), not a branch.
        any_torsion = chi_sides.any()
        chi_only = (uniforms[:, u["chi_only"]] < self.chi_fraction) & any_torsion
        one = torch.clamp((uniforms[:, u["chi_pick"]] * count).to(torch.int64), max=count)
        increments = torsion_increments_from(normals[:, z["torsions"]:], uniforms[:, u["torsions"]::2],
                                             uniforms[:, u["torsions"] + 1::2], self.chi_jump, self.chi_width, self.chi_jumps)
        y = torch.where(chi_only[:, None, None], x, pivoted)
        log_ratio = torch.where(chi_only, torch.zeros_like(log_ratio), log_ratio)
        y = turn_torsion_rows(y, chi_bonds[one], chi_sides[one],
                              torch.where(chi_only, increments[:, 0], torch.zeros_like(increments[:, 0])))
        if self.pivot_chi > 0.0:
            with_pivot = ~chi_only & ~redrawn & (uniforms[:, u["with_pivot"]] < self.pivot_chi) & any_torsion
            mine = own[pick]
            for k in range(self.max_torsions):
                t = torch.where(mine[:, k] >= 0, mine[:, k], torch.full_like(mine[:, k], count))
                angle = torch.where(with_pivot & (mine[:, k] >= 0), increments[:, k], torch.zeros_like(increments[:, k]))
                y = turn_torsion_rows(y, chi_bonds[t], chi_sides[t], angle)
        return y, log_ratio
