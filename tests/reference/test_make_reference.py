"""Making references (openmm_timewarp.reference): the biased torsions, the frozen bias they are sampled
under, the run settings and command line, and a run folder's resume rules."""

import argparse
import json
import math
import os

import mdtraj as md
import numpy as np
import openmm
import pytest

from openmm_timewarp.analysis.dihedrals import backbone_dihedrals, to_mdtraj
from openmm_timewarp.cli import reference as reference_cli
from openmm_timewarp.data.generate import UnstableMD
from openmm_timewarp.errors import InputError
from openmm_timewarp.reference import bias as reference_bias, make, settings as reference_settings, simulation
from openmm_timewarp.reference.settings import ReferenceSettings
from openmm_timewarp.systems import create_system, peptide_from_sequence


def parse(argv):
    """Settings per sequence from a make-reference command line."""
    parser = argparse.ArgumentParser()
    reference_cli.add_parsers(parser.add_subparsers())
    return reference_cli.make_settings(parser.parse_args(["make-reference", *argv]))


@pytest.fixture(scope="module")
def pro_ser():
    return peptide_from_sequence("PS", seed=1)


def bias_energy(forces, topology, positions) -> float:
    """kJ/mol of ``forces`` alone (force group 31) at ``positions``."""
    system = create_system(topology)
    for force in forces:
        force.setForceGroup(31)
        system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    return context.getState(getEnergy=True, groups={31}).getPotentialEnergy()._value


def test_default_torsions_skip_the_proline_phi(pro_ser):
    topology, _ = pro_ser
    assert [name for name, _ in reference_bias.bias_torsions(topology)] == ["phi2", "psi1"]


def test_named_torsions_and_unknown_names(pro_ser):
    topology, _ = pro_ser
    chosen = reference_bias.bias_torsions(topology, ["psi1", "phi2", "psi2"])
    assert [name for name, _ in chosen] == ["psi1", "phi2", "psi2"]
    with pytest.raises(InputError, match="psi3"):
        reference_bias.bias_torsions(topology, ["psi3"])


@pytest.mark.parametrize("n_torsions", [1, 2, 3])
def test_frozen_bias_is_the_grid_function_of_the_named_torsions(pro_ser, n_torsions):
    """A smooth periodic bias on the grid must come back as the same function of the right torsions,
    in the right order (a transposed grid or a swapped torsion changes the energy by kJ/mol)."""
    topology, positions = pro_ser
    names = ["psi1", "phi2", "psi2"][:n_torsions]
    torsions = reference_bias.bias_torsions(topology, names)
    grid = np.linspace(-math.pi, math.pi, 37)
    grid[-1] = grid[0]  # periodic splines need equal end values exactly, as Metadynamics' grids have
    axes = np.meshgrid(*[grid] * n_torsions, indexing="ij")  # axes[k] is torsion k

    def function(angles):
        return sum((k + 1) * np.cos(a - 0.5 * k) for k, a in enumerate(angles))

    bias = function(axes).transpose()  # Metadynamics' layout: the first torsion varies fastest
    energy = bias_energy([reference_bias.static_bias_force(bias, torsions)], topology, positions)
    phi, psi = backbone_dihedrals(np.asarray(positions._value)[None], topology)
    values = {"phi1": phi[0, 0], "psi1": psi[0, 0], "phi2": phi[0, 1], "psi2": psi[0, 1]}
    expected = function([math.radians(values[name]) for name in names])
    assert energy == pytest.approx(expected, abs=0.02)


def test_residue_bias_is_the_same_table_at_every_residue(pro_ser):
    topology, positions = pro_ser
    grid = np.linspace(-math.pi, math.pi, 37)
    grid[-1] = grid[0]
    phi_grid, psi_grid = np.meshgrid(grid, grid, indexing="ij")

    def function(phi, psi):
        return np.cos(phi) + 2.0 * np.sin(psi + 0.3)

    force = reference_bias.residue_bias_force(function(phi_grid, psi_grid).T.copy(), topology)  # [psi, phi]
    energy = bias_energy([force], topology, positions)
    phi, psi = np.radians(backbone_dihedrals(np.asarray(positions._value)[None], topology))
    assert energy == pytest.approx(float(function(phi[0], psi[0]).sum()), abs=0.02)


def test_residue_bias_grid_lifts_alanine_basins():
    """-(1 - 1/gamma) F of ACE-ALA-NME: zero at the most populated corner, periodic, the capped
    barrier regions most negative, and the phi > 0 basin above the phi = 0 barrier."""
    grid = reference_bias.residue_bias_grid(310.0, 3.0)
    assert grid.shape == (37, 37)
    assert grid.max() == 0.0
    assert grid.min() == pytest.approx(-2.0 / 3.0 * 35.0)
    np.testing.assert_array_equal(grid[0], grid[-1])
    np.testing.assert_array_equal(grid[:, 0], grid[:, -1])

    def at(phi_deg, psi_deg):
        return grid[(psi_deg + 180) // 10, (phi_deg + 180) // 10]

    assert at(-80, 160) > -3.0 and at(-70, -40) > -3.0  # beta and alpha_R: near the top
    assert at(0, -30) < at(60, 30) < at(-70, -40)  # barrier < alpha_L < alpha_R


def test_side_chain_torsions_are_named_by_residue():
    topology, _ = peptide_from_sequence("TT", seed=1)
    names = {atom.index: atom.name for atom in topology.atoms()}
    named = reference_bias.side_chain_torsion_indices(topology)
    assert sorted(named) == ["chi1_1", "chi1_2"]  # threonine has no chi2 (OG1 and CG2 end it)
    residue = {atom.index: atom.residue.index for atom in topology.atoms()}
    for k in (1, 2):
        assert [names[int(i)] for i in named[f"chi1_{k}"]] == ["N", "CA", "CB", "OG1"]
        assert {residue[int(i)] for i in named[f"chi1_{k}"]} == {k}
    chosen = reference_bias.bias_torsions(topology, ["chi1_2", "psi1"])
    assert [name for name, _ in chosen] == ["chi1_2", "psi1"]


def test_residue_bias_takes_only_side_chain_torsions():
    with pytest.raises(InputError, match="side-chain"):
        parse(["--sequence", "TT", "--residue-bias", "--bias-torsions", "phi1"])
    with pytest.raises(InputError, match="1 to 3"):
        parse(["--sequence", "TT", "--bias-torsions", "phi1", "psi1", "phi2", "psi2"])
    settings = parse(["--sequence", "TT", "--residue-bias", "--bias-torsions", "chi1_1", "chi1_2"])[0]
    assert settings.build_ns_simulated == settings.build_ns  # a metadynamics build, unlike --residue-bias alone
    assert parse(["--sequence", "TT", "--residue-bias"])[0].build_ns_simulated == reference_settings.RESIDUE_BIAS_START_NS


def test_residue_and_side_chain_bias_add_up():
    """The production bias of ``--residue-bias --bias-torsions chi1_1`` is the residue table at every
    (phi, psi) plus the frozen metadynamics grid at chi1 (the frames' weights need both)."""
    topology, positions = peptide_from_sequence("TT", seed=1)
    settings = parse(["--sequence", "TT", "--residue-bias", "--bias-torsions", "chi1_1"])[0]
    grid = np.linspace(-math.pi, math.pi, 37)
    grid[-1] = grid[0]
    phi_grid, psi_grid = np.meshgrid(grid, grid, indexing="ij")
    build = {"bias": 3.0 * np.cos(grid - 1.0), "residue_bias": (np.cos(phi_grid) + np.sin(psi_grid)).T.copy()}
    energy = bias_energy(reference_bias.frozen_bias_forces(build, topology, settings), topology, positions)
    phi, psi = np.radians(backbone_dihedrals(np.asarray(positions._value)[None], topology))
    quadruplet = reference_bias.side_chain_torsion_indices(topology)["chi1_1"]
    chi = float(md.compute_dihedrals(to_mdtraj(positions, topology), [quadruplet])[0, 0])
    expected = float((np.cos(phi[0]) + np.sin(psi[0])).sum()) + 3.0 * math.cos(chi - 1.0)
    assert energy == pytest.approx(expected, abs=0.02)


def test_a_blown_up_integration_stops_the_run():
    topology, positions = peptide_from_sequence("TT", seed=1)
    context = openmm.Context(create_system(topology), openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    context.setVelocitiesToTemperature(310.0, 1)
    simulation.check_stable(context.getState(getEnergy=True), topology, 310.0, 0.1)
    context.setVelocitiesToTemperature(310.0 * 30, 1)
    with pytest.raises(UnstableMD, match="blew up in production at 0.100 ns"):
        simulation.check_stable(context.getState(getEnergy=True), topology, 310.0, 0.1)


def test_sequences_and_paths_are_checked():
    with pytest.raises(InputError, match="one-letter"):
        parse(["--sequence", "AX"])
    with pytest.raises(InputError, match="single --sequence"):
        parse(["--sequence", "A", "C", "--work", "somewhere"])
    first, second = parse(["--sequence", "ac", "de", "--production-ns", "8"])
    assert (first.sequence, second.sequence, second.production_ns) == ("AC", "DE", 8.0)
    assert first.work_dir == os.path.abspath(os.path.join("runs", "reference", "ace-ala-cys-nme_310K"))
    assert os.path.basename(first.out_path) == "ace-ala-cys-nme_310K.npz"


def test_the_saved_command_reproduces_the_settings():
    settings = parse(["--sequence", "TT", "--residue-bias", "--bias-torsions", "chi1_1", "chi1_2",
                      "--timestep-fs", "1.5", "--work", "w", "--out", "o.npz"])[0]
    words = settings.command()
    assert words[:2] == ["openmm-timewarp", "make-reference"]
    assert parse(words[2:])[0] == ReferenceSettings(**{**vars(settings), "work": settings.work_dir,
                                                       "out": settings.out_path})


def test_a_run_folder_resumes_only_with_its_own_physics(tmp_path):
    """config.json as the former scripts/make_reference.py wrote it (without the later options) still resumes."""
    settings = ReferenceSettings(sequence="A", work=str(tmp_path / "run"), production_ns=8.0)
    make.check_run_folder(settings)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved == settings.physics() and saved["bias_torsions"] is None
    del saved["bias_torsions"], saved["residue_bias"]
    (tmp_path / "run" / "config.json").write_text(json.dumps(saved))
    make.check_run_folder(ReferenceSettings(sequence="A", work=str(tmp_path / "run"), production_ns=20.0, blocks=4))
    with pytest.raises(InputError, match="other settings"):
        make.check_run_folder(ReferenceSettings(sequence="A", work=str(tmp_path / "run"), seed=2))


def test_finalize_writes_nothing_before_two_chunks(tmp_path):
    settings = ReferenceSettings(sequence="A", work=str(tmp_path), out=str(tmp_path / "ref.npz"))
    assert make.make_reference(settings, finalize_only=True) is False
    assert not (tmp_path / "ref.npz").exists()
