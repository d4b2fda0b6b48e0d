"""Backbone pivot kernel: residue detection, geometry of the moves, the density, its training, export
and exact Metropolis-Hastings through the C++ integrator on a backbone whose (phi, psi) law is known."""
from __future__ import annotations

import json
import math

import numpy as np
import openmm as mm
import pytest
import torch
from pymbar import timeseries
from scipy import integrate

from conftest import BOLTZMANN, ELEMENTS, minimized_peptide, perturbed_kernel, sample_positions
from kernel_cli import run_cli
from openmm_timewarp import systems
from openmm_timewarp.errors import InputError
from openmm_timewarp.proposals.backbone import BackboneProposal, backbone_angles
from openmm_timewarp.proposals.export import ExportedProposal, load_checkpoint
from openmm_timewarp.proposals.internal_flow import InternalTimewarpFlow
from openmm_timewarp.proposals.kernel import ProposalKernel
from openmm_timewarp.proposals.mixture import ProposalMixture

@pytest.mark.parametrize("sequence, expected", [
    ("A", [("ACE:C", "ALA:N", "ALA:CA", "ALA:C", "NME:N", True)]),
    ("GP", [("ACE:C", "GLY:N", "GLY:CA", "GLY:C", "PRO:N", True), ("GLY:C", "PRO:N", "PRO:CA", "PRO:C", "NME:N", False)]),
    ("NQ", [("ACE:C", "ASN:N", "ASN:CA", "ASN:C", "GLN:N", True), ("ASN:C", "GLN:N", "GLN:CA", "GLN:C", "NME:N", True)]),
])
def test_residues_are_found_from_the_bond_graph(sequence, expected):
    """Side-chain amides (Asn, Gln) are not backbone; proline's phi lies in a ring and stays."""
    x, types, names = minimized_peptide(sequence)
    backbone, sides, features = BackboneProposal(ELEMENTS).residues(x, types)
    found = [tuple(names[i] for i in row) + (bool(side[0].any()),) for row, side in zip(backbone.tolist(), sides)]
    assert found == expected
    assert features.shape == (len(expected), 3 * len(ELEMENTS) + 2)
    # a proline next raises the "next residue is a proline" flag of the residue before it
    assert [bool(f[-1]) for f in features] == [sequence[i + 1:i + 2] == "P" for i in range(len(sequence))]


def test_local_steps_settings_are_checked():
    kernel = BackboneProposal(ELEMENTS)
    for fraction, width in ((1.0, 0.3), (-0.1, 0.3), (0.2, 0.0), (0.2, 2.0)):
        with pytest.raises(ValueError, match="local fraction"):
            kernel.set_local(fraction, width)


def test_molecule_without_backbone_gets_only_flow_proposals():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.0, 0.0], [0.2, 0.2, 0.0], [0.4, 0.2, 0.1]], dtype=torch.float64)
    types = torch.tensor([4, 4, 4, 4])
    kernel = BackboneProposal(ELEMENTS)
    assert kernel.residues(x, types)[0].shape[0] == 0
    with pytest.raises(ValueError, match="no residue"):
        kernel.propose(x, types, 2)
    flow = InternalTimewarpFlow(ELEMENTS, hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    y, _ = ProposalMixture([kernel, flow], [1.0, 0.0]).propose(x, types, 3)
    assert y.shape == (3, 4, 3)


def distances(x: torch.Tensor) -> torch.Tensor:
    # exact differences: torch.cdist switches to a matrix-product formula (errors ~1e-8) above 25 atoms
    return ((x[:, None] - x[None]) ** 2).sum(-1).sqrt()


@pytest.mark.parametrize("sequence", ["A", "GP", "FW"])
def test_pivots_turn_one_residue_rigidly_and_the_ratio_is_the_density_ratio(sequence):
    x, types, _ = minimized_peptide(sequence)
    kernel = perturbed_kernel()
    torch.manual_seed(1)
    y, log_ratio = kernel.propose(x, types, 64)
    backbone, sides, features = kernel.residues(x, types)
    valid = log_ratio > -1e29
    assert valid.sum() > 32
    y, log_ratio = y[valid], log_ratio[valid]
    phi_x, psi_x = backbone_angles(x, backbone)
    phi_y, psi_y = backbone_angles(y, backbone)
    changed = ((phi_y - phi_x).abs() > 1e-9) | ((psi_y - psi_x).abs() > 1e-9)
    assert (changed.sum(1) <= 1).all(), "a pivot moves one residue"
    assert torch.allclose(y.mean(1), x.mean(0).expand(len(y), 3), atol=1e-12), "the atom mean is kept"
    free = sides[:, 0].any(1)
    assert torch.allclose(phi_y[:, ~free], phi_x[~free]), "a phi in a ring never turns"
    # Rigid pieces: every distance within C-alpha's fragment and within each turned side is kept.
    for row in range(len(y)):
        r = int(changed[row].nonzero()[0]) if changed[row].any() else 0
        for piece in (sides[r, 0], sides[r, 1], ~(sides[r, 0] | sides[r, 1])):
            idx = piece.nonzero().flatten()
            if len(idx) > 1:
                assert torch.allclose(distances(y[row, idx]), distances(x[idx]), atol=1e-12)
    # Independent evaluation of log g(phi, psi) - log g(phi', psi') from the measured angles.
    params = kernel.density.mixture(features)
    with torch.no_grad():
        log_g_x = kernel.density.log_prob(params, phi_x, psi_x, free)
        for row in range(len(y)):
            r = int(changed[row].nonzero()[0]) if changed[row].any() else 0
            one = tuple(p[r:r + 1] for p in params)
            log_g_y = kernel.density.log_prob(one, phi_y[row, r:r + 1], psi_y[row, r:r + 1], free[r:r + 1])
            assert float(log_ratio[row]) == pytest.approx(float(log_g_x[r] - log_g_y[0]), abs=1e-8)


@pytest.mark.parametrize("phi_free, basin_prior", [(True, 0.0), (False, 0.0), (True, 0.3), (False, 0.3)])
def test_density_is_normalised_and_sampled_exactly(phi_free, basin_prior):
    kernel = perturbed_kernel(seed=3)
    kernel.density.set_basin_prior(basin_prior, 0.35)
    features = torch.rand(1, kernel.num_features(), dtype=torch.float64)
    params = kernel.density.mixture(features)
    grid = torch.linspace(-math.pi, math.pi, 401, dtype=torch.float64)[:-1]
    cell = (2 * math.pi / 400) ** (2 if phi_free else 1)
    with torch.no_grad():
        if phi_free:
            phi, psi = torch.meshgrid(grid, grid, indexing="ij")
            phi, psi = phi.flatten(), psi.flatten()
        else:
            phi, psi = torch.zeros_like(grid), grid
        rows = tuple(p.expand(len(phi), -1) for p in params)
        density = torch.exp(kernel.density.log_prob(rows, phi, psi, torch.full_like(phi, phi_free, dtype=torch.bool)))
        assert float(density.sum() * cell) == pytest.approx(1.0, abs=1e-6)
        torch.manual_seed(0)
        sample_phi, sample_psi = kernel.density.sample(tuple(p.expand(20000, -1) for p in params))
    # E[cos psi] and E[sin psi] under the density against the samples (standard error of 20000 draws).
    psi_weights = density.view(400, 400).sum(0) if phi_free else density
    psi_weights = psi_weights / psi_weights.sum()
    for f in (torch.cos, torch.sin):
        exact = float((f(grid) * psi_weights).sum())
        values = f(sample_psi)
        assert abs(float(values.mean()) - exact) < 4.5 * float(values.std()) / math.sqrt(20000)


def test_basin_prior_adds_mass_at_the_backbone_minima():
    kernel = perturbed_kernel(seed=3)
    features = torch.rand(1, kernel.num_features(), dtype=torch.float64)
    pii_l = (torch.tensor([math.radians(60.0)], dtype=torch.float64), torch.tensor([math.pi], dtype=torch.float64))
    free = torch.tensor([True])
    with torch.no_grad():
        before = kernel.density.log_prob(kernel.density.mixture(features), *pii_l, free)
        kernel.density.set_basin_prior(0.12, 0.35)
        after = kernel.density.log_prob(kernel.density.mixture(features), *pii_l, free)
    # Each of the six minima gets 0.02 of a product of two wrapped normals of 0.35 rad at its centre.
    peak = 0.02 * (1.0 - kernel.density.floor) / (2.0 * math.pi * 0.35 ** 2)
    assert float(torch.exp(after) - 0.88 * torch.exp(before)) == pytest.approx(peak, rel=0.01)
    with pytest.raises(ValueError, match="basin prior weight"):
        kernel.density.set_basin_prior(1.0, 0.35)


def test_scripted_mixture_matches_python_and_seeds_reproduce():
    x, types, _ = minimized_peptide("A")
    flow = InternalTimewarpFlow(ELEMENTS, hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    flow.set_kernels(0.0, 0.9, 0.1, local_step=0.3)
    kernel = perturbed_kernel()
    kernel.density.set_basin_prior(0.1, 0.35)  # a setting of the exported file
    mixture = ProposalMixture([kernel, flow], [0.6, 0.4])
    scripted = torch.jit.script(ExportedProposal(mixture.eval(), 500.0, 310.0, {}))
    torch.manual_seed(7)
    y_py, r_py = mixture.propose(x, types, 16)
    torch.manual_seed(7)
    y_ts, r_ts = scripted(x, types, 16)
    assert torch.allclose(y_py, y_ts) and torch.allclose(r_py, r_ts)
    torch.manual_seed(8)
    y_other, _ = scripted(x, types, 16)
    assert not torch.allclose(y_ts, y_other)


def test_training_cli_fits_frames_and_export_mixes_it(tmp_path):
    """A few steps on ACE-ALA-NME frames lower the NLL; export --backbone writes a working mixture."""
    from openmm_timewarp.data.generate import Settings, generate

    data = tmp_path / "data"
    generate(Settings(sequence="A", lag_ps=0.2, frame_interval_ps=0.1, trajectory_ps=1.0, restraint_ps=2.0,
                      equilibrate_ps=0.1, seed=3), str(data), n_pairs=60, progress=False)
    out = tmp_path / "backbone.pt"
    assert run_cli(["train-backbone", "--data", str(data), "--out", str(out), "--steps", "200",
                    "--components", "4"]) == 0
    kernel, info = load_checkpoint(out)
    assert kernel.kind == "backbone" and kernel.to_config().num_components == 4
    assert info["sequences"] == ["A"] and info["train_nll"] < 2 * math.log(2 * math.pi)
    with pytest.raises(InputError, match="exists"):  # an existing checkpoint is not overwritten
        run_cli(["train-backbone", "--data", str(data), "--out", str(out), "--steps", "1"])
    flow = InternalTimewarpFlow(ELEMENTS, hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    checkpoint = tmp_path / "flow.pt"
    torch.save({"architecture": "internal", "flow_config": json.loads(flow.config_json),
                "flow_state": flow.state_dict(), "info": {"lag_ps": 0.2, "temperature_K": 310.0}}, checkpoint)
    model = tmp_path / "model.pt"
    assert run_cli(["export", str(checkpoint), str(model), "--kernels", "0", "0.9", "0.1", "--backbone", str(out),
                    "--backbone-weight", "0.7", "--basin-prior", "0.1", "0.3"]) == 0
    scripted = torch.jit.load(str(model))
    metadata = json.loads(scripted.metadata_json())
    assert metadata["backbone"]["weight"] == 0.7 and metadata["kernel"]["weights"] == pytest.approx([0.7, 0.3])
    backbone, flow_config = metadata["kernel"]["kernels"]
    assert (backbone["basin_prior_weight"], backbone["basin_prior_width"]) == (0.1, 0.3)
    assert flow_config["kernel_weights"] == pytest.approx([0.0, 0.9, 0.1])
    density = dict(scripted.named_modules())["kernel.kernels.0.density"]
    assert density.prior_log_weight == pytest.approx(math.log(0.1 / 6))  # the prior survives save and load
    assert torch.allclose(density.prior_log_sigma, torch.full((6,), math.log(0.3), dtype=torch.float64))
    x, types, _ = minimized_peptide("A")
    y, log_ratio = scripted(x, types, 8)
    assert y.shape == (8, 22, 3) and torch.isfinite(log_ratio).all()


# A bare backbone C0(=O0)-N1-CA-C1(=O1)-N2 with harmonic bonds and angles and torsion potentials on
# phi = C0-N1-CA-C1 and psi = N1-CA-C1-N2 only: no other force couples them, so their joint law is
# p(phi, psi) ~ exp(-beta V1(phi)) exp(-beta V2(psi)) whatever the bonds and angles are.
TEMPERATURE = 300.0
BACKBONE_ELEMENTS = ["C", "O", "N", "C", "C", "O", "N"]
BONDS = [(0, 1, 0.123), (0, 2, 0.133), (2, 3, 0.146), (3, 4, 0.152), (4, 5, 0.123), (4, 6, 0.133)]
TORSIONS = {"phi": ((0, 2, 3, 4), 2, 0.0, 2.0), "psi": ((2, 3, 4, 6), 1, 1.0, 1.5)}  # atoms, n, phase, k/kT


def backbone_system() -> mm.System:
    kt = BOLTZMANN * TEMPERATURE
    system = mm.System()
    for element in BACKBONE_ELEMENTS:
        system.addParticle({"C": 12.0, "N": 14.0, "O": 16.0}[element])
    bonds, angles, torsions = mm.HarmonicBondForce(), mm.HarmonicAngleForce(), mm.PeriodicTorsionForce()
    for i, j, length in BONDS:
        bonds.addBond(i, j, length, kt / 0.005 ** 2)
    for i, j, k in ((1, 0, 2), (0, 2, 3), (2, 3, 4), (3, 4, 5), (3, 4, 6), (5, 4, 6)):
        angles.addAngle(i, j, k, 2.1, 100 * kt)
    for atoms, n, phase, k in TORSIONS.values():
        torsions.addTorsion(*atoms, n, phase, k * kt)
    for force in (bonds, angles, torsions):
        system.addForce(force)
    return system


class NoRatio(ProposalKernel):
    """The same pivots with the density ratio left out (a wrong sampler, for the power check)."""

    kind = "backbone"
    changes_geometry = False

    def __init__(self, kernel: BackboneProposal) -> None:
        super().__init__()
        self.kernel = kernel
        self.element_symbols = kernel.element_symbols

    def to_config(self):
        return self.kernel.to_config()

    def available(self, positions: torch.Tensor, atom_types: torch.Tensor) -> bool:
        return self.kernel.available(positions, atom_types)

    def propose(self, positions: torch.Tensor, atom_types: torch.Tensor, num_proposals: int):
        y, log_ratio = self.kernel.propose(positions, atom_types, num_proposals)
        return y, torch.where(log_ratio > -1e29, torch.zeros_like(log_ratio), log_ratio)


def backbone_positions() -> list:
    ang = np.array
    x = [ang([0.0, 0.0, 0.0])]
    x.append(ang([0.0, 0.123, 0.0]))                                   # O0 on C0
    x.append(ang([0.133, 0.0, 0.0]) * 1.0)                              # N1
    x.append(x[2] + 0.146 * ang([math.cos(-1.0), math.sin(-1.0), 0.0]))  # CA
    x.append(x[3] + 0.152 * ang([1.0, 0.0, 0.3]) / np.linalg.norm([1.0, 0.0, 0.3]))  # C1
    x.append(x[4] + 0.123 * ang([0.2, 1.0, 0.0]) / np.linalg.norm([0.2, 1.0, 0.0]))  # O1
    x.append(x[4] + 0.133 * ang([1.0, -0.6, -0.2]) / np.linalg.norm([1.0, -0.6, -0.2]))  # N2
    return [mm.Vec3(*p) for p in x]


def export_backbone_model(tmp_path, drop_ratio: bool = False, local_fraction: float = 0.0):
    kernel = perturbed_kernel(seed=2, elements=["C", "N", "O"])
    kernel.set_local(local_fraction, 0.4)
    flow = InternalTimewarpFlow(["C", "N", "O"], hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    with torch.no_grad():
        flow.log_scale_table.copy_(torch.log(torch.tensor([0.005, 0.1, 1.0])).expand_as(flow.log_scale_table))
    flow.set_kernels(0.0, 0.0, 1.0, local_step=1.0)  # bonds and angles by a symmetric random walk
    if drop_ratio:
        kernel = NoRatio(kernel)
    path = tmp_path / f"backbone_{drop_ratio}_{local_fraction}.pt"
    module = ExportedProposal(ProposalMixture([kernel, flow], [0.7, 0.3]).eval(), 1.0, TEMPERATURE, {})
    torch.jit.save(torch.jit.script(module), str(path))
    return path


def torsion_z_scores(model_path, steps: int, seed: int = 3) -> dict:
    x, acceptance = sample_positions(model_path, BACKBONE_ELEMENTS, backbone_system(), backbone_positions(), steps,
                                     seed, TEMPERATURE)
    backbone = torch.tensor([[0, 2, 3, 4, 6]])
    phi, psi = (a[:, 0].numpy() for a in backbone_angles(torch.tensor(x[200:]), backbone))
    scores = {}
    for name, series in (("phi", phi), ("psi", psi)):
        _, n, phase, k = TORSIONS[name]
        density = lambda t: math.exp(-k * (1 + math.cos(n * t - phase)))  # noqa: E731
        norm = integrate.quad(density, -math.pi, math.pi)[0]
        for f_name, f in (("cos", math.cos), ("sin", math.sin)):
            mean = integrate.quad(lambda t: f(t) * density(t), -math.pi, math.pi)[0] / norm
            var = integrate.quad(lambda t: f(t) ** 2 * density(t), -math.pi, math.pi)[0] / norm - mean ** 2
            values = np.cos(series) if f_name == "cos" else np.sin(series)
            g = timeseries.statistical_inefficiency(values)
            scores[f"{f_name} {name}"] = (values.mean() - mean) / math.sqrt(var * g / len(values))
    return scores, acceptance


@pytest.mark.parametrize("local_fraction", [0.0, 0.5])
def test_mh_with_backbone_pivots_samples_the_exact_torsion_law(tmp_path, local_fraction):
    """Pivots from the density alone, and half of them local random-walk steps (mixture ratio)."""
    scores, acceptance = torsion_z_scores(export_backbone_model(tmp_path, local_fraction=local_fraction), 8000)
    assert 0.02 < acceptance < 0.95
    assert all(abs(z) < 4.5 for z in scores.values()), scores


def test_mh_without_the_density_ratio_is_detected(tmp_path):
    """Power check: the same chain without log g(phi, psi) - log g(phi', psi') must fail."""
    scores, _ = torsion_z_scores(export_backbone_model(tmp_path, drop_ratio=True), 8000)
    assert max(abs(z) for z in scores.values()) > 4.5, scores


def test_density_training_drops_frames_with_a_d_residue():
    import io

    from openmm import app, unit

    from openmm_timewarp.training.backbone import d_frames

    topology, positions = systems.peptide_from_sequence("AV", seed=1)
    text = io.StringIO()
    app.PDBFile.writeFile(topology, positions, text)
    x = np.asarray(positions.value_in_unit(unit.nanometer))
    frames = torch.tensor(np.stack([x, x * np.array([-1.0, 1.0, 1.0]), x + 0.1]))  # L, mirror image (D), L
    assert d_frames(frames, {"topology_pdb": text.getvalue()}).tolist() == [False, True, False]
    assert d_frames(frames, {}).tolist() == [False, False, False]  # no topology recorded: nothing to judge


def test_backbone_checkpoints_of_earlier_versions_still_load(tmp_path):
    """The density trainer used to write backbone_config/backbone_state; recipes may hold such files."""
    kernel = perturbed_kernel(seed=4)
    old = {"elements": ELEMENTS, "density": {"num_features": kernel.num_features(), "num_components": 4,
                                             "hidden": 16, "floor": 0.02}}
    torch.save({"backbone_config": old, "backbone_state": kernel.state_dict(), "info": {"seed": 4}},
               tmp_path / "old.pt")
    loaded, info = load_checkpoint(tmp_path / "old.pt")
    assert loaded.kind == "backbone" and info == {"seed": 4}
    assert loaded.to_config() == kernel.to_config()
    x, types, _ = minimized_peptide("A")
    torch.manual_seed(0)
    expected = kernel.propose(x, types, 8)
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(loaded.propose(x, types, 8), expected))
