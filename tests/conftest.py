"""Shared fixtures: small systems with exactly known distributions and test proposal models."""
from __future__ import annotations

import os
import sys

import numpy as np
import openmm as mm
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/proposals.py: test proposal models shared by test modules
import openmm_timewarp  # noqa: E402,F401  (registers the plugin kernels)
from openmm_timewarp import TimewarpIntegrator  # noqa: E402
import proposals  # noqa: E402

BOLTZMANN = 0.00831446261815324  # kJ/mol/K
KT_300 = BOLTZMANN * 300.0  # kJ/mol

PLATFORMS = ["Reference", "CPU"]


@pytest.fixture(params=PLATFORMS)
def platform(request) -> mm.Platform:
    return mm.Platform.getPlatformByName(request.param)


@pytest.fixture
def drift_model(tmp_path) -> str:
    """An asymmetric Gaussian proposal for argon atoms with an exact log ratio."""
    return proposals.save(proposals.GaussianDriftProposal(0.2, 0.4, ["Ar"]), tmp_path / "drift.pt")


def sample_positions(model_path, elements, system: mm.System, positions, steps: int, seed: int,
                     temperature: float) -> tuple:
    """Positions (steps, N, 3) after each of ``steps`` steps of a TimewarpIntegrator on the Reference
    platform, and its acceptance rate (read while its Context exists)."""
    integrator = TimewarpIntegrator(str(model_path), elements, temperature, random_seed=seed)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    x = np.empty((steps, system.getNumParticles(), 3))
    for i in range(steps):
        integrator.step(1)
        x[i] = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    return x, integrator.getAcceptanceRate()


def harmonic_system(num_particles: int = 1, sigma: float = 0.5, temperature: float = 300.0) -> mm.System:
    """Particles in an isotropic harmonic well whose Boltzmann distribution at ``temperature`` (K)
    has standard deviation ``sigma`` (nm)."""
    system = mm.System()
    force = mm.CustomExternalForce("0.5*k*(x^2+y^2+z^2)")
    force.addGlobalParameter("k", BOLTZMANN * temperature / sigma**2)
    for i in range(num_particles):
        system.addParticle(39.948)
        force.addParticle(i, [])
    system.addForce(force)
    return system
