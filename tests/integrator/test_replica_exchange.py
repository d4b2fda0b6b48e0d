"""The TimewarpIntegrator as the move of OpenMM's own ``app.ReplicaExchangeSampler``: every state is
sampled at its own temperature, which the sampler sets on the integrator between replicas."""
from __future__ import annotations

import math
import random

import numpy as np
import openmm as mm
import pytest
from openmm import app, unit

import known_proposals as proposals
from conftest import Z_LIMIT, harmonic_system, harmonic_z_scores
from openmm_timewarp import TimewarpIntegrator

SIGMA = 0.5  # nm, the well of harmonic_system at 300 K; at T its width is SIGMA * sqrt(T / 300)


def test_each_state_of_replica_exchange_samples_its_own_temperature(tmp_path, platform):
    """Argon in a harmonic well, states at 300 and 600 K, a Gaussian drift model with an exact density
    and hybrid Monte Carlo. The 300 K state's conformations must have the 300 K moments and the
    600 K state's the 600 K ones, which are twice as wide in variance; if the integrator ignored the
    temperature the sampler sets, the 600 K state would have the 300 K width, and this test checks
    that its samples tell the two apart."""
    model = proposals.save(proposals.GaussianDriftProposal(0.1, 0.4, ["Ar"]), tmp_path / "drift.pt")
    integrator = TimewarpIntegrator(model, ["Ar"], 300.0, random_seed=11, hmc_interval=2, hmc_steps=4,
                                    hmc_step_size=0.05)
    topology = app.Topology()
    chain = topology.addChain()
    topology.addAtom("AR", app.Element.getBySymbol("Ar"), topology.addResidue("AR", chain))
    simulation = app.Simulation(topology, harmonic_system(), integrator, platform)
    simulation.context.setPositions([mm.Vec3(0.0, 0.0, 0.0)])
    random.seed(3)  # the sampler's exchanges use Python's random module
    sampler = app.ReplicaExchangeSampler([{"temperature": 300.0 * unit.kelvin}, {"temperature": 600.0 * unit.kelvin}],
                                         simulation, 3)
    samples = {0: [], 1: []}
    swaps = 0
    for _ in range(2500):
        before = list(sampler.replicaStateIndex)
        sampler.simulate(1)
        swaps += sampler.replicaStateIndex != before
        for replica, state in enumerate(sampler.replicaStateIndex):
            samples[state].append(sampler.replicaConformation[replica].getPositions(asNumpy=True)._value[0])
    cold, hot = np.array(samples[0]), np.array(samples[1])
    assert 0.05 < swaps / 2500 < 0.95
    assert integrator.getTemperature().value_in_unit(unit.kelvin) in (300.0, 600.0)
    assert 0.05 < integrator.getAcceptanceRate() < 0.95
    assert harmonic_z_scores(cold, SIGMA).max() < Z_LIMIT
    assert harmonic_z_scores(hot, SIGMA * math.sqrt(2.0)).max() < Z_LIMIT
    # Power: the hot state's samples are not those of 300 K, and the cold ones not those of 600 K.
    assert harmonic_z_scores(hot, SIGMA).max() > Z_LIMIT
    assert harmonic_z_scores(cold, SIGMA * math.sqrt(2.0)).max() > Z_LIMIT
