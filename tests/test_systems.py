"""Tests of openmm_timewarp.systems: building capped peptides and their Systems."""

import io

import numpy as np
import openmm
import pytest
from openmm import app, unit

from openmm_timewarp import systems


def energy(system: openmm.System, positions) -> float:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def relaxed(topology, positions):
    system = systems.create_system(topology)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, 200)
    return context.getState(getPositions=True).getPositions(asNumpy=True)


@pytest.fixture(scope="module")
def alanine():
    topology, positions = systems.peptide_from_sequence("A")
    return topology, relaxed(topology, positions)


def test_sequence_builds_capped_peptides():
    topology, positions = systems.peptide_from_sequence("AV")
    assert [r.name for r in topology.residues()] == ["ACE", "ALA", "VAL", "NME"]
    assert topology.getNumAtoms() == 38 and positions.shape == (38, 3)
    assert systems.sequence_of(topology) == "AV"
    # No clashes and sane bonds: every bond between 0.09 and 0.16 nm.
    xyz = positions.value_in_unit(unit.nanometer)
    lengths = [np.linalg.norm(xyz[a.index] - xyz[b.index]) for a, b in topology.bonds()]
    assert 0.09 < min(lengths) and max(lengths) < 0.16


def test_built_peptides_are_reproducible_and_leave_the_global_random_state_alone():
    """Same seed, same coordinates (the data recipes start from these), whatever ran before; the
    caller's random stream is not consumed."""
    import random

    random.seed(7)
    first = systems.peptide_from_sequence("KW", seed=1)[1]
    after = random.random()
    random.seed(123)
    second = systems.peptide_from_sequence("KW", seed=1)[1]
    np.testing.assert_array_equal(first, second)
    random.seed(7)
    assert random.random() == after
    other = systems.peptide_from_sequence("KW", seed=2)[1]
    assert np.abs(np.asarray(other) - np.asarray(first)).max() > 1e-3


def test_ace_ala_nme_composition(alanine):
    topology, _ = alanine
    assert topology.getNumAtoms() == 22
    assert sorted(a.element.symbol for a in topology.atoms()).count("H") == 12


@pytest.mark.parametrize("bad", ["", "AXA", "a1"])
def test_unknown_residue_letters_are_refused(bad):
    with pytest.raises(ValueError):
        systems.peptide_from_sequence(bad)


def test_energy_matches_obc2_xml(alanine):
    topology, positions = alanine
    builtin = systems.create_system(topology)
    custom = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(
        topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    assert energy(builtin, positions) == pytest.approx(energy(custom, positions), abs=1e-4)
    # Also away from the minimum, where the GB term differs more between conformations.
    rng = np.random.default_rng(0)
    shaken = positions.value_in_unit(unit.nanometer) + 0.005 * rng.standard_normal((22, 3))
    assert energy(builtin, shaken) == pytest.approx(energy(custom, shaken), abs=1e-4)


def test_system_settings(alanine):
    topology, _ = alanine
    system = systems.create_system(topology)
    assert system.getNumConstraints() == 0
    forces = {type(f).__name__: f for f in system.getForces()}
    assert "GBSAOBCForce" in forces and "CustomGBForce" not in forces
    gb = forces["GBSAOBCForce"]
    assert gb.getSoluteDielectric() == 1.0 and gb.getSolventDielectric() == 78.5
    assert forces["NonbondedForce"].getNonbondedMethod() == openmm.NonbondedForce.NoCutoff
    heavy = systems.create_system(topology, hydrogen_mass=4 * unit.amu)
    masses = [heavy.getParticleMass(a.index).value_in_unit(unit.amu) for a in topology.atoms()
              if a.element.symbol == "H"]
    assert np.allclose(masses, 4.0)
    total = lambda s: sum(s.getParticleMass(i).value_in_unit(unit.amu) for i in range(s.getNumParticles()))
    assert total(heavy) == pytest.approx(total(system))
    assert systems.DEFAULT_TEMPERATURE == 310 * unit.kelvin
    n_hydrogens = sum(a.element.symbol == "H" for a in topology.atoms())
    assert systems.create_system(topology, constraints=app.HBonds).getNumConstraints() == n_hydrogens


def test_chiral_centers_are_l_and_skip_glycine():
    topology, positions = systems.peptide_from_sequence("AGV")
    centers = systems.chiral_centers(topology)
    assert len(centers) == 2  # ALA and VAL; GLY has no CB
    names = [a.name for a in topology.atoms()]
    xyz = positions.value_in_unit(unit.nanometer)
    for ca, n, c, cb in centers:
        assert (names[ca], names[n], names[c], names[cb]) == ("CA", "N", "C", "CB")
        volume = np.dot(xyz[n] - xyz[ca], np.cross(xyz[c] - xyz[ca], xyz[cb] - xyz[ca]))
        assert volume > 0  # L: CO, R, N clockwise seen from H (the "CORN" rule)


def pdb_text(topology, positions) -> str:
    out = io.StringIO()
    app.PDBFile.writeFile(topology, positions, out)
    return out.getvalue()


def test_load_pdb_adds_missing_hydrogens(tmp_path, alanine):
    topology, positions = alanine
    heavy = [line for line in pdb_text(topology, positions).splitlines()
             if not (line.startswith(("ATOM", "HETATM")) and line[76:78].strip() == "H")
             and not line.startswith("CONECT")]
    path = tmp_path / "heavy.pdb"
    path.write_text("\n".join(heavy) + "\n")
    loaded, loaded_positions = systems.load_pdb(path)
    assert loaded.getNumAtoms() == 22 and loaded_positions.shape == (22, 3)
    assert systems.sequence_of(loaded) == "A"
    systems.create_system(loaded)


def test_load_pdb_refuses_water_uncapped_and_unknown(tmp_path, alanine):
    topology, positions = alanine
    text = pdb_text(topology, positions)
    water = tmp_path / "water.pdb"
    water.write_text(text.replace("END", "HETATM  100  O   HOH B   1       9.000   9.000   9.000  1.00  0.00           O\nEND"))
    with pytest.raises(ValueError, match="water"):
        systems.load_pdb(water)
    uncapped = tmp_path / "uncapped.pdb"
    uncapped.write_text("\n".join(l for l in text.splitlines() if " ACE " not in l) + "\n")
    with pytest.raises(ValueError, match="capped"):
        systems.load_pdb(uncapped)
    unknown = tmp_path / "unknown.pdb"
    unknown.write_text(text.replace(" ALA ", " XYZ "))
    with pytest.raises(ValueError, match="unknown residue"):
        systems.load_pdb(unknown)


def test_periodic_topology_refused(alanine):
    topology, _ = alanine
    boxed = app.Topology()
    boxed.__dict__.update(topology.__dict__)
    boxed.setPeriodicBoxVectors(np.eye(3) * 3.0 * unit.nanometer)
    with pytest.raises(ValueError, match="periodic"):
        systems.create_system(boxed)
