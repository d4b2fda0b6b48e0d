"""Side-chain torsion moves of the backbone kernel: which bonds are chi torsions, the geometry and
ratio of the moves, and exact Metropolis-Hastings through the C++ integrator on a backbone with a
two-torsion side chain whose (phi, psi, chi1, chi2) law is known."""
from __future__ import annotations

import math

import numpy as np
import openmm as mm
import pytest
import torch
from pymbar import timeseries
from scipy import integrate

from conftest import BOLTZMANN, sample_positions
from openmm_timewarp.proposals.backbone import BackboneProposal, backbone_angles
from openmm_timewarp.proposals.export import ExportedProposal
from openmm_timewarp.proposals.geometry import bond_graph, dihedral
from openmm_timewarp.proposals.internal_flow import InternalTimewarpFlow
from openmm_timewarp.proposals.mixture import ProposalMixture
from openmm_timewarp.proposals.side_chains import SideChainKernel
from conftest import minimized_peptide, perturbed_kernel


@pytest.mark.parametrize("sequence, expected", [
    ("DE", ["ASP:CA-CB", "ASP:CB-CG", "GLU:CA-CB", "GLU:CB-CG", "GLU:CG-CD"]),
    ("GP", []),  # glycine has none, proline's are in its ring
    ("KF", ["LYS:CA-CB", "LYS:CB-CG", "LYS:CG-CD", "LYS:CD-CE", "PHE:CA-CB", "PHE:CB-CG"]),
    ("VS", ["VAL:CA-CB", "SER:CA-CB"]),  # not the methyl and hydroxyl rotors, which turn only hydrogens
])
def test_chi_torsions_are_found_from_the_bond_graph(sequence, expected):
    x, types, names = minimized_peptide(sequence)
    kernel = perturbed_kernel()
    kernel.residues(x, types)
    found = [f"{names[b]}-{names[c].split(':')[1]}" for b, c in kernel.cached_chi_bonds.tolist()]
    assert found == expected
    letters = {"ASP": "D", "GLU": "E", "LYS": "K", "PHE": "F", "VAL": "V", "SER": "S"}
    residues = [sequence.index(letters[n.split(":")[0]]) for n in found]
    assert kernel.cached_chi_residues.tolist() == residues


def test_side_chain_settings_are_checked():
    kernel = perturbed_kernel()
    for args in ((1.0, 0.5, 0.1, 0.0), (0.2, 1.5, 0.1, 0.0), (0.2, 0.5, 2.0, 0.0), (0.2, 0.5, 0.1, -0.1)):
        with pytest.raises(ValueError, match="side-chain"):
            kernel.set_side_chains(*args)


def dihedrals(x: torch.Tensor, quads: list) -> torch.Tensor:
    """IUPAC dihedrals (..., len(quads)) of positions (..., N, 3)."""
    q = torch.tensor(quads)
    return -dihedral(*(x.index_select(-2, q[:, i]) for i in range(4)))


def chi_quads(x: torch.Tensor, kernel) -> list:
    """One atom quadruple per chi torsion b-c: a neighbour of b on the near side and one of c on the far side."""
    adjacency = kernel.cached_graph
    quads = []
    for (b, c), side in zip(kernel.cached_chi_bonds.tolist(), kernel.cached_chi_sides):
        a = next(i for i in torch.nonzero(adjacency[b]).flatten().tolist() if i != c and not side[i])
        d = next(i for i in torch.nonzero(adjacency[c]).flatten().tolist() if i != b and side[i])
        quads.append((a, b, c, d))
    assert bool(torch.equal(bond_graph(x, kernel.radii[kernel.cached_types]), adjacency))
    return quads


def test_chi_only_moves_turn_one_torsion_and_have_ratio_one():
    x, types, _ = minimized_peptide("KE")
    kernel = perturbed_kernel()
    kernel.set_side_chains(0.999, 0.8, 0.2, 0.0)
    torch.manual_seed(4)
    backbone, sides, features = kernel.residues(x, types)
    y, log_ratio = kernel.propose(x, types, 200)
    phi_x, psi_x = backbone_angles(x, backbone)
    phi_y, psi_y = backbone_angles(y, backbone)
    chi_only = ((phi_y - phi_x).abs() < 1e-9).all(1) & ((psi_y - psi_x).abs() < 1e-9).all(1) & (log_ratio > -1e29)
    assert chi_only.sum() > 80 and (log_ratio[chi_only] == 0).all()
    y = y[chi_only]
    quads = chi_quads(x, kernel)
    change = torch.remainder(dihedrals(y, quads) - dihedrals(x, quads) + math.pi, 2 * math.pi) - math.pi
    assert ((change.abs() > 1e-9).sum(1) == 1).all(), "each move turns one chi"
    # Rotamer jumps happen: increments near +-120 or 180 degrees beside the 0.2 rad noise.
    turned = change[change.abs() > 1e-9].abs()
    assert ((turned - 2 * math.pi / 3).abs() < 0.6).float().mean() > 0.2
    # Bonds and angles (all 1-2 and 1-3 distances) are kept.
    adjacency = kernel.cached_graph
    pairs = ((adjacency.to(torch.int64) + adjacency.to(torch.int64) @ adjacency.to(torch.int64)) > 0).nonzero()
    d = lambda p: (p[..., pairs[:, 0], :] - p[..., pairs[:, 1], :]).norm(dim=-1)  # noqa: E731
    assert torch.allclose(d(y), d(x).expand_as(d(y)), atol=1e-10)


def test_pivots_with_chi_turns_keep_the_density_ratio():
    x, types, _ = minimized_peptide("DE")
    kernel = perturbed_kernel()
    torch.manual_seed(5)
    backbone, sides, features = kernel.residues(x, types)
    kernel.set_side_chains(0.0, 1.0, 0.1, 1.0)
    y, log_ratio = kernel.propose(x, types, 64)
    valid = log_ratio > -1e29
    assert valid.sum() > 20
    y, log_ratio = y[valid], log_ratio[valid]
    phi_x, psi_x = backbone_angles(x, backbone)
    phi_y, psi_y = backbone_angles(y, backbone)
    picked = (((phi_y - phi_x).abs() > 1e-9) | ((psi_y - psi_x).abs() > 1e-9)).to(torch.int64).argmax(1)
    quads = chi_quads(x, kernel)
    chi_moved = (dihedrals(y, quads) - dihedrals(x, quads)).abs() > 1e-9
    owner = kernel.cached_chi_residues
    assert (chi_moved == (owner[None] == picked[:, None])).all(), "every chi of the pivoted residue turns"
    params = kernel.density.mixture(features)
    free = sides[:, 0].any(1)
    with torch.no_grad():
        log_g_x = kernel.density.log_prob(params, phi_x, psi_x, free)
        for row in range(len(y)):
            r = int(picked[row])
            one = tuple(p[r:r + 1] for p in params)
            log_g_y = kernel.density.log_prob(one, phi_y[row, r:r + 1], psi_y[row, r:r + 1], free[r:r + 1])
            assert float(log_ratio[row]) == pytest.approx(float(log_g_x[r] - log_g_y[0]), abs=1e-8)


def test_rotamer_settings_are_checked():
    kernel = perturbed_kernel()
    for args in ((1.5, 0.0, 0.3), (0.5, -0.1, 0.3), (0.5, 0.0, 0.0), (0.5, 0.0, 2.0)):
        with pytest.raises(ValueError, match="rotamer"):
            kernel.set_rotamers(*args)


def test_pivots_redraw_chi1_with_the_rotamer_ratio():
    """Pivots of WF that change phi's sign redraw chi1 (only chi1, of the pivoted residue, to a value
    near a rotamer) and add log h(chi1) - log h(chi1') to the density ratio; the others keep it."""
    x, types, names = minimized_peptide("WF")
    kernel = perturbed_kernel()
    kernel.set_rotamers(1.0, 0.0, 0.2)
    torch.manual_seed(6)
    backbone, sides, features = kernel.residues(x, types)
    assert [names[i] for i in kernel.cached_chi1[:, 2].tolist()] == ["TRP:CB", "PHE:CB"]
    y, log_ratio = kernel.propose(x, types, 400)
    valid = log_ratio > -1e29
    y, log_ratio = y[valid], log_ratio[valid]
    phi_x, psi_x = backbone_angles(x, backbone)
    phi_y, psi_y = backbone_angles(y, backbone)
    picked = (((phi_y - phi_x).abs() > 1e-9) | ((psi_y - psi_x).abs() > 1e-9)).to(torch.int64).argmax(1)
    rows = torch.arange(len(y))
    crossing = (phi_x[picked] >= 0) != (phi_y[rows, picked] >= 0)
    assert crossing.sum() > 20 and (~crossing).sum() > 20
    quads = chi_quads(x, kernel)
    chi_x, chi_y = dihedrals(x, quads), dihedrals(y, quads)
    moved = (chi_y - chi_x).abs() > 1e-9
    owner_chi1 = kernel.cached_chi1[picked, 4]
    expected = torch.zeros_like(moved)
    expected[rows[crossing], owner_chi1[crossing]] = True
    assert (moved == expected).all(), "exactly the pivoted residue's chi1 moves, and only on a sign change"
    quads1 = kernel.cached_chi1[:, :4].tolist()
    new_chi1 = dihedrals(y, quads1)[rows, picked]
    old_chi1 = dihedrals(x, quads1)[picked]
    centres = torch.tensor([-math.pi / 3, math.pi, math.pi / 3])
    distance = torch.remainder(new_chi1[crossing, None] - centres + math.pi, 2 * math.pi) - math.pi
    assert distance.abs().min(1).values.max() < 5 * 0.2
    params = kernel.density.mixture(features)
    free = sides[:, 0].any(1)
    log_g_x = kernel.density.log_prob(params, phi_x, psi_x, free)
    one = tuple(p[picked] for p in params)
    log_g_y = kernel.density.log_prob(one, phi_y[rows, picked], psi_y[rows, picked], free[picked])
    expected_ratio = log_g_x[picked] - log_g_y + torch.where(
        crossing, kernel.rotamer_log_prob(old_chi1) - kernel.rotamer_log_prob(new_chi1), torch.zeros_like(log_g_y))
    assert torch.allclose(log_ratio, expected_ratio, atol=1e-8)


# The bare backbone of test_backbone with a side chain CA-CB-CG-CD: harmonic bonds and angles, and
# torsion potentials on phi, psi, chi1 = N1-CA-CB-CG and chi2 = CA-CB-CG-CD only, so the four
# dihedrals are independent with p ~ exp(-beta V(angle)) each.
TEMPERATURE = 300.0
ELEMENTS = ["C", "O", "N", "C", "C", "O", "N", "C", "C", "C"]
BONDS = [(0, 1), (0, 2), (2, 3), (3, 4), (4, 5), (4, 6), (3, 7), (7, 8), (8, 9)]
ANGLES = [(1, 0, 2), (0, 2, 3), (2, 3, 4), (3, 4, 5), (3, 4, 6), (5, 4, 6), (2, 3, 7), (4, 3, 7), (3, 7, 8),
          (7, 8, 9)]
TORSIONS = {"phi": ((0, 2, 3, 4), 2, 0.0, 2.0), "psi": ((2, 3, 4, 6), 1, 1.0, 1.5),
            "chi1": ((2, 3, 7, 8), 1, 0.5, 1.5), "chi2": ((3, 7, 8, 9), 3, 0.0, 2.0)}  # atoms, n, phase, k/kT


def side_chain_positions(side_angle: float = 145.0) -> np.ndarray:
    """Staggered starting geometry (nm); the harmonic terms take their minima from it.

    The wide side-chain angles keep every pair of atoms more than 0.03 nm beyond bonding distance
    for all (phi, psi, chi1, chi2) (checked on a 15-degree grid): nothing repels atoms here, and a
    proposal that would bond two of them is rejected, which at 111 degrees (where CD meets O1) cuts
    away part of the target's mass and biases chi2 by 5 standard errors."""
    def unit(v):
        return v / np.linalg.norm(v)

    def place(a, b, c, length, angle, torsion):  # d bonded to c, with the angle b-c-d and dihedral a-b-c-d
        bc = unit(c - b)
        n = unit(np.cross(b - a, bc))
        m = np.cross(n, bc)
        d = np.array([-length * math.cos(angle), length * math.sin(angle) * math.cos(torsion),
                      length * math.sin(angle) * math.sin(torsion)])
        return c + d[0] * bc + d[1] * m + d[2] * n

    tet = math.radians(111.0)
    x = np.zeros((10, 3))
    x[2] = [0.133, 0.0, 0.0]
    x[3] = x[2] + 0.146 * np.array([math.cos(-1.0), math.sin(-1.0), 0.0])
    x[1] = [0.0, 0.123, 0.0]
    x[4] = place(x[0], x[2], x[3], 0.152, tet, -2.0)
    x[5] = place(x[2], x[3], x[4], 0.123, math.radians(121.0), 2.5)
    x[6] = place(x[2], x[3], x[4], 0.133, math.radians(116.0), 2.5 - math.pi)
    x[7] = place(x[4], x[2], x[3], 0.153, tet, 2.1)
    x[8] = place(x[2], x[3], x[7], 0.153, math.radians(side_angle), -1.0)
    x[9] = place(x[3], x[7], x[8], 0.153, math.radians(side_angle), math.pi)
    return x


def side_chain_system(x: np.ndarray) -> mm.System:
    kt = BOLTZMANN * TEMPERATURE
    system = mm.System()
    for element in ELEMENTS:
        system.addParticle({"C": 12.0, "N": 14.0, "O": 16.0}[element])
    bonds, angles, torsions = mm.HarmonicBondForce(), mm.HarmonicAngleForce(), mm.PeriodicTorsionForce()
    for i, j in BONDS:
        bonds.addBond(i, j, float(np.linalg.norm(x[i] - x[j])), kt / 0.005 ** 2)
    for i, j, k in ANGLES:
        u, v = x[i] - x[j], x[k] - x[j]
        angles.addAngle(i, j, k, float(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))), 100 * kt)
    for atoms, n, phase, k in TORSIONS.values():
        torsions.addTorsion(*atoms, n, phase, k * kt)
    for force in (bonds, angles, torsions):
        system.addForce(force)
    return system


class RotamersWithoutRatio(BackboneProposal):
    """Power check: chi1 redrawn from h without h in the ratio."""

    def rotamer_log_prob(self, chi: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(chi)


def export_side_chain_model(tmp_path, jumps=None, rotamers=False, ratio=True) -> str:
    kernel = perturbed_kernel(seed=2, elements=["C", "N", "O"])
    if not ratio:
        trained = kernel
        kernel = RotamersWithoutRatio.from_config(trained.to_config())
        kernel.load_state_dict(trained.state_dict())
    kernel.set_side_chains(*((0.2, 0.6, 0.3, 0.0) if rotamers else (0.4, 0.6, 0.3, 0.5)))
    if rotamers:
        kernel.set_local(0.8, 0.2)  # pivots mostly small, so a redraw's fate is chi1's energy
        kernel.set_rotamers(1.0, 0.5, 0.3)
        kernel.rotamer_centres = [0.0, 2.1]  # away from chi1's mode (-151 degrees), for power
    if jumps is not None:
        kernel.chi_jumps = jumps
    flow = InternalTimewarpFlow(["C", "N", "O"], hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    with torch.no_grad():
        flow.log_scale_table.copy_(torch.log(torch.tensor([0.005, 0.1, 1.0])).expand_as(flow.log_scale_table))
    flow.set_kernels(0.0, 0.0, 1.0, local_step=1.0)  # bonds and angles by a symmetric random walk
    path = tmp_path / f"side_chains_{jumps}_{rotamers}_{ratio}.pt"
    module = ExportedProposal(ProposalMixture([kernel, flow], [0.7, 0.3]).eval(), 1.0, TEMPERATURE, {})
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def dihedral_z_scores(model_path, steps: int, seed: int = 3) -> tuple:
    """z-scores of the means of cos and sin of each dihedral against their exact values, with
    standard errors from the statistical inefficiency of each series."""
    x0 = side_chain_positions()
    x, acceptance = sample_positions(model_path, ELEMENTS, side_chain_system(x0), [mm.Vec3(*p) for p in x0], steps,
                                     seed, TEMPERATURE)
    angles = dihedrals(torch.tensor(x[200:]), [atoms for atoms, *_ in TORSIONS.values()]).numpy()
    scores = {}
    for column, (name, (_, n, phase, k)) in enumerate(TORSIONS.items()):
        density = lambda t: math.exp(-k * (1 + math.cos(n * t - phase)))  # noqa: E731
        norm = integrate.quad(density, -math.pi, math.pi)[0]
        # phi's two modes (+-90 degrees) are the same law shifted by 180 degrees, and a chain of
        # 8,000 steps crosses between them 0-3 times (measured), so cos and sin of phi would judge
        # that luck; cos and sin of 2 phi are the same in both modes and judge the law within them.
        m = n if name == "phi" else 1
        for f_name, f in (("cos", np.cos), ("sin", np.sin)):
            mean = integrate.quad(lambda t: f(m * t) * density(t), -math.pi, math.pi)[0] / norm
            var = integrate.quad(lambda t: f(m * t) ** 2 * density(t), -math.pi, math.pi)[0] / norm - mean ** 2
            values = f(m * angles[:, column])
            g = timeseries.statistical_inefficiency(values)
            scores[f"{f_name} {name}"] = (values.mean() - mean) / math.sqrt(var * g / len(values))
    return scores, acceptance


def test_mh_with_side_chain_moves_samples_the_exact_torsion_law(tmp_path):
    scores, acceptance = dihedral_z_scores(export_side_chain_model(tmp_path), 8000)
    assert 0.02 < acceptance < 0.95
    assert all(abs(z) < 4.5 for z in scores.values()), scores


def test_mh_with_asymmetric_jumps_is_detected(tmp_path):
    """Power check: rotamer jumps of +120 degrees only (no reverse move) must fail."""
    scores, _ = dihedral_z_scores(export_side_chain_model(tmp_path, jumps=[2 * math.pi / 3]), 8000)
    assert max(abs(z) for z in scores.values()) > 4.5, scores


def test_mh_with_rotamer_redraws_samples_the_exact_torsion_law(tmp_path):
    scores, acceptance = dihedral_z_scores(export_side_chain_model(tmp_path, rotamers=True), 8000)
    assert 0.02 < acceptance < 0.95
    assert all(abs(z) < 4.5 for z in scores.values()), scores


def test_mh_with_rotamer_redraws_without_their_ratio_is_detected(tmp_path):
    """Power check: chi1 redrawn near the rotamers, but h left out of the ratio, must fail."""
    scores, _ = dihedral_z_scores(export_side_chain_model(tmp_path, rotamers=True, ratio=False), 8000)
    assert max(abs(z) for z in scores.values()) > 4.5, scores


def export_kernel_mixture(tmp_path, asymmetric: bool = False) -> str:
    """A mixture of three kernels: backbone pivots, chi-only turns (SideChainKernel) and the
    internal flow's local steps of bonds and angles."""
    kernel = perturbed_kernel(seed=2, elements=["C", "N", "O"])
    turns = SideChainKernel(["C", "N", "O"], jump=0.6, width=0.3)
    if asymmetric:
        turns.jumps = [2 * math.pi / 3]  # +120 degrees only: no reverse move
    flow = InternalTimewarpFlow(["C", "N", "O"], hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    with torch.no_grad():
        flow.log_scale_table.copy_(torch.log(torch.tensor([0.005, 0.1, 1.0])).expand_as(flow.log_scale_table))
    flow.set_kernels(0.0, 0.0, 1.0, local_step=1.0)
    path = tmp_path / f"mixture_{asymmetric}.pt"
    module = ExportedProposal(ProposalMixture([kernel, turns, flow], [0.4, 0.3, 0.3]).eval(), 1.0, TEMPERATURE, {})
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def test_side_chain_kernel_turns_one_chi_and_is_unavailable_without_one():
    x, types, _ = minimized_peptide("KE")
    turns = SideChainKernel(["H", "C", "N", "O", "S"], jump=0.8, width=0.2)
    torch.manual_seed(4)
    y, log_ratio = turns.propose(x, types, 100)
    valid = log_ratio > -1e29
    assert valid.sum() > 60 and (log_ratio[valid] == 0).all()
    bonds, sides = turns.torsions(x, types)
    assert bonds.shape[0] == 7  # Lys CA-CB .. CD-CE, Glu CA-CB .. CG-CD
    gp = minimized_peptide("GP")[:2]  # glycine has no chi, proline's lie in its ring
    assert not turns.available(*gp) and turns.available(x, types)
    with pytest.raises(ValueError, match="no side-chain torsion"):
        turns.propose(*gp, 2)


def test_mh_with_a_mixture_of_three_kernels_samples_the_exact_torsion_law(tmp_path):
    scores, acceptance = dihedral_z_scores(export_kernel_mixture(tmp_path), 8000)
    assert 0.02 < acceptance < 0.95
    assert all(abs(z) < 4.5 for z in scores.values()), scores


def test_mh_with_a_mixture_with_an_asymmetric_kernel_is_detected(tmp_path):
    """Power check: the same mixture with chi turns of +120 degrees only must fail."""
    scores, _ = dihedral_z_scores(export_kernel_mixture(tmp_path, asymmetric=True), 8000)
    assert max(abs(z) for z in scores.values()) > 4.5, scores


@pytest.mark.parametrize("sequence", ["A", "GP"])
def test_rotamer_redraws_on_a_molecule_without_side_chain_torsions(sequence, tmp_path):
    """export --rotamers on ACE-ALA-NME (or Gly/Pro): no chi1 to redraw, so the pivots are those of
    the same kernel without rotamers, draw for draw (this raised IndexError before)."""
    from kernel_cli import run_cli
    from openmm_timewarp.proposals.export import save_checkpoint

    x, types, _ = minimized_peptide(sequence)
    backbone = tmp_path / "backbone.pt"
    save_checkpoint(backbone, perturbed_kernel(), {})
    flow = tmp_path / "flow.pt"
    save_checkpoint(flow, InternalTimewarpFlow(["H", "C", "N", "O", "S"], hidden=8, num_couplings=1,
                                               num_geometry_couplings=1, embed_dim=4),
                    {"lag_ps": 1.0, "temperature_K": 300.0})
    outputs = []
    for rotamers in (["--rotamers", "1", "1", "0.35"], []):
        out = tmp_path / f"model{len(rotamers)}.pt"
        assert run_cli(["export", str(flow), str(out), "--backbone", str(backbone), "--backbone-weight", "1"]
                       + rotamers) == 0
        torch.manual_seed(3)
        outputs.append(torch.jit.load(str(out))(x, types, 32))
    (y, log_ratio), (y_off, log_ratio_off) = outputs
    assert (log_ratio > -1e29).sum() > 8 and torch.isfinite(log_ratio).all()
    assert torch.equal(y, y_off) and torch.equal(log_ratio, log_ratio_off)
