"""Contract-v2 files (proposals.compiled): export, agreement with the Python kernel, exactness of a
chain that runs one in the C++ integrator, with its power check, checkpoints and XML."""
import numpy as np
import openmm as mm
import pytest
import torch

from conftest import ELEMENTS, minimized_peptide, perturbed_kernel
from openmm_timewarp.errors import InputError
from openmm_timewarp.model_file import ModelFile
from openmm_timewarp.proposals.backbone import BackboneProposal
from openmm_timewarp.proposals.compiled import CompiledModel, export_compiled, read_entry
from openmm_timewarp.proposals.mixture import ProposalMixture
from openmm_timewarp.proposals.side_chains import SideChainKernel
from test_backbone import TEMPERATURE, torsion_z_scores

SETTINGS = {"integrator": {"hmc_interval": 0, "hmc_steps": 10, "hmc_step_size_ps": 0.001},
            "needs_fast_coordinate_moves": False}


class NoRatioNoise(BackboneProposal):
    """The same pivots with the density ratio left out (a wrong sampler, for the power check)."""

    def propose_noise(self, positions, atom_types, topology, normals, uniforms):
        y, log_ratio, same = super().propose_noise(positions, atom_types, topology, normals, uniforms)
        return y, torch.where(log_ratio > -1e29, torch.zeros_like(log_ratio), log_ratio), same


def peptide_kernel() -> BackboneProposal:
    """A kernel with pivots, chi-only moves, pivots that turn their chi angles and rotamer redraws."""
    kernel = perturbed_kernel(seed=1)
    kernel.set_local(0.2, 0.3)
    kernel.set_side_chains(0.3, 0.5, 0.2, 0.5)
    kernel.set_rotamers(0.5, 0.2, 0.35)
    return kernel


@pytest.fixture(scope="module")
def peptide_model(tmp_path_factory):
    kernel = peptide_kernel()
    path = tmp_path_factory.mktemp("compiled") / "peptide.pt2"
    export_compiled(ProposalMixture([kernel, SideChainKernel(ELEMENTS)], [1.0, 0.0]), path, lag_ps=1.0,
                    temperature_K=310.0, settings=SETTINGS, metadata={"test": True}, log=lambda line: None)
    return kernel, path


def test_compiled_programs_agree_with_the_python_kernel(peptide_model):
    """The same parameters and the same random numbers: the same proposals and log ratios, on
    molecules of other sizes than the tracing example (batch 1, odd, large; 1 to 4 residues)."""
    kernel, path = peptide_model
    model = CompiledModel(path)
    assert [k["kind"] for k in model.entry["kernels"]] == ["backbone"]  # the side-chain kernel has weight 0
    generator = torch.Generator().manual_seed(0)
    moved = 0
    for sequence in ("A", "RW", "GPK", "KWED"):
        x, types, _ = minimized_peptide(sequence)
        topology = model.topology(x, types)[0]
        for batch in (1, 7, 64):
            normals = torch.randn(batch, kernel.num_normals, dtype=torch.float64, generator=generator)
            uniforms = torch.rand(batch, kernel.num_uniforms, dtype=torch.float64, generator=generator)
            with torch.no_grad():
                y_a, r_a, same_a = kernel.propose_noise(x, types, topology[1:], normals, uniforms)
            y_b, r_b, same_b = model.program(0, x, types, normals, uniforms)
            assert bool(same_a) and bool(same_b)
            assert torch.allclose(y_a, y_b, rtol=0, atol=1e-12), (sequence, batch)
            assert torch.allclose(r_a, r_b, rtol=0, atol=1e-9), (sequence, batch)
            moved += int((r_a > -1e29).sum())
    assert moved > 100


def test_compiled_file_describes_itself_and_runs_in_the_integrator(peptide_model):
    from openmm_timewarp import TimewarpIntegrator
    from openmm_timewarp import systems

    kernel, path = peptide_model
    model = ModelFile.open(path)
    assert model.contract_version == 2 and model.elements == ELEMENTS and model.lag_time_ps == 1.0
    assert model.metadata["test"] is True and model.module is None
    with pytest.raises(InputError, match="compiled"):
        model.fresh_module()
    topology, positions = systems.peptide_from_sequence("KW")
    integrator = TimewarpIntegrator(str(path), topology, 310.0, random_seed=5)
    context = mm.Context(systems.create_system(topology), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    integrator.step(200)
    assert 0.0 < integrator.getAcceptanceRate() < 1.0


def test_compiled_chain_restarts_bit_for_bit_from_a_checkpoint_and_from_xml(peptide_model):
    """The model's random stream is in the checkpoint, and the XML embeds the compiled file."""
    from openmm_timewarp import TimewarpIntegrator
    from openmm_timewarp import systems

    kernel, path = peptide_model
    topology, positions = systems.peptide_from_sequence("KW")
    system = systems.create_system(topology)
    integrator = TimewarpIntegrator(str(path), topology, 310.0, random_seed=5)
    platform = mm.Platform.getPlatformByName("Reference")
    context = mm.Context(system, integrator, platform)
    context.setPositions(positions)
    integrator.step(30)
    checkpoint = context.createCheckpoint()
    xml = mm.XmlSerializer.serialize(integrator)
    integrator.step(50)
    expected = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    context.loadCheckpoint(checkpoint)
    integrator.step(50)
    again = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    assert np.array_equal(expected, again)
    copy = TimewarpIntegrator.deserialize(xml)
    other = mm.Context(system, copy, platform)
    other.loadCheckpoint(checkpoint)
    copy.step(50)
    assert np.array_equal(expected, other.getState(getPositions=True).getPositions(asNumpy=True)._value)


def export_backbone_v2(tmp_path, wrong: bool = False):
    """Two pivot kernels with different densities, half local steps in one: a v2 file of two
    programs, so that the chain also exercises the loader's choice between kernels."""
    kernels = []
    for seed, local in ((2, 0.5), (5, 0.0)):
        density_kernel = perturbed_kernel(seed=seed, elements=["C", "N", "O"])
        kernel = NoRatioNoise(["C", "N", "O"], density_kernel.density) if wrong else density_kernel
        kernel.set_local(local, 0.4)
        kernels.append(kernel.eval())
    path = tmp_path / f"backbone_v2_{wrong}.pt2"
    export_compiled(ProposalMixture(kernels, [0.6, 0.4]), path, lag_ps=1.0, temperature_K=TEMPERATURE,
                    settings=SETTINGS, log=lambda line: None)
    assert [k["weight"] for k in read_entry(path.read_bytes(), str(path))[0]["kernels"]] == pytest.approx([0.6, 0.4])
    return path


def test_mh_with_a_compiled_model_samples_the_exact_torsion_law(tmp_path):
    """The known (phi, psi) law of test_backbone, through a v2 file in the C++ integrator (pivots
    alone: they keep bonds and angles, and the law of the torsions does not depend on those)."""
    scores, acceptance = torsion_z_scores(export_backbone_v2(tmp_path), 8000)
    assert 0.02 < acceptance < 0.95
    assert all(abs(z) < 4.5 for z in scores.values()), scores


def test_mh_with_a_compiled_model_without_the_density_ratio_is_detected(tmp_path):
    """Power check at the same length: the v2 chain without log g(x) - log g(y) must fail."""
    scores, _ = torsion_z_scores(export_backbone_v2(tmp_path, wrong=True), 8000)
    assert max(abs(z) for z in scores.values()) > 4.5, scores


def test_a_kernel_without_the_noise_protocol_is_refused(tmp_path):
    from openmm_timewarp.proposals.internal_flow import InternalTimewarpFlow

    flow = InternalTimewarpFlow(["C", "N", "O"], hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    with pytest.raises(InputError, match="version-1 file"):
        export_compiled(flow, tmp_path / "flow.pt2", lag_ps=1.0, temperature_K=300.0, settings=SETTINGS)
    with pytest.raises(InputError, match=".pt2"):
        export_compiled(perturbed_kernel(), tmp_path / "x.pt", lag_ps=1.0, temperature_K=300.0, settings=SETTINGS)


@pytest.mark.parametrize("name", ["dipeptides", "ace-ala-nme"])
def test_shipped_compiled_model_proposes_what_its_torchscript_file_does(name):
    """The shipped NAME-compiled.pt2 holds NAME.pt's pivot kernel with the same parameters: for the
    same random numbers, the same proposals and log ratios (ACE-ALA-NME and validation dipeptide DE).
    It recommends the hybrid Monte Carlo of its recipe (README, Benchmarks): the same trajectory
    time per step as NAME.pt's (10 fs every second step), as 20 fs every fourth step at 2 fs with
    4 amu hydrogens."""
    from openmm_timewarp.proposals.rebuild import kernel_from_model_file

    compiled = ModelFile.open(f"{name}-compiled")
    source = ModelFile.open(name)
    assert compiled.contract_version == 2
    assert compiled.settings["needs_fast_coordinate_moves"] == source.settings["needs_fast_coordinate_moves"]
    assert source.integrator_settings == dict(hmc_interval=2, hmc_steps=10, hmc_step_size_ps=0.001,
                                              hmc_minimum_mass_amu=0.0)
    assert compiled.integrator_settings == dict(hmc_interval=4, hmc_steps=10, hmc_step_size_ps=0.002,
                                                hmc_minimum_mass_amu=4.0)
    kernel = kernel_from_model_file(ModelFile.open(name).path)[0].kernels[0]
    model = CompiledModel(compiled.path)
    generator = torch.Generator().manual_seed(1)
    for sequence in ("A", "DE"):
        x, types, _ = minimized_peptide(sequence)
        topology = model.topology(x, types)[0]
        normals = torch.randn(32, kernel.num_normals, dtype=torch.float64, generator=generator)
        uniforms = torch.rand(32, kernel.num_uniforms, dtype=torch.float64, generator=generator)
        with torch.no_grad():
            y_a, r_a, _ = kernel.propose_noise(x, types, topology[1:], normals, uniforms)
        y_b, r_b, _ = model.program(0, x, types, normals, uniforms)
        assert torch.allclose(y_a, y_b, rtol=0, atol=1e-12) and torch.allclose(r_a, r_b, rtol=0, atol=1e-9)
