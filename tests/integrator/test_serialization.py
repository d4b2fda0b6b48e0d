"""Self-contained serialization: the XML of a TimewarpIntegrator embeds its model, so it rebuilds,
continues the same chain and checkpoints where the original model file no longer exists."""
from __future__ import annotations

import os
import re
import shutil

import numpy as np
import openmm as mm
import pytest
from openmm import app

from conftest import harmonic_system
from openmm_timewarp import TimewarpIntegrator
from openmm_timewarp import timewarpplugin as plugin


def end_positions(integrator: mm.Integrator, steps: int, num_particles: int = 2) -> np.ndarray:
    context = mm.Context(harmonic_system(num_particles), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.zeros((num_particles, 3)))
    integrator.step(steps)
    return context.getState(getPositions=True).getPositions(asNumpy=True)._value


@pytest.fixture
def moved_model(drift_model, tmp_path) -> str:
    """A copy of the drift model at a path the tests delete."""
    return str(shutil.copy(drift_model, tmp_path / "moved.pt"))


def test_xml_rebuilds_the_same_chain_after_the_model_file_is_gone(moved_model):
    original = TimewarpIntegrator(moved_model, ["Ar"] * 2, 300.0, random_seed=12, proposals_per_batch=16,
                                  hmc_interval=3)
    xml = mm.XmlSerializer.serialize(original)
    os.remove(moved_model)
    deserialized = mm.XmlSerializer.deserialize(xml)  # owns the C++ object that cast() refers to
    restored = TimewarpIntegrator.cast(deserialized)
    assert restored.getModelFile() == moved_model and restored.getModelData() == original.getModelData()
    assert restored.getHMCInterval() == 3 and restored.getProposalsPerBatch() == 16
    np.testing.assert_array_equal(end_positions(restored, 60), end_positions(original, 60))


def test_checkpoint_of_a_simulation_built_from_xml(moved_model, tmp_path):
    """A Simulation whose integrator came from XML (the model file deleted) saves and loads checkpoints."""
    xml = mm.XmlSerializer.serialize(TimewarpIntegrator(moved_model, ["Ar"], 300.0, random_seed=3))
    os.remove(moved_model)
    topology = app.Topology()
    topology.addAtom("AR", app.element.argon, topology.addResidue("AR", topology.addChain()))
    simulations = [app.Simulation(topology, harmonic_system(1), mm.XmlSerializer.deserialize(xml),
                                  mm.Platform.getPlatformByName("Reference")) for _ in range(2)]
    for simulation in simulations:
        simulation.context.setPositions(np.zeros((1, 3)))
    simulations[0].step(15)
    simulations[0].saveCheckpoint(str(tmp_path / "chain.chk"))
    simulations[0].step(25)
    simulations[1].loadCheckpoint(str(tmp_path / "chain.chk"))
    simulations[1].step(25)
    positions = [s.context.getState(getPositions=True).getPositions(asNumpy=True)._value for s in simulations]
    np.testing.assert_array_equal(positions[0], positions[1])


def test_version_1_xml_is_read_from_its_path(drift_model, moved_model):
    xml = mm.XmlSerializer.serialize(TimewarpIntegrator(moved_model, ["Ar"], 300.0, random_seed=5,
                                                        proposals_per_batch=9))
    old = re.sub(r' modelData="[^"]*"', "", xml).replace('version="2"', 'version="1"')
    assert "modelData" not in old and len(old) < 1000
    deserialized = mm.XmlSerializer.deserialize(old)
    restored = TimewarpIntegrator.cast(deserialized)
    assert restored.getProposalsPerBatch() == 9 and restored.getModelFile() == moved_model
    os.remove(moved_model)
    with pytest.raises(mm.OpenMMException, match="moved.pt: cannot be opened"):
        mm.XmlSerializer.deserialize(old)  # a version-1 file needs its model file
    with pytest.raises(mm.OpenMMException, match="unsupported XML version number 3"):
        mm.XmlSerializer.deserialize(xml.replace('version="2"', 'version="3"'))


def test_corrupt_embedded_data_is_refused(moved_model):
    xml = mm.XmlSerializer.serialize(TimewarpIntegrator(moved_model, ["Ar"], 300.0))
    broken = re.sub(r'modelData="[^"]{8}', 'modelData="!!!!!!!!', xml)
    with pytest.raises(mm.OpenMMException, match="not valid base64"):
        mm.XmlSerializer.deserialize(broken)


def test_constructor_from_bytes(drift_model):
    """The C++ integrator takes a model file's bytes; a str is refused (it would be re-encoded)."""
    with open(drift_model, "rb") as f:
        data = f.read()
    from_bytes = plugin.TimewarpIntegrator(data, ["Ar"], 300.0, "")
    assert from_bytes.getModelFile() == "" and from_bytes.getModelData() == data
    assert plugin.TimewarpIntegrator(bytearray(data), ["Ar"], 300.0, "named.pt").getModelFile() == "named.pt"
    from_file = plugin.TimewarpIntegrator(drift_model, ["Ar"], 300.0)
    for integrator in (from_bytes, from_file):
        integrator.setRandomNumberSeed(21)
    np.testing.assert_array_equal(end_positions(from_bytes, 40, 1), end_positions(from_file, 40, 1))
    with pytest.raises(TypeError, match="model data must be bytes"):
        plugin.TimewarpIntegrator(data.decode("latin-1"), ["Ar"], 300.0, "")
    with pytest.raises(mm.OpenMMException, match="<model bytes>: is not a readable TorchScript file"):
        plugin.TimewarpIntegrator(b"not a model", ["Ar"], 300.0, "")
