"""Exact sampling: the Metropolis-Hastings chain matches distributions known in closed form.

Tolerances come from the effective sample size of each observable (statistical inefficiency from
pymbar), so they hold for any seed with high probability; each check is shown to have power by
running it on a chain whose Hastings correction has the wrong sign.
"""
from __future__ import annotations

import numpy as np
import openmm as mm
import pytest
from openmm import app, unit
from pymbar import timeseries
from scipy import stats

import known_proposals as proposals
from conftest import KT_300, Z_LIMIT, harmonic_system, harmonic_z_scores, make_chain, record, z_score
from openmm_timewarp import TimewarpIntegrator

def run_chain(model: str, system: mm.System, platform: mm.Platform, samples: int, **options) -> np.ndarray:
    return record(*make_chain(model, system, platform, **options), samples)


class DoubleWell:
    """U(x) = kT (a (x^2 - 1)^2 + b x) in x, harmonic in y and z: a tilted, exactly integrable double well."""

    a, b, sigma = 2.0, 0.4, 0.5

    def system(self) -> mm.System:
        system = harmonic_system(1, self.sigma)
        force = mm.CustomExternalForce(f"{KT_300}*({self.a}*(x^2-1)^2 + {self.b}*x) - 0.5*k*x^2")
        force.addGlobalParameter("k", KT_300 / self.sigma**2)
        force.addParticle(0, [])
        system.addForce(force)
        return system

    def bin_probabilities(self, edges: np.ndarray) -> np.ndarray:
        x = np.linspace(edges[0], edges[-1], 200001)
        density = np.exp(-(self.a * (x**2 - 1) ** 2 + self.b * x))
        cumulative = np.concatenate([[0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(x))])
        full = np.trapezoid(np.exp(-(self.a * (x**2 - 1) ** 2 + self.b * x)), x)
        return np.diff(np.interp(edges, x, cumulative)) / full


def histogram_p_value(x: np.ndarray, well: DoubleWell) -> float:
    """Chi-square test of the histogram of x against the exact marginal, counts scaled to effective samples."""
    edges = np.linspace(-2.0, 2.0, 21)
    expected = well.bin_probabilities(edges)
    g = max(timeseries.statistical_inefficiency(x), timeseries.statistical_inefficiency((x > 0).astype(float)))
    n_eff = len(x) / g
    observed = np.histogram(x, edges)[0] / len(x)
    chi2 = n_eff * np.sum((observed - expected) ** 2 / expected)
    return stats.chi2.sf(chi2, len(expected) - 1)


def test_harmonic_well_moments(drift_model, platform):
    x = run_chain(drift_model, harmonic_system(), platform, 20000)
    assert harmonic_z_scores(x, 0.5).max() < Z_LIMIT


def test_harmonic_check_detects_a_wrong_hastings_ratio(tmp_path, platform):
    flipped = proposals.save(proposals.GaussianDriftProposal(0.2, 0.4, ["Ar"], sign=-1.0), tmp_path / "flipped.pt")
    x = run_chain(flipped, harmonic_system(), platform, 20000)
    assert harmonic_z_scores(x, 0.5).max() > Z_LIMIT


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_double_well_histogram(tmp_path, platform, sign):
    model = proposals.save(proposals.GaussianDriftProposal(0.3, 0.5, ["Ar"], sign=sign), tmp_path / "model.pt")
    well = DoubleWell()
    x = run_chain(model, well.system(), platform, 30000, start=(-1.0, 0.0, 0.0))[:, 0]
    p_value = histogram_p_value(x, well)
    if sign > 0:
        assert p_value > 1e-4
    else:
        assert p_value < 1e-6  # the same test rejects a chain with the wrong Hastings correction


def test_bias_force_is_part_of_the_target(drift_model, platform):
    """A linear bias b x in a harmonic well k x^2 / 2 shifts the mean of x to -b / k."""
    sigma, b = 0.5, 4.0
    system = harmonic_system(1, sigma)
    bias = mm.CustomExternalForce("b*x")
    bias.addGlobalParameter("b", b)
    bias.addParticle(0, [])
    bias.setForceGroup(1)
    system.addForce(bias)
    x = run_chain(drift_model, system, platform, 20000)[:, 0]
    assert z_score(x, -b * sigma**2 / KT_300, sigma**2) < Z_LIMIT
    # Outside the integration force groups the bias is ignored, as with any OpenMM integrator.
    integrator, context = make_chain(drift_model, system, platform, seed=11)
    integrator.setIntegrationForceGroups({0})
    x = record(integrator, context, 20000)[:, 0]
    assert z_score(x, 0.0, sigma**2) < Z_LIMIT


def test_bias_changed_between_calls_is_honoured(drift_model, platform):
    """Parameters changed between step() calls (as metadynamics does) define the target from then on."""
    sigma = 0.5
    system = harmonic_system(1, sigma)
    bias = mm.CustomExternalForce("b*x")
    bias.addGlobalParameter("b", 0.0)
    bias.addParticle(0, [])
    system.addForce(bias)
    integrator, context = make_chain(drift_model, system, platform, seed=3, proposals_per_batch=64)
    integrator.step(500)
    context.setParameter("b", 4.0)
    x = record(integrator, context, 20000)[200:, 0]
    assert z_score(x, -4.0 * sigma**2 / KT_300, sigma**2) < Z_LIMIT


def test_custom_cv_force_bias(drift_model, platform):
    """A bias expressed through CustomCVForce (the mechanism of app.Metadynamics) is part of the target."""
    sigma, b = 0.5, 4.0
    system = harmonic_system(1, sigma)
    cv = mm.CustomExternalForce("x")
    cv.addParticle(0, [])
    bias = mm.CustomCVForce("b*cv")
    bias.addGlobalParameter("b", b)
    bias.addCollectiveVariable("cv", cv)
    system.addForce(bias)
    x = run_chain(drift_model, system, platform, 20000)[:, 0]
    assert z_score(x, -b * sigma**2 / KT_300, sigma**2) < Z_LIMIT


def test_runs_under_app_metadynamics(drift_model):
    """app.Metadynamics drives a Simulation with this integrator and deposits its bias."""
    system = harmonic_system(1)
    cv = mm.CustomExternalForce("x")
    cv.addParticle(0, [])
    variable = app.BiasVariable(cv, -2.0, 2.0, 0.2, gridWidth=41)
    metadynamics = app.Metadynamics(system, [variable], 300.0, biasFactor=5.0, height=1.0, frequency=20)
    topology = app.Topology()
    topology.addAtom("AR", app.element.argon, topology.addResidue("AR", topology.addChain()))
    simulation = app.Simulation(topology, system, TimewarpIntegrator(drift_model, topology, 300.0, random_seed=4))
    simulation.context.setPositions([mm.Vec3(0, 0, 0)])
    metadynamics.step(simulation, 2000)
    assert simulation.currentStep == 2000
    free_energy = metadynamics.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
    assert np.ptp(free_energy) > 1.0  # hills were deposited where the chain went
    assert simulation.integrator.getNumAccepted() > 0

