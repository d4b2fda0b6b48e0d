"""TimewarpIntegrator as an OpenMM Integrator: Simulation, reporters, checkpoints, copies, statistics."""
from __future__ import annotations

import copy
import os
import io
import pickle

import mdtraj
import numpy as np
import openmm as mm
import pytest
from openmm import app, unit

from conftest import ALA_PDB, harmonic_system
from openmm_timewarp import TimewarpIntegrator


def argon_topology(n: int) -> app.Topology:
    topology = app.Topology()
    chain = topology.addChain()
    for i in range(n):
        topology.addAtom("AR", app.element.argon, topology.addResidue("AR", chain))
    return topology


def positions(context: mm.Context) -> np.ndarray:
    return context.getState(getPositions=True).getPositions(asNumpy=True)._value


def test_simulation_with_reporters(drift_model, platform, tmp_path):
    topology = argon_topology(3)
    integrator = TimewarpIntegrator(drift_model, topology, 300 * unit.kelvin, random_seed=5)
    simulation = app.Simulation(topology, harmonic_system(3), integrator, platform)
    simulation.context.setPositions(np.zeros((3, 3)) * unit.nanometer)
    log = io.StringIO()
    simulation.reporters.append(app.DCDReporter(str(tmp_path / "traj.dcd"), 10))
    simulation.reporters.append(app.StateDataReporter(log, 2, step=True, time=True, temperature=True,
                                                      potentialEnergy=True))
    simulation.step(400)
    assert simulation.currentStep == 400
    lag = integrator.getStepSize().value_in_unit(unit.picosecond)
    assert lag == pytest.approx(100.0)
    assert simulation.context.getState().getTime().value_in_unit(unit.picosecond) == pytest.approx(400 * lag)
    assert integrator.getNumProposed() == 400
    pdb = tmp_path / "top.pdb"
    app.PDBFile.writeFile(topology, np.zeros((3, 3)) * unit.nanometer, str(pdb))
    trajectory = mdtraj.load_dcd(str(tmp_path / "traj.dcd"), top=str(pdb))
    assert trajectory.n_frames == 40
    rows = np.array([[float(v) for v in line.split(",")] for line in log.getvalue().splitlines()[1:]])
    assert rows.shape == (200, 4)
    assert np.all(np.diff(rows[:, 0]) == 2)
    # Velocities are Maxwell-Boltzmann at 300 K: 9 degrees of freedom per report, 200 reports.
    temperature = rows[:, 3]
    assert abs(temperature.mean() - 300.0) < 4.5 * 300.0 * np.sqrt(2 / 9) / np.sqrt(len(temperature))


def test_checkpoint_restart_reproduces_the_chain(drift_model, platform):
    def new_context():
        integrator = TimewarpIntegrator(drift_model, ["Ar"] * 2, 300.0, random_seed=9, proposals_per_batch=50,
                                        adaptive_batch_size=False)
        context = mm.Context(harmonic_system(2), integrator, platform)
        context.setPositions(np.zeros((2, 3)))
        return integrator, context

    integrator, context = new_context()
    integrator.step(37)  # leaves part of a batch pending
    checkpoint = context.createCheckpoint()
    integrator.step(150)
    expected = positions(context)
    expected_stats = (integrator.getNumProposed(), integrator.getNumAccepted())

    integrator, context = new_context()
    context.loadCheckpoint(checkpoint)
    integrator.step(150)
    np.testing.assert_array_equal(positions(context), expected)
    assert (integrator.getNumProposed(), integrator.getNumAccepted()) == expected_stats


def test_simulation_checkpoint_file(drift_model, tmp_path):
    topology = argon_topology(1)
    simulations = [app.Simulation(topology, harmonic_system(1), TimewarpIntegrator(drift_model, topology, 300.0,
                                                                                   random_seed=seed))
                   for seed in (1, 2)]
    for simulation in simulations:
        simulation.context.setPositions(np.zeros((1, 3)))
    simulations[0].step(20)
    simulations[0].saveCheckpoint(str(tmp_path / "chain.chk"))
    simulations[0].step(30)
    simulations[1].loadCheckpoint(str(tmp_path / "chain.chk"))  # another seed: the checkpoint decides
    simulations[1].step(30)
    np.testing.assert_array_equal(positions(simulations[0].context), positions(simulations[1].context))


def test_same_seed_same_chain_different_seed_different_chain(drift_model):
    def chain(seed):
        integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, random_seed=seed)
        context = mm.Context(harmonic_system(1), integrator, mm.Platform.getPlatformByName("Reference"))
        context.setPositions(np.zeros((1, 3)))
        integrator.step(50)
        return positions(context)

    np.testing.assert_array_equal(chain(4), chain(4))
    assert not np.array_equal(chain(4), chain(5))


@pytest.mark.filterwarnings("ignore:the run samples at")
def test_deepcopy_pickle_and_xml(drift_model):
    integrator = TimewarpIntegrator(drift_model, ["Ar"] * 2, 310.0 * unit.kelvin, random_seed=3, proposals_per_batch=32,
                                    adaptive_batch_size=False, metropolis_hastings=False,
                                    exploration_energy_threshold=150.0 * unit.kilojoule_per_mole,
                                    chiral_centers=[(0, 1, 1, 1)])
    integrator.custom_note = "kept"
    xml = mm.XmlSerializer.serialize(integrator)
    assert 'version="2"' in xml and "modelData=" in xml  # the model travels inside the XML
    for duplicate in (copy.deepcopy(integrator), pickle.loads(pickle.dumps(integrator))):
        assert isinstance(duplicate, TimewarpIntegrator)
        assert duplicate.getTemperature() == 310.0 * unit.kelvin
        assert duplicate.getProposalsPerBatch() == 32 and not duplicate.getAdaptiveBatchSize()
        assert not duplicate.getMetropolisHastings()
        assert duplicate.getExplorationEnergyThreshold() == 150.0 * unit.kilojoule_per_mole
        assert duplicate.getRandomNumberSeed() == 3
        assert duplicate.getChiralCenterParameters(0) == [0, 1, 1, 1]
        assert list(duplicate.getElements()) == ["Ar", "Ar"]
        assert duplicate.getModelData() == integrator.getModelData() and duplicate.getModelFile() == drift_model
        context = mm.Context(harmonic_system(2), duplicate)
        context.setPositions(np.zeros((2, 3)))
        duplicate.step(5)
    assert copy.deepcopy(integrator).custom_note == "kept"
    restored = mm.XmlSerializer.deserialize(xml)
    assert TimewarpIntegrator.isinstance(restored)
    assert TimewarpIntegrator.cast(restored).getProposalsPerBatch() == 32
    typed = TimewarpIntegrator.deserialize(xml)
    assert isinstance(typed, TimewarpIntegrator) and typed.getProposalsPerBatch() == 32
    assert typed.getModelData() == integrator.getModelData()


def test_statistics_and_reset(drift_model, platform):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, random_seed=2)
    assert integrator.getNumProposed() == 0 and integrator.getAcceptanceRate() == 0.0
    context = mm.Context(harmonic_system(1), integrator, platform)
    context.setPositions(np.zeros((1, 3)))
    integrator.step(300)
    accepted, proposed = integrator.getNumAccepted(), integrator.getNumProposed()
    assert proposed == 300 and 0 < accepted < 300
    assert integrator.getAcceptanceRate() == pytest.approx(accepted / proposed)
    integrator.resetStatistics()
    assert integrator.getNumProposed() == 0 and integrator.getNumAccepted() == 0
    integrator.step(10)
    assert integrator.getNumProposed() == 10


def test_external_position_change_discards_pending_proposals(drift_model):
    """Proposals drawn from old positions must never be applied to new ones."""
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, random_seed=2, proposals_per_batch=256,
                                    adaptive_batch_size=False)
    system = harmonic_system(1)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((1, 3)))
    integrator.step(1)
    far = np.array([[30.0, 0.0, 0.0]])
    context.setPositions(far)
    integrator.step(1)  # a proposal from near the origin would be accepted with certainty
    assert np.linalg.norm(positions(context) - far) < 5.0


def test_exploration_mode_respects_energy_threshold(drift_model, platform):
    threshold = 2.0
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, random_seed=1, metropolis_hastings=False,
                                    exploration_energy_threshold=threshold)
    context = mm.Context(harmonic_system(1), integrator, platform)
    context.setPositions(np.zeros((1, 3)))
    energies = []
    for _ in range(2000):
        integrator.step(1)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    rises = np.diff(energies)
    assert rises.max() <= threshold + 1e-9
    assert 0 < integrator.getAcceptanceRate() < 1


def tetrahedron_system() -> mm.System:
    """Four atoms, each in a well around a corner of a right-handed tetrahedron (wide enough to invert it)."""
    system = mm.System()
    force = mm.CustomExternalForce("0.5*2*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    for name in ("x0", "y0", "z0"):
        force.addPerParticleParameter(name)
    for i, corner in enumerate([(0, 0, 0), (0.3, 0, 0), (0, 0.3, 0), (0, 0, 0.3)]):
        system.addParticle(12.0)
        force.addParticle(i, corner)
    system.addForce(force)
    return system


@pytest.mark.parametrize("keep_chirality", [True, False])
def test_exploration_mode_keeps_chiral_centres(drift_model, keep_chirality):
    centers = [(0, 1, 2, 3)] if keep_chirality else []
    integrator = TimewarpIntegrator(drift_model, ["Ar"] * 4, 300.0, random_seed=1, metropolis_hastings=False,
                                    chiral_centers=centers)
    context = mm.Context(tetrahedron_system(), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions([[0, 0, 0], [0.3, 0, 0], [0, 0.3, 0], [0, 0, 0.3]])
    signs = []
    for _ in range(500):
        integrator.step(1)
        x = positions(context)
        signs.append(np.sign(np.dot(x[1] - x[0], np.cross(x[2] - x[0], x[3] - x[0]))))
    assert (min(signs) > 0) == keep_chirality


def test_exploration_mode_is_biased(drift_model):
    """Documented behaviour: without Metropolis-Hastings the chain does not sample Boltzmann."""
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0, random_seed=1, metropolis_hastings=False)
    context = mm.Context(harmonic_system(1), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((1, 3)))
    x = np.array([(integrator.step(1), positions(context)[0])[1] for _ in range(3000)])
    assert x.var(axis=0).mean() > 4 * 0.25  # far wider than the Boltzmann variance 0.25 nm^2


def test_model_properties(drift_model):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0)
    assert integrator.getModelLagTime() == 100.0 * unit.picosecond
    assert integrator.getModelTemperature() == 300.0 * unit.kelvin
    assert integrator.getModelHasDensity()
    assert list(integrator.getModelElements()) == ["Ar"]
    assert integrator.getMetropolisHastings() and integrator.getAdaptiveBatchSize()


def test_temperature_mismatch_warns(drift_model):
    with pytest.warns(UserWarning, match="trained at 300 K"):
        TimewarpIntegrator(drift_model, ["Ar"], 400.0)


@pytest.mark.parametrize("temperature", [0.0, -10.0, float("nan"), float("inf"), -5 * unit.kelvin])
def test_invalid_temperature_is_refused_before_the_model_is_read(temperature, tmp_path):
    from openmm_timewarp.errors import InputError

    with pytest.raises(InputError, match="temperature must be positive and finite"):
        TimewarpIntegrator(str(tmp_path / "absent.pt"), ["Ar"], temperature)


def test_integrator_loads_the_bytes_python_read(drift_model):
    """Given a ModelFile, neither Python nor C++ reads the file again: it may be gone."""

    from openmm_timewarp import ModelFile

    model_file = ModelFile.open(drift_model)
    os.remove(drift_model)
    integrator = TimewarpIntegrator(model_file, ["Ar"], 300.0)
    assert integrator.getModelData() == model_file.data and integrator.getModelFile() == drift_model
    context = mm.Context(harmonic_system(1), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((1, 3)))
    integrator.step(3)


def test_context_get_integrator_can_be_cast(drift_model):
    integrator = TimewarpIntegrator(drift_model, ["Ar"], 300.0)
    context = mm.Context(harmonic_system(1), integrator)
    assert TimewarpIntegrator.cast(context.getIntegrator()).getModelFile() == drift_model
    assert not TimewarpIntegrator.isinstance(mm.VerletIntegrator(0.001))


def test_cpu_platform_restart_is_bit_for_bit_with_one_thread():
    """OpenMM's CPU platform sums forces in an order that varies between runs when it uses several
    threads; with Threads=1 a checkpoint restart of a peptide chain (HMC moves included) is exact."""
    from openmm_timewarp import systems

    pdb = app.PDBFile(ALA_PDB)
    system = systems.create_system(pdb.topology)

    def chain():
        integrator = TimewarpIntegrator("dipeptides", pdb.topology, random_seed=3, warn_outside_domain=False)
        return integrator, mm.Context(system, integrator, mm.Platform.getPlatformByName("CPU"), {"Threads": "1"})

    integrator, context = chain()
    context.setPositions(pdb.positions)
    integrator.step(60)
    checkpoint = context.createCheckpoint()
    integrator.step(120)
    expected = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    integrator, context = chain()
    context.loadCheckpoint(checkpoint)
    integrator.step(120)
    np.testing.assert_array_equal(context.getState(getPositions=True).getPositions(asNumpy=True)._value, expected)
