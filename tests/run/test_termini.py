"""The user's molecule is sampled as given, and what lies outside a model's domain is said once.

Termini stay as the file has them unless ``--cap-termini``; pdbfixer's additions are listed atom
by atom; a peptide or temperature outside the model's training gets one ModelDomainWarning per
reason, the same in the command line (a plain ``warning:`` line) and the Python API, recorded in
the summary.
"""
from __future__ import annotations

import json
import warnings

import pytest
from openmm import app

from conftest import ALA_PDB
import known_proposals as proposals
from openmm_timewarp import systems
from openmm_timewarp.cli import main
from openmm_timewarp.errors import ModelDomainWarning, SlowSystemWarning
from openmm_timewarp.peptide import prepare_peptide
from openmm_timewarp.run import sample
from openmm_timewarp.run.folder import summary_text

PDB = ALA_PDB


def write(path, topology, positions) -> str:
    with open(path, "w") as f:
        app.PDBFile.writeFile(topology, positions, f)
    return str(path)


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> str:
    return proposals.save(proposals.GaussianDriftProposal(0.0, 0.001, ["H", "C", "N", "O", "S"], temperature=310.0),
                          tmp_path_factory.mktemp("model") / "walk.pt")


@pytest.fixture(scope="module")
def charged(tmp_path_factory) -> str:
    """ALA-ALA with charged termini (NH3+, COO-), as a file from a user would have it, without hydrogens."""
    topology, positions = systems.peptide_from_sequence("AA")
    modeller = app.Modeller(topology, positions)
    modeller.delete([r for r in topology.residues() if r.name in systems.CAPS] +
                    [a for a in topology.atoms() if a.element.symbol == "H"])
    return write(tmp_path_factory.mktemp("pdb") / "ala-ala.pdb", modeller.topology, modeller.positions)


def test_termini_stay_as_the_file_has_them(charged, walk):
    prepared = prepare_peptide(charged, walk)
    assert [r.name for r in prepared.topology.residues()] == ["ALA", "ALA"] and not prepared.capped
    names = {a.name for a in prepared.topology.atoms()}
    assert {"H", "H2", "H3", "OXT"} <= names  # OpenMM's names of NH3+ (H, H2, H3) and COO- (O, OXT)
    assert "OXT" in prepared.atoms_added["ALA2"] and {"H", "H2", "H3"} <= set(prepared.atoms_added["ALA1"])
    assert prepared.atoms_removed == {}
    assert sum(map(len, prepared.atoms_added.values())) == prepared.topology.getNumAtoms() - 10
    (reason,) = prepared.domain_warnings
    assert "charged (uncapped) termini" in reason and "--cap-termini" in reason


def test_caps_only_when_asked_for_and_every_change_is_listed(charged, walk, tmp_path):
    capped = prepare_peptide(charged, walk, cap_termini=True)
    assert [r.name for r in capped.topology.residues()] == ["ACE", "ALA", "ALA", "NME"] and capped.capped
    assert capped.domain_warnings == [] and any("added an ACE cap" in n for n in capped.notes)
    assert set(capped.atoms_added) >= {"ACE1", "NME4"} and "CH3" in capped.atoms_added["ACE1"]
    # A file with the terminal atoms: capping removes them, and says so.
    with_h = write(tmp_path / "with-h.pdb", prepare_peptide(charged).topology, prepare_peptide(charged).positions)
    recapped = prepare_peptide(with_h, walk, cap_termini=True)
    assert set(recapped.atoms_removed["ALA1"]) == {"H2", "H3"} and recapped.atoms_removed["ALA2"] == ["OXT"]
    assert any(n.startswith("removed 3 atom(s): ALA1 H2 H3; ALA2 OXT") for n in recapped.notes)


def test_command_line_and_api_treat_uncapped_peptides_alike(charged, walk, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["sample", charged, "--model", walk, "--steps", "20", "--frame-every", "2", "--out", str(out),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: the peptide has charged (uncapped) termini") == 1, err
    assert "warnings.warn" not in err and "ModelDomainWarning" not in err
    summary = json.load(open(out / "summary.json"))
    assert summary["termini"] == "charged" and len(summary["domain_warnings"]) == 1
    assert summary["residues"] == ["ALA1"] or summary["residues"] == []  # ALA1 has no phi: only inner residues
    assert "OXT" in summary["atoms_added"]["ALA2"] and "warning: the peptide" in open(out / "summary.txt").read()
    with pytest.warns(ModelDomainWarning, match="charged"):
        result = sample(charged, model=walk, steps=20, frame_every=2)
    assert result.summary["domain_warnings"] == summary["domain_warnings"]


def test_longer_peptides_warn_and_run_everywhere(walk, tmp_path, capsys):
    path = write(tmp_path / "five.pdb", *systems.peptide_from_sequence("AAAAA"))
    assert main(["sample", path, "--model", walk, "--steps", "4", "--frame-every", "2", "--out",
                 str(tmp_path / "five"), "--no-progress"]) == 0
    assert "warning: AAAAA has 5 residues; the model walk.pt is meant for at most 4" in capsys.readouterr().err
    with pytest.warns(ModelDomainWarning, match="5 residues"):
        assert sample(path, model=walk, steps=4, frame_every=2).trajectory.n_frames == 2


def test_a_temperature_far_from_the_models_is_one_recorded_warning(walk, tmp_path, capsys):
    out = tmp_path / "hot"
    assert main(["sample", PDB, "--model", walk, "--steps", "4", "--frame-every", "2", "--temperature", "1e9",
                 "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "samples at 1e+09 K; the model walk.pt was trained at 310 K" in err, err
    assert "UserWarning" not in err and "trained at" in json.load(open(out / "summary.json"))["domain_warnings"][0]


@pytest.mark.parametrize("option, value, words", [
    ("--temperature", "-10", "temperature must be a positive number"),
    ("--steps", "0", "steps must be a positive whole number"),
    ("--frame-every", "0", "need steps >= frame interval >= 1"),
    ("--hmc-interval", "-1", "hmc_interval must be 0"),
    ("--platform", "Quantum", "unknown OpenMM platform 'Quantum'"),
    ("--checkpoint-every", "0", "checkpoint interval must be positive"),
    ("--seed", "3000000000", "fits in 32 bits"),
])
def test_settings_the_integrator_would_reject_are_one_line(walk, tmp_path, capsys, option, value, words):
    out = tmp_path / "out"
    assert main(["sample", PDB, "--model", walk, option, value, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("openmm-timewarp: error:") and words in err and err.count("\n") == 1, err
    assert not out.exists()


def test_a_truncated_file_is_named_and_called_incomplete(tmp_path, capsys):
    lines = open(PDB).read().splitlines()
    truncated = tmp_path / "truncated.pdb"
    truncated.write_text("\n".join(l for l in lines if not (" CA " in l and "ALA" in l)) + "\n")
    for extra in ([], ["--cap-termini"]):
        assert main(["sample", str(truncated), "--out", str(tmp_path / "x"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{truncated}: ALA2 has no backbone atom(s) CA" in err and "looks incomplete" in err, err


def test_unvisited_basins_say_so():
    summary = dict(command="md", input="x.pdb", sequence="A", n_atoms=22, temperature_K=310.0, notes=[],
                   step_fs=1.0, friction_per_ps=1.0, steps=10, simulated_time_ps=0.01, n_frames=10, frame_every=1,
                   wall_time_s=1.0, residues=["ALA2"],
                   populations=[{"beta": [1.0, 0.0], "alpha_R": [0.0, float("nan")]}])
    text = summary_text(summary)
    assert "alpha_R  0 (never visited)" in text and "nan" not in text


def test_the_slow_implicit_solvent_is_named_once_with_its_fix():
    topology = app.PDBFile(PDB).topology
    slow = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(topology, nonbondedMethod=app.NoCutoff)
    assert systems.slow_path_reason(systems.create_system(topology)) is None
    assert "create_system" in systems.slow_path_reason(slow)
    systems._told_slow = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert systems.warn_if_slow(slow) and systems.warn_if_slow(slow)
        systems.thermalize(slow, app.PDBFile(PDB).positions, picoseconds=0.01)
    assert [w.category for w in caught] == [SlowSystemWarning]


def test_an_ordinary_script_on_the_slow_implicit_solvent_is_told_once_by_the_integrator():
    """A user's own System from implicit/obc2.xml gets the advice at its first step, once; the
    project's System (built-in GBSAOBCForce) gets none."""
    import openmm as mm

    from openmm_timewarp import TimewarpIntegrator

    pdb = app.PDBFile(PDB)
    slow = app.ForceField("amber14-all.xml", "implicit/obc2.xml").createSystem(pdb.topology, nonbondedMethod=app.NoCutoff)
    for system, expected in ((systems.create_system(pdb.topology), []), (slow, [SlowSystemWarning])):
        systems._told_slow = False
        integrator = TimewarpIntegrator("dipeptides", pdb.topology, random_seed=1)
        context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
        context.setPositions(pdb.positions)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            integrator.step(2)
            integrator.step(2)
        assert [w.category for w in caught] == expected
        assert integrator.getSystemHasCustomGBForce() == bool(expected)
