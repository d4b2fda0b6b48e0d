"""Hybrid Monte Carlo moves of the TimewarpIntegrator: exact on their own, settings, statistics,
serialization and checkpoints."""
from __future__ import annotations

import math
import warnings

import numpy as np
import openmm as mm
import pytest
from openmm import unit

import known_proposals as proposals
from conftest import BOLTZMANN, harmonic_system
from openmm_timewarp import TimewarpIntegrator
from conftest import Z_LIMIT, harmonic_z_scores, make_chain, record

SIGMA = 0.5  # nm, the well of harmonic_system at 300 K


@pytest.fixture
def reject_all(tmp_path) -> str:
    """A model whose proposals are never accepted: hybrid Monte Carlo alone moves the chain."""
    return proposals.save(proposals.RejectAllProposal(0.0, 1.0, ["Ar"]), tmp_path / "reject.pt")


def leapfrog_step_for(omega_dt: float) -> float:
    """Step size (ps) at which omega * dt = omega_dt for argon in the SIGMA well at 300 K."""
    omega = math.sqrt(BOLTZMANN * 300.0 / SIGMA**2 / 39.948)
    return omega_dt / omega


def test_hmc_alone_samples_the_harmonic_well_exactly(reject_all, platform):
    """At omega dt = 1.1 (the step varies by up to 20% per move) leapfrog without the Metropolis test
    would sample a variance at least 1/(1 - 0.88^2/4) = 1.24 times too large; the chain must match
    the exact moments, and the test must tell the two apart."""
    integrator, context = make_chain(reject_all, harmonic_system(), platform, hmc_interval=1, hmc_steps=4,
                                     hmc_step_size=leapfrog_step_for(1.1))
    x = record(integrator, context, 12000)
    assert integrator.getAcceptanceRate() == 0.0
    assert 0.3 < integrator.getHMCAcceptanceRate() < 0.97
    assert integrator.getNumHMCProposed() == 12000
    assert harmonic_z_scores(x, SIGMA).max() < Z_LIMIT
    assert harmonic_z_scores(x, SIGMA / math.sqrt(1 - 0.88**2 / 4)).max() > Z_LIMIT


def test_minimum_mass_allows_longer_steps_and_stays_exact(reject_all, platform):
    """Argon with a minimum mass of four argon masses: at omega dt = 2.6 for argon's own mass
    leapfrog is unstable (with the 20% variation, omega dt > 2: nothing is accepted); with the
    minimum mass it runs at omega dt = 1.3 and must sample the exact moments, told apart from the
    distribution leapfrog alone would give (at omega dt >= 1.04, at least 1.37x too wide)."""
    argon = 39.948
    integrator, context = make_chain(reject_all, harmonic_system(), platform, hmc_interval=1, hmc_steps=4,
                                     hmc_step_size=leapfrog_step_for(2.6), hmc_minimum_mass=4 * argon * unit.dalton)
    assert integrator.getHMCMinimumMass().value_in_unit(unit.dalton) == pytest.approx(4 * argon)
    x = record(integrator, context, 12000)
    assert 0.3 < integrator.getHMCAcceptanceRate() < 0.97
    assert harmonic_z_scores(x, SIGMA).max() < Z_LIMIT
    assert harmonic_z_scores(x, SIGMA / math.sqrt(1 - 1.04**2 / 4)).max() > Z_LIMIT
    integrator.setHMCMinimumMass(0.0)  # argon's own mass: the same steps are unstable
    integrator.resetStatistics()
    integrator.step(500)
    assert integrator.getHMCAcceptanceRate() < 0.05


def test_interval_counts_steps_and_statistics_reset(drift_model, platform):
    integrator, context = make_chain(drift_model, harmonic_system(), platform, hmc_interval=3)
    integrator.step(10)
    assert integrator.getNumProposed() == 10 and integrator.getNumHMCProposed() == 3
    integrator.resetStatistics()
    assert integrator.getNumHMCProposed() == 0 and integrator.getHMCAcceptanceRate() == 0.0
    integrator.setHMCInterval(0)
    integrator.step(6)
    assert integrator.getNumHMCProposed() == 0


def test_settings_units_and_errors(drift_model):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, hmc_interval=2, hmc_steps=7,
                                    hmc_step_size=2 * unit.femtosecond)
    assert integrator.getHMCInterval() == 2 and integrator.getHMCSteps() == 7
    assert integrator.getHMCStepSize().value_in_unit(unit.femtosecond) == pytest.approx(2.0)
    assert TimewarpIntegrator(drift_model, ["Ar"], 300.0).getHMCInterval() == 0  # a model file: none by default
    assert integrator.getHMCMinimumMass().value_in_unit(unit.dalton) == 0.0  # the file recommends none
    integrator.setHMCMinimumMass(4.0)
    assert integrator.getHMCMinimumMass().value_in_unit(unit.dalton) == pytest.approx(4.0)
    for setter, value, message in ((integrator.setHMCInterval, -1, "interval"), (integrator.setHMCSteps, 0, "at least one"),
                                   (integrator.setHMCStepSize, 0.0, "step size"),
                                   (integrator.setHMCMinimumMass, -1.0, "smallest hybrid Monte Carlo mass")):
        with pytest.raises(mm.OpenMMException, match=message):
            setter(value)


def test_serialization_and_checkpoint_keep_hmc(drift_model):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, random_seed=4, hmc_interval=2, hmc_steps=5,
                                    hmc_step_size=0.003, hmc_minimum_mass=50.0)
    deserialized = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(integrator))  # owns what cast() returns
    copy = TimewarpIntegrator.cast(deserialized)
    assert (copy.getHMCInterval(), copy.getHMCSteps()) == (2, 5)
    assert copy.getHMCMinimumMass().value_in_unit(unit.dalton) == pytest.approx(50.0)
    assert copy.getHMCStepSize().value_in_unit(unit.picosecond) == pytest.approx(0.003)
    context = mm.Context(harmonic_system(), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions([mm.Vec3(0, 0, 0)])
    integrator.step(7)
    checkpoint = context.createCheckpoint()
    integrator.step(20)
    after = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    counts = integrator.getNumHMCAccepted()
    context.loadCheckpoint(checkpoint)
    integrator.step(20)
    np.testing.assert_array_equal(context.getState(getPositions=True).getPositions(asNumpy=True)._value, after)
    assert integrator.getNumHMCAccepted() == counts


def test_model_recommendation_sets_the_default(drift_model, tmp_path):
    """The settings entry inside a model file (as the shipped models carry) gives the default HMC
    settings wherever the file lies; a file without one recommends none."""
    import shutil

    from openmm_timewarp.model_file import resolve_model_path as model_path

    copy = tmp_path / "x.pt"
    shutil.copy(model_path("ace-ala-nme"), copy)  # no JSON beside it: the setting is in the archive
    for model in ("ace-ala-nme", model_path("ace-ala-nme"), str(copy)):
        integrator = TimewarpIntegrator(model, ["C"] * 22, 310.0)
        assert (integrator.getHMCInterval(), integrator.getHMCSteps()) == (2, 10)
        assert integrator.getHMCStepSize().value_in_unit(unit.picosecond) == pytest.approx(0.001)
        assert integrator.getModelRecommendedHMCInterval() == 2 and integrator.getModelNeedsFastCoordinateMoves()
    own = proposals.save(proposals.GaussianDriftProposal(0.2, 0.4, ["Ar"]), tmp_path / "own.pt",
                         {"integrator": {"hmc_interval": 4, "hmc_steps": 6, "hmc_step_size_ps": 0.0005,
                                         "hmc_minimum_mass_amu": 60.0}})
    integrator = TimewarpIntegrator(own, ["Ar"], 300.0)
    assert (integrator.getHMCInterval(), integrator.getHMCSteps()) == (4, 6)
    assert integrator.getHMCMinimumMass().value_in_unit(unit.dalton) == pytest.approx(60.0)
    assert integrator.getModelRecommendedHMCMinimumMass().value_in_unit(unit.dalton) == pytest.approx(60.0)
    assert integrator.getHMCStepSize().value_in_unit(unit.picosecond) == pytest.approx(0.0005)
    integrator = TimewarpIntegrator(own, ["Ar"], 300.0, hmc_interval=1, hmc_steps=3, hmc_step_size=0.002)
    assert (integrator.getHMCInterval(), integrator.getHMCSteps()) == (1, 3)
    assert integrator.getHMCStepSize().value_in_unit(unit.picosecond) == pytest.approx(0.002)
    assert integrator.getModelRecommendedHMCInterval() == 4
    assert integrator.getModelRecommendedHMCStepSize().value_in_unit(unit.picosecond) == pytest.approx(0.0005)
    assert TimewarpIntegrator(drift_model, ["Ar"], 300.0).getModelRecommendedHMCInterval() == 0


def test_switching_off_hmc_for_a_model_that_needs_it_warns(drift_model):
    from openmm_timewarp.errors import NonErgodicWarning

    with pytest.warns(NonErgodicWarning, match="will not be ergodic"):
        integrator = TimewarpIntegrator("ace-ala-nme", ["C"] * 22, 310.0, hmc_interval=0)
    assert integrator.getHMCInterval() == 0  # a warning, not an error
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonErgodicWarning)
        TimewarpIntegrator("ace-ala-nme", ["C"] * 22, 310.0)
        TimewarpIntegrator(drift_model, ["Ar"], 300.0, hmc_interval=0)  # its moves change every coordinate
