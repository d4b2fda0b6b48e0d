"""The internal-coordinate flow: Z-matrix geometry, exact densities, and exact MH sampling."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app
from pymbar import timeseries
from scipy import integrate

from conftest import ALA_PDB, BOLTZMANN, sample_positions
from openmm_timewarp.proposals import geometry, zmatrix
from openmm_timewarp.proposals.export import ExportedProposal
from openmm_timewarp.proposals.internal_flow import InternalTimewarpFlow

ELEMENTS = ["H", "C", "N", "O", "S"]
PDB = Path(ALA_PDB)


def alanine_dipeptide():
    pdb = app.PDBFile(str(PDB))
    x = torch.tensor(pdb.getPositions(asNumpy=True)._value, dtype=torch.float64)
    types = torch.tensor([ELEMENTS.index(a.element.symbol) for a in pdb.topology.atoms()])
    return x, types


def perturbed_flow(seed: int = 0, scale: float = 0.03, elements=ELEMENTS) -> InternalTimewarpFlow:
    """A small flow whose couplings are far from the identity (the output heads start at zero)."""
    torch.manual_seed(seed)
    flow = InternalTimewarpFlow(elements, hidden=16, num_couplings=2, embed_dim=4)
    with torch.no_grad():
        for layer in list(flow.torsion_layers) + list(flow.geometry_layers):
            layer.net.head.weight.normal_(0.0, scale)
            layer.net.head.bias.normal_(0.0, scale)
        flow.log_scale_table.copy_(torch.log(torch.tensor([0.001, 0.01, 0.3])).expand_as(flow.log_scale_table))
    return flow.eval()


def test_zmatrix_round_trip_on_alanine_dipeptide():
    x, types = alanine_dipeptide()
    flow = InternalTimewarpFlow(ELEMENTS)
    zm = flow.zmatrix(x, types)
    assert int((zm[:, 3] == 0).sum()) == 1 and ELEMENTS[int(types[zm[:, 3] == 0])] == "C"
    assert int((zm[:, :3] >= 0).sum()) == 3 * len(x) - 6
    origin, e1, e2 = zmatrix.frame(x, zm)
    rebuilt = zmatrix.to_cartesian(zmatrix.to_internal(x[None], zm), zm, origin, e1, e2)
    assert torch.allclose(rebuilt[0], x, atol=1e-12)
    # Methyl and carbonyl neighbours of a first sibling get stiff offset torsions, not new rotors.
    assert int(zm[:, 4].sum()) >= 8


def test_separate_fragments_are_joined_by_a_virtual_bond():
    x, types = alanine_dipeptide()
    x = x.clone()
    x[6:] += 1.0  # pull the molecule apart after the acetyl cap
    flow = InternalTimewarpFlow(ELEMENTS)
    zm = flow.zmatrix(x, types)
    assert int((zm[:, :3] >= 0).sum()) == 3 * len(x) - 6
    origin, e1, e2 = zmatrix.frame(x, zm)
    assert torch.allclose(zmatrix.to_cartesian(zmatrix.to_internal(x[None], zm), zm, origin, e1, e2)[0], x,
                          atol=1e-12)
    bond = zmatrix.to_internal(x[None], zm)[0, :, 0]
    assert float(bond.max()) > 1.0  # the virtual bond spans the gap


def test_log_jacobian_is_the_cartesian_volume_element():
    """det d(x)/d(q, translation, rotation) / J(q) must not depend on the configuration."""
    x0, types = alanine_dipeptide()
    zm = InternalTimewarpFlow(ELEMENTS).zmatrix(x0, types)
    dims = zm[:, :3] >= 0
    ratios = []
    generator = torch.Generator().manual_seed(3)
    for trial in range(3):
        q0 = zmatrix.to_internal(x0[None], zm)[0]
        q0 = q0 + torch.randn(q0.shape, generator=generator, dtype=torch.float64) * torch.tensor([0.005, 0.05, 0.5]) * dims
        origin, e1, e2 = zmatrix.frame(x0, zm)

        def cartesian(params):
            q = torch.zeros_like(q0)
            q[dims] = params[:-6]
            inner = zmatrix.to_cartesian(q[None], zm, origin, e1, e2)[0]
            omega, shift = params[-6:-3], params[-3:]
            generator_matrix = torch.zeros(3, 3, dtype=params.dtype)
            generator_matrix[0, 1], generator_matrix[0, 2], generator_matrix[1, 2] = -omega[2], omega[1], -omega[0]
            rotation = torch.linalg.matrix_exp(generator_matrix - generator_matrix.T)
            return ((inner - origin) @ rotation.T + origin + shift).flatten()

        params = torch.cat([q0[dims], torch.zeros(6, dtype=torch.float64)])
        jac = torch.autograd.functional.jacobian(cartesian, params)
        log_det = torch.linalg.slogdet(jac)[1]
        ratios.append(float(log_det - zmatrix.log_jacobian(q0, zm)))
    assert max(ratios) - min(ratios) < 1e-8, ratios


def test_generate_normalise_and_log_det():
    flow = perturbed_flow()
    x, types = alanine_dipeptide()
    zm = flow.zmatrix(x, types)
    dims = (zm[:, :3] >= 0).float()
    q = zmatrix.to_internal(x[None], zm)
    context, weights = flow.context(q, x[None], types, zm)
    torch.manual_seed(2)
    z_u, z_v = torch.randn(1, len(x), 3) * dims, torch.randn(1, len(x), 3)
    u, w, log_det_t, log_det_g = flow.generate(z_u, z_v, context, weights, dims)
    back_u, back_v, inverse_t, inverse_g = flow.normalise(u, w, context, weights, dims)
    assert torch.allclose(back_u, z_u, atol=1e-5) and torch.allclose(back_v, z_v, atol=1e-5)
    assert torch.allclose(log_det_t, inverse_t, atol=1e-4) and torch.allclose(log_det_g, inverse_g, atol=1e-4)
    log_det = log_det_t + log_det_g
    mask = torch.cat([dims.bool().flatten(), torch.ones(3 * len(x), dtype=torch.bool)])

    def generative(flat):
        full = torch.zeros(6 * len(x))
        full[mask] = flat
        a, b = full[:3 * len(x)].view(1, -1, 3), full[3 * len(x):].view(1, -1, 3)
        out_u, out_w, _, _ = flow.generate(a, b, context, weights, dims)
        return torch.cat([out_u.flatten(), out_w.flatten()])[mask]

    jac = torch.autograd.functional.jacobian(generative, torch.cat([z_u.flatten(), z_v.flatten()])[mask])
    assert abs(float(torch.linalg.slogdet(jac.double())[1]) - float(log_det)) < 1e-3


def test_propose_log_ratio_equals_densities_of_both_moves():
    flow = perturbed_flow()
    x, types = alanine_dipeptide()
    torch.manual_seed(11)
    y, log_ratio = flow.propose(x, types, 4)
    # Replay the draws of propose: forward base noise, then the current auxiliaries v.
    zm = flow.zmatrix(x, types)
    dims = (zm[:, :3] >= 0).float()
    torch.manual_seed(11)
    torch.multinomial(flow.kernel_weights, 4, replacement=True)
    z_u, z_v = torch.randn(4, len(x), 3) * dims, torch.randn(4, len(x), 3)
    v = torch.randn(4, len(x), 3)
    q_x = zmatrix.to_internal(x[None], zm)
    context, weights = flow.context(q_x, x[None], types, zm)
    _, w, _, _ = flow.generate(z_u, z_v, context, weights, dims)
    q_y = zmatrix.to_internal(y, zm)
    with torch.no_grad():
        log_forward = flow.log_prob_internal(x.expand(4, -1, -1), q_y, w, types, zm) - zmatrix.log_jacobian(q_y, zm)
        log_reverse = flow.log_prob_internal(y, q_x.expand(4, -1, -1), v, types, zm) - zmatrix.log_jacobian(q_x, zm)
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = (normal.log_prob(w.double()).sum((1, 2)) + log_reverse
                - normal.log_prob(v.double()).sum((1, 2)) - log_forward)
    # Moves that change the bond graph (here: clashes) are certain rejections; compare the rest.
    finite = log_ratio > geometry.REJECT
    assert finite.sum() >= 2, log_ratio
    assert torch.allclose(log_ratio[finite], expected[finite], atol=2e-3), (log_ratio, expected)
    assert log_ratio.abs().max() > 0.1, "the test flow should not be symmetric"
    # Rigid frame kept: the root atom does not move.
    root = int((zm[:, 3] == 0).nonzero())
    assert torch.allclose(y[:, root], x[root].expand(4, 3))


def test_torsion_and_local_kernels_move_only_their_coordinates():
    flow = perturbed_flow()
    x, types = alanine_dipeptide()
    zm = flow.zmatrix(x, types)
    q_x = zmatrix.to_internal(x[None], zm)
    for kernels, moved, kept in (((0, 1, 0), 2, (0, 1)), ((0, 0, 1), 0, (2,))):
        flow.set_kernels(*kernels, local_step=0.2)
        y, log_ratio = flow.propose(x, types, 8)
        q_y = zmatrix.to_internal(y, zm)
        assert (log_ratio > geometry.REJECT).sum() >= 4, log_ratio
        for column in kept:
            assert torch.allclose(q_y[..., column], q_x[..., column].expand_as(q_y[..., column]), atol=1e-9)
        assert (q_y[..., moved] - q_x[..., moved]).abs().max() > 1e-5


def test_proposals_that_change_the_bond_graph_are_rejected():
    flow = perturbed_flow()
    with torch.no_grad():
        flow.log_scale_table.copy_(torch.log(torch.tensor([0.2, 0.05, 0.6])).expand_as(flow.log_scale_table))
    x, types = alanine_dipeptide()
    torch.manual_seed(0)
    _, log_ratio = flow.propose(x, types, 64)
    assert (log_ratio == geometry.REJECT).float().mean() > 0.9


# An exactly solvable "molecule": a chain of 4 sulfur atoms (long covalent radii, so that soft
# bonds stay far from the bond-detection cutoff) with harmonic bonds and angles and a 3-fold
# torsion, no nonbonded forces. Its marginals are independent and known in closed form:
# p(b) ~ b^2 exp(-beta kb (b-b0)^2 / 2), p(a) ~ sin(a) exp(-beta ka (a-a0)^2 / 2),
# p(phi) ~ exp(-beta kt (1 + cos(3 phi))). The b^2 and sin(a) factors come from the Jacobian.
CHAIN = dict(b0=0.2, sigma_b=0.02, a0=1.9, sigma_a=0.15, kt_over_kt=1.5)
TEMPERATURE = 300.0


def chain_system() -> mm.System:
    kt = BOLTZMANN * TEMPERATURE
    system = mm.System()
    for _ in range(4):
        system.addParticle(32.0)
    bonds, angles, torsions = mm.HarmonicBondForce(), mm.HarmonicAngleForce(), mm.PeriodicTorsionForce()
    for i in range(3):
        bonds.addBond(i, i + 1, CHAIN["b0"], kt / CHAIN["sigma_b"] ** 2)
    for i in range(2):
        angles.addAngle(i, i + 1, i + 2, CHAIN["a0"], kt / CHAIN["sigma_a"] ** 2)
    torsions.addTorsion(0, 1, 2, 3, 3, 0.0, CHAIN["kt_over_kt"] * kt)
    for force in (bonds, angles, torsions):
        system.addForce(force)
    return system


def chain_start() -> list:
    b, a = CHAIN["b0"], CHAIN["a0"]
    x = [np.zeros(3), np.array([b, 0, 0])]
    x.append(x[1] + b * np.array([-math.cos(a), math.sin(a), 0]))
    x.append(x[2] + b * np.array([1.0, 0.0, 0.3]) / np.linalg.norm([1.0, 0.0, 0.3]))
    return [mm.Vec3(*p) for p in x]


def exact_mean(density, low, high, power=1):
    norm = integrate.quad(density, low, high)[0]
    return integrate.quad(lambda s: s ** power * density(s), low, high)[0] / norm


def sample_chain(model_path: Path, steps: int, seed: int = 5):
    return sample_positions(model_path, ["S"] * 4, chain_system(), chain_start(), steps, seed, TEMPERATURE)


def chain_z_scores(x: np.ndarray) -> dict:
    # Bonds and angles are pooled per frame (all share one marginal) for more statistical power.
    bond = np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1).mean(-1)
    u, v = x[:, :-2] - x[:, 1:-1], x[:, 2:] - x[:, 1:-1]
    angle = np.arccos((u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)).mean(-1)
    b1, b2, b3 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 1], x[:, 3] - x[:, 2]
    n1, n2 = np.cross(b1, b2), np.cross(b2, b3)
    m1 = np.cross(n1, b2 / np.linalg.norm(b2, axis=-1, keepdims=True))
    phi = np.arctan2((m1 * n2).sum(-1), (n1 * n2).sum(-1))
    b0, sb, a0, sa = CHAIN["b0"], CHAIN["sigma_b"], CHAIN["a0"], CHAIN["sigma_a"]
    p_bond = lambda b: b ** 2 * math.exp(-0.5 * ((b - b0) / sb) ** 2)  # noqa: E731
    p_angle = lambda a: math.sin(a) * math.exp(-0.5 * ((a - a0) / sa) ** 2)  # noqa: E731
    p_phi = lambda f: math.exp(-CHAIN["kt_over_kt"] * (1 + math.cos(3 * f)))  # noqa: E731
    scores = {}
    for name, series, density, low, high in (("bond", bond, p_bond, 0.0, 0.3), ("angle", angle, p_angle, 0.0, math.pi),
                                              ("cos3phi", np.cos(3 * phi), None, None, None)):
        if density is None:  # cos(3 phi) under p(phi)
            norm = integrate.quad(p_phi, -math.pi, math.pi)[0]
            mean = integrate.quad(lambda f: math.cos(3 * f) * p_phi(f), -math.pi, math.pi)[0] / norm
            variance = integrate.quad(lambda f: math.cos(3 * f) ** 2 * p_phi(f), -math.pi, math.pi)[0] / norm - mean ** 2
        else:
            mean = exact_mean(density, low, high)
            # independent bonds (angles) in the pooled mean
            variance = (exact_mean(density, low, high, 2) - mean ** 2) / (3 if name == "bond" else 2)
        g = timeseries.statistical_inefficiency(series)
        scores[name] = (series.mean() - mean) / math.sqrt(variance * g / len(series))
    return scores


class NoJacobianFlow(InternalTimewarpFlow):
    """The same flow with the b^2 sin(a) volume factor left out of the MH ratio (a wrong sampler)."""

    def log_volume(self, internal: torch.Tensor, zmatrix: torch.Tensor) -> torch.Tensor:
        return torch.zeros(internal.shape[:-2], dtype=internal.dtype)


def export_chain_model(tmp_path: Path, flow_class=InternalTimewarpFlow) -> Path:
    torch.manual_seed(0)
    flow = flow_class(["S"], hidden=16, num_couplings=2, embed_dim=4)
    with torch.no_grad():
        for layer in list(flow.torsion_layers) + list(flow.geometry_layers):
            layer.net.head.weight.normal_(0.0, 0.02)
            layer.net.head.bias.normal_(0.0, 0.02)
        flow.log_scale_table.copy_(torch.log(torch.tensor([0.02, 0.15, 1.0])).expand_as(flow.log_scale_table))
    flow.set_kernels(full=0.6, torsion=0.2, local=0.2, local_step=1.0)
    path = tmp_path / f"{flow_class.__name__}.pt"
    torch.jit.save(torch.jit.script(ExportedProposal(flow.eval(), 1.0, TEMPERATURE, {})), str(path))
    return path


def test_mh_with_internal_flow_samples_the_exact_distribution(tmp_path):
    x, acceptance = sample_chain(export_chain_model(tmp_path), 12000)
    assert 0.05 < acceptance < 0.95
    scores = chain_z_scores(x[500:])
    assert all(abs(z) < 4.5 for z in scores.values()), scores


@pytest.mark.slow
def test_mh_without_the_jacobian_is_detected(tmp_path):
    """Power check: the same test on a chain whose ratio lacks log J must fail."""
    x, _ = sample_chain(export_chain_model(tmp_path, NoJacobianFlow), 20000)
    scores = chain_z_scores(x[500:])
    assert max(abs(z) for z in scores.values()) > 4.5, scores


def test_internal_acceptance_loss_gradient_improves_acceptance():
    """Steps on the acceptance loss of the torsion kernel raise the acceptance on the chain's law."""
    from openmm_timewarp.training.internal import internal_acceptance_loss

    kt_over_kt = CHAIN["kt_over_kt"]

    def reduced_energy(x):  # the chain's torsion energy / kT; bonds and angles are kept by this kernel
        b1, b2, b3 = x[:, 1] - x[:, 0], x[:, 2] - x[:, 1], x[:, 3] - x[:, 2]
        n1, n2 = torch.cross(b1, b2, dim=-1), torch.cross(b2, b3, dim=-1)
        m1 = torch.cross(n1, b2 / torch.linalg.norm(b2, dim=-1, keepdim=True), dim=-1)
        phi = torch.atan2((m1 * n2).sum(-1), (n1 * n2).sum(-1))
        return kt_over_kt * (1 + torch.cos(3 * phi))

    torch.manual_seed(0)
    flow = InternalTimewarpFlow(["S"], hidden=16, num_couplings=2, embed_dim=4)
    with torch.no_grad():
        flow.log_scale_table.copy_(torch.log(torch.tensor([0.02, 0.15, 3.0])).expand_as(flow.log_scale_table))
    flow.set_kernels(0.0, 1.0, 0.0, local_step=0.1)
    x = torch.tensor(np.array([[list(p) for p in chain_start()]]), dtype=torch.float32).repeat(8, 1, 1)
    batch = {"x_t": x, "atom_types": torch.zeros(8, 4, dtype=torch.long), "mask": torch.ones(8, 4),
             "molecule": torch.zeros(8, dtype=torch.long)}
    optimizer = torch.optim.Adam(flow.parameters(), lr=3e-2)
    accepts = []
    for _ in range(20):
        loss, accept = internal_acceptance_loss(flow, batch, {0: reduced_energy}, starts=8, proposals=8)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accepts.append(accept.item())
    assert np.mean(accepts[-4:]) > 1.5 * np.mean(accepts[:4]), accepts
