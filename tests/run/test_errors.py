"""Bad input gets a clear error naming the problem."""
from __future__ import annotations

import numpy as np
import openmm as mm
import pytest
from openmm import app

import known_proposals as proposals
from conftest import harmonic_system
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp.errors import InputError


def bind(model: str, system: mm.System, elements=None) -> TimewarpIntegrator:
    integrator = TimewarpIntegrator(model, elements or ["Ar"] * system.getNumParticles(), 300.0)
    mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    return integrator


def test_periodic_system(drift_model):
    system = harmonic_system(2)
    bond = mm.CustomBondForce("r^2")
    bond.addBond(0, 1)
    bond.setUsesPeriodicBoundaryConditions(True)
    system.addForce(bond)
    with pytest.raises(mm.OpenMMException, match="periodic"):
        bind(drift_model, system)


def test_constraints(drift_model):
    system = harmonic_system(2)
    system.addConstraint(0, 1, 0.1)
    with pytest.raises(mm.OpenMMException, match="1 constraints.*constraints=None"):
        bind(drift_model, system)


def test_virtual_site(drift_model):
    system = harmonic_system(3)
    system.setParticleMass(2, 0.0)
    system.setVirtualSite(2, mm.TwoParticleAverageSite(0, 1, 0.5, 0.5))
    with pytest.raises(mm.OpenMMException, match="particle 2 is a virtual site"):
        bind(drift_model, system)


def test_unknown_element(drift_model):
    with pytest.raises(mm.OpenMMException, match="particle 1 is element 'Xe'.*knows: Ar"):
        TimewarpIntegrator(drift_model, ["Ar", "Xe"], 300.0)


def test_topology_atom_without_element(drift_model):
    topology = app.Topology()
    topology.addAtom("EP", None, topology.addResidue("X", topology.addChain()))
    with pytest.raises(ValueError, match="atom 0 .* has no element"):
        TimewarpIntegrator(drift_model, topology, 300.0)


def test_atom_count_mismatch(drift_model):
    with pytest.raises(mm.OpenMMException, match="System has 2 particles but 3 elements"):
        bind(drift_model, harmonic_system(2), ["Ar"] * 3)


def test_missing_model_file(tmp_path):
    with pytest.raises(InputError, match="no model file .*absent.pt' and no shipped model of that name"):
        TimewarpIntegrator(str(tmp_path / "absent.pt"), ["Ar"], 300.0)


def test_corrupt_model_file(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"this is not a TorchScript archive")
    # Refused when the file is read, in Python (ModelFile) or in C++ (the plugin's loader).
    with pytest.raises((InputError, mm.OpenMMException), match="corrupt.pt:? .*is not a readable TorchScript file"):
        TimewarpIntegrator(str(path), ["Ar"], 300.0)


def test_module_without_contract(tmp_path):
    path = proposals.save(torch_identity(), tmp_path / "plain.pt")
    with pytest.raises((InputError, mm.OpenMMException),
                       match="is not a Timewarp proposal model: it has no (method )?contract_version"):
        TimewarpIntegrator(path, ["Ar"], 300.0)


def torch_identity():
    import torch
    return torch.nn.Identity()


def test_other_contract_version(tmp_path):
    path = proposals.save(proposals.GaussianDriftProposal(0.1, 0.1, ["Ar"], version=2), tmp_path / "v2.pt")
    with pytest.raises(mm.OpenMMException, match="TorchScript file of proposal-model contract version 2, but this plugin "
                                                 "reads TorchScript files of version 1"):
        TimewarpIntegrator(path, ["Ar"], 300.0)


def test_model_without_density_needs_exploration_mode(tmp_path):
    path = proposals.save(proposals.GaussianDriftProposal(0.1, 0.1, ["Ar"], density=False), tmp_path / "surrogate.pt")
    with pytest.raises(mm.OpenMMException, match="no tractable density"):
        TimewarpIntegrator(path, ["Ar"], 300.0)
    integrator = TimewarpIntegrator(path, ["Ar"], 300.0, metropolis_hastings=False)
    context = mm.Context(harmonic_system(1), integrator)
    context.setPositions(np.zeros((1, 3)))
    integrator.step(20)
    assert integrator.getNumAccepted() > 0


def test_nan_positions(drift_model):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0)
    context = mm.Context(harmonic_system(1), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.full((1, 3), np.nan))
    with pytest.raises(mm.OpenMMException, match="positions in the Context contain NaN"):
        integrator.step(1)


def test_nan_proposals_and_energies_are_rejections(tmp_path):
    """A model that proposes NaN, and an energy that is NaN, are rejected without a crash."""
    path = proposals.save(proposals.GaussianDriftProposal(0.0, 0.3, ["Ar"]), tmp_path / "model.pt")
    system = mm.System()
    system.addParticle(40.0)
    force = mm.CustomExternalForce("0.5*x^2 + log(0.2 - x)")  # NaN for x > 0.2
    force.addParticle(0, [])
    system.addForce(force)
    integrator = TimewarpIntegrator(path, ["Ar"], 300.0, random_seed=1)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((1, 3)))
    for _ in range(300):
        integrator.step(1)
        assert context.getState(getPositions=True).getPositions(asNumpy=True)._value[0, 0] < 0.2
    assert integrator.getNumAccepted() > 0


def test_step_without_context(drift_model):
    with pytest.raises(mm.OpenMMException, match="not bound to a context"):
        TimewarpIntegrator(drift_model, ["Ar"], 300.0).step(1)


@pytest.mark.parametrize("setter, value, message", [
    ("setTemperature", -1.0, "temperature must be positive"),
    ("setProposalsPerBatch", 0, "at least 1"),
    ("setExplorationEnergyThreshold", 0.0, "threshold must be positive"),
])
def test_invalid_settings(drift_model, setter, value, message):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0)
    with pytest.raises(mm.OpenMMException, match=message):
        getattr(integrator, setter)(value)


def test_chiral_centre_out_of_range(drift_model):
    with pytest.raises(mm.OpenMMException, match="index 5 is out of range"):
        TimewarpIntegrator(drift_model, ["Ar"], 300.0, chiral_centers=[(0, 0, 0, 5)])
