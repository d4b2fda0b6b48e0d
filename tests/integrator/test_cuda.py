"""What only the CUDA kernel does: positions stay on the device, every precision mode, atom reordering.

The platform-parametrised tests (exactness, checkpoints, statistics, exploration mode) run on CUDA as
well through the ``platform`` fixture; these add the checks specific to the CUDA kernel. Without a GPU
they are skipped, with the reason.
"""
from __future__ import annotations

import ctypes
import os

import numpy as np
import openmm as mm
import pytest

import openmm_timewarp
from conftest import BOLTZMANN, Z_LIMIT, harmonic_system, harmonic_z_scores, make_chain, record, requires_cuda
from openmm_timewarp import TimewarpIntegrator

pytestmark = requires_cuda


def cuda_platform(precision: str = "single"):
    platform = mm.Platform.getPlatformByName("CUDA")
    return platform, {"Precision": precision}


def host_position_copies() -> int:
    """The CUDA plugin's count of position copies between host and device (only checkpoints make them)."""
    library = ctypes.CDLL(os.path.join(os.path.dirname(openmm_timewarp.__file__), "libOpenMMTimewarpCUDA.so"))
    library.timewarpCudaNumHostPositionCopies.restype = ctypes.c_longlong
    return library.timewarpCudaNumHostPositionCopies()


def test_no_host_position_copies_while_sampling(drift_model):
    integrator = TimewarpIntegrator(drift_model, ["Ar"] * 3, 300.0, random_seed=4, hmc_interval=2)
    platform, properties = cuda_platform()
    context = mm.Context(harmonic_system(3), integrator, platform, properties)
    context.setPositions(np.zeros((3, 3)))
    integrator.step(1)
    before = host_position_copies()
    integrator.step(500)
    assert host_position_copies() == before
    assert integrator.getNumProposed() == 501 and integrator.getNumHMCProposed() == 250
    context.createCheckpoint()
    assert host_position_copies() > before  # the counter does count the copies there are


@pytest.mark.parametrize("precision", ["single", "mixed", "double"])
def test_every_precision_samples_the_harmonic_well(drift_model, precision):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, random_seed=8)
    platform, properties = cuda_platform(precision)
    context = mm.Context(harmonic_system(), integrator, platform, properties)
    context.setPositions(np.zeros((1, 3)))
    x = record(integrator, context, 10000)
    assert harmonic_z_scores(x, 0.5).max() < Z_LIMIT


@pytest.mark.parametrize("precision", ["single", "mixed", "double"])
def test_checkpoint_restart_is_bit_for_bit_in_every_precision(drift_model, precision):
    platform, properties = cuda_platform(precision)

    def chain():
        integrator = TimewarpIntegrator(drift_model, ["Ar"] * 2, 300.0, random_seed=6, proposals_per_batch=40,
                                        adaptive_batch_size=False, hmc_interval=3)
        context = mm.Context(harmonic_system(2), integrator, platform, properties)
        context.setPositions(np.zeros((2, 3)))
        return integrator, context

    integrator, context = chain()
    integrator.step(25)  # part of a batch pending
    checkpoint = context.createCheckpoint()
    integrator.step(100)
    expected = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    integrator, context = chain()
    context.loadCheckpoint(checkpoint)
    integrator.step(100)
    np.testing.assert_array_equal(context.getState(getPositions=True).getPositions(asNumpy=True)._value, expected)


def test_atoms_keep_their_identity_through_reordering(drift_model):
    """Each of 64 atoms in its own well: a permutation between OpenMM's sorted order and the System's
    would put atoms in other atoms' wells."""
    n, sigma = 64, 0.3
    rng = np.random.default_rng(0)
    centres = rng.uniform(-3.0, 3.0, (n, 3))
    system = mm.System()
    force = mm.CustomExternalForce("0.5*k*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    force.addGlobalParameter("k", BOLTZMANN * 300.0 / sigma**2)
    for name in ("x0", "y0", "z0"):
        force.addPerParticleParameter(name)
    for i in range(n):
        system.addParticle(39.948)
        force.addParticle(i, list(centres[i]))
    system.addForce(force)
    integrator, context = make_chain(drift_model, system, cuda_platform()[0], seed=2, hmc_interval=1)
    context.setPositions(centres)
    samples = []
    for _ in range(300):
        integrator.step(1)
        samples.append(context.getState(getPositions=True).getPositions(asNumpy=True)._value)
    distance = np.linalg.norm(np.mean(samples, axis=0) - centres, axis=1)
    assert distance.max() < 0.2  # the well's mean, within many standard errors; wrong wells are nm away
    assert integrator.getHMCAcceptanceRate() > 0
