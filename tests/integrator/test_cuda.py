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
from conftest import Z_LIMIT, harmonic_system, harmonic_z_scores, make_chain, record, requires_cuda
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


def test_atoms_keep_their_identity_through_reordering(tmp_path):
    """64 identical atoms, which OpenMM sorts by position when a cutoff is in use (the first
    setPositions() does): if the kernels ignored OpenMM's order, restoring or accepting a state
    would swap atoms between sites, a jump of at least 0.5 nm where hybrid Monte Carlo moves each
    atom by hundredths of a nanometre."""
    import known_proposals as proposals

    reject_all = proposals.save(proposals.RejectAllProposal(0.0, 1.0, ["Ar"]), tmp_path / "reject.pt")
    n = 64
    grid = np.array([(i, j, k) for i in range(4) for j in range(4) for k in range(4)], dtype=float)
    start = 0.6 * grid[np.random.default_rng(0).permutation(n)]  # sites 0.6 nm apart, shuffled
    system = harmonic_system(n, sigma=3.0)
    nonbonded = mm.NonbondedForce()  # no interactions; its cutoff makes OpenMM sort atoms
    nonbonded.setNonbondedMethod(mm.NonbondedForce.CutoffNonPeriodic)
    nonbonded.setCutoffDistance(1.0)
    for _ in range(n):
        nonbonded.addParticle(0.0, 0.3, 0.0)
    system.addForce(nonbonded)
    integrator, context = make_chain(reject_all, system, cuda_platform()[0], seed=2, hmc_interval=1)
    context.setPositions(start)
    previous = start
    for _ in range(100):
        integrator.step(1)
        x = context.getState(getPositions=True).getPositions(asNumpy=True)._value
        assert np.linalg.norm(x - previous, axis=1).max() < 0.2
        previous = x
    assert integrator.getNumHMCAccepted() > 0
