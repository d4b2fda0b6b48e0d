"""The ``openmm-timewarp`` command driven as a user drives it, on the shipped ACE-ALA-NME PDB.

Successful runs and a few refusals go through a subprocess (``python -m openmm_timewarp.cli``, what
the console script runs); the other refusals call :func:`openmm_timewarp.cli.main` in-process, the
same function, because each subprocess pays about 3 s of torch start-up.  The proposal is a
Gaussian random walk of width 0.001 nm, whose acceptance on ACE-ALA-NME is about 10%, so the
trajectory holds both accepted and rejected steps.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import mdtraj as md
import numpy as np
import openmm
import pytest
from openmm import app, unit

from conftest import ALA_PDB, cli_options
import known_proposals as proposals
import openmm_timewarp
from openmm_timewarp import analysis, systems
from openmm_timewarp.cli import MODULES, build_parser, main
from openmm_timewarp.model_file import DEFAULT_MODEL, ModelFile

PDB = ALA_PDB
STEPS = 200


def cli(*args: str) -> subprocess.CompletedProcess:
    # The command must import the package these tests imported (installed, or the built source tree),
    # so it runs outside the repository root with that package's parent folder first on its path.
    return subprocess.run([sys.executable, "-m", "openmm_timewarp.cli", *args], capture_output=True, text=True,
                          timeout=300, **cli_options())


def read_csv(path: str) -> list:
    with open(path) as f:
        return list(csv.DictReader(f))


def write_pdb(path, topology: app.Topology, positions) -> str:
    with open(path, "w") as f:
        app.PDBFile.writeFile(topology, positions, f, keepIds=True)
    return str(path)


def molecule(name: str, atoms) -> tuple:
    """A one-residue topology (its own chain) of (atom name, element, xyz in nm) triples."""
    topology = app.Topology()
    residue = topology.addResidue(name, topology.addChain())
    for atom, element, _ in atoms:
        topology.addAtom(atom, app.Element.getBySymbol(element), residue)
    return topology, unit.Quantity(np.array([xyz for _, _, xyz in atoms]), unit.nanometer)


WATER = molecule("HOH", [("O", "O", (1.5, 0, 0)), ("H1", "H", (1.6, 0, 0)), ("H2", "H", (1.47, 0.09, 0))])
SODIUM = molecule("NA", [("NA", "Na", (-1.5, 0, 0))])
LIGAND = molecule("LIG", [("C1", "C", (0, 1.5, 0)), ("O1", "O", (0.12, 1.5, 0)), ("C2", "C", (-0.15, 1.5, 0))])


def with_extra(path, *extras, source: str = PDB) -> str:
    pdb = app.PDBFile(source)
    modeller = app.Modeller(pdb.topology, pdb.positions)
    for topology, positions in extras:
        modeller.add(topology, positions)
    return write_pdb(path, modeller.topology, modeller.positions)


@pytest.fixture(scope="module")
def model(walk_model) -> str:
    return walk_model


@pytest.fixture(scope="module")
def sample_run(model, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "timewarp")
    done = cli("sample", PDB, "--model", model, "--steps", str(STEPS), "--frame-every", "1", "--seed", "3",
               "--out", out)
    assert done.returncode == 0, done.stderr
    return out, done


@pytest.fixture(scope="module")
def md_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "md")
    done = cli("md", PDB, "--steps", "4000", "--frame-every", "20", "--step-fs", "1", "--out", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    return out, done


def test_sample_files_agree_with_trajectory(sample_run):
    out, done = sample_run
    summary = json.load(open(os.path.join(out, "summary.json")))
    trajectory = md.load_dcd(os.path.join(out, "trajectory.dcd"), top=os.path.join(out, "topology.pdb"))
    log = read_csv(os.path.join(out, "log.csv"))
    assert trajectory.n_frames == STEPS == summary["n_frames"] == len(log)
    assert list(log[0]) == ["step", "time_ps", "potential_energy_kJ_mol", "acceptance"]
    assert [int(row["step"]) for row in log] == list(range(1, STEPS + 1))
    assert float(log[-1]["time_ps"]) == pytest.approx(STEPS * summary["lag_time_ps"])
    # Acceptance: the counts, the log and the trajectory tell the same story.
    assert summary["num_proposed"] == STEPS and 0 < summary["num_accepted"] < STEPS
    assert summary["acceptance"] == pytest.approx(summary["num_accepted"] / STEPS)
    assert float(log[-1]["acceptance"]) == pytest.approx(summary["acceptance"], abs=1e-6)
    moves = int(np.sum(np.any(trajectory.xyz[1:] != trajectory.xyz[:-1], axis=(1, 2))))
    assert moves in (summary["num_accepted"] - 1, summary["num_accepted"])
    # The logged energies are those of the written frames, under the System the run used.
    pdb = app.PDBFile(os.path.join(out, "topology.pdb"))
    context = openmm.Context(systems.create_system(pdb.topology), openmm.VerletIntegrator(0.001),
                             openmm.Platform.getPlatformByName("Reference"))
    for i in (0, STEPS // 2, STEPS - 1):
        context.setPositions(trajectory.xyz[i].astype(np.float64))
        energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        assert energy == pytest.approx(float(log[i]["potential_energy_kJ_mol"]), abs=0.05)
    # Populations are those of the trajectory, in the JSON and the CSV.
    phi, psi = analysis.backbone_dihedrals(trajectory)
    expected = analysis.basin_populations(phi[:, 0], psi[:, 0])
    rows = read_csv(os.path.join(out, "populations.csv"))
    assert list(rows[0]) == ["residue", "basin", "population", "standard_error"]
    assert {r["basin"]: float(r["population"]) for r in rows} == pytest.approx({k: v[0] for k, v in expected.items()})
    assert summary["populations"][0]["beta"][0] == pytest.approx(expected["beta"][0])
    assert sum(summary["populations"][0][name][0] for name in analysis.BASIN_NAMES) == pytest.approx(1.0)
    png = os.path.join(out, "ramachandran_ALA2.png")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 5000
    text = open(os.path.join(out, "summary.txt")).read()
    assert f"({summary['num_accepted']} of {STEPS} proposals)" in text and "BIASED" not in text
    assert "beta" in done.stdout and "step/s" in done.stderr  # the summary, and tqdm's bar with its rate


def test_md_writes_the_same_files(md_run):
    out, _ = md_run
    summary = json.load(open(os.path.join(out, "summary.json")))
    trajectory = md.load_dcd(os.path.join(out, "trajectory.dcd"), top=os.path.join(out, "topology.pdb"))
    log = read_csv(os.path.join(out, "log.csv"))
    assert trajectory.n_frames == 200 == summary["n_frames"] == len(log)
    assert list(log[0]) == ["step", "time_ps", "potential_energy_kJ_mol", "temperature_K"]
    assert float(log[-1]["time_ps"]) == pytest.approx(4.0) and summary["step_fs"] == 1.0
    assert summary["command"] == "md" and summary["wall_time_s"] > 0
    assert 150 < np.mean([float(r["temperature_K"]) for r in log]) < 450
    assert os.path.getsize(os.path.join(out, "ramachandran_ALA2.png")) > 5000
    assert sorted(os.listdir(out)) == sorted(summary["files"].values())


def test_compare_two_runs(sample_run, md_run, tmp_path, capsys):
    png = str(tmp_path / "cmp.png")
    done = cli("compare", sample_run[0], md_run[0], "--out", png)
    assert done.returncode == 0, done.stderr
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and os.path.getsize(png) > 10000
    table = open(str(tmp_path / "cmp.txt")).read()
    assert "[Timewarp MH]" in table and "[MD]" in table and "per wall second" in table
    runs = [md.load_dcd(os.path.join(d, "trajectory.dcd"), top=os.path.join(d, "topology.pdb"))
            for d in (sample_run[0], md_run[0])]
    hists = [analysis.ramachandran_histogram(*(a[:, 0] for a in analysis.backbone_dihedrals(t))) for t in runs]
    assert f"JSD(A, B) = {analysis.jensen_shannon(*hists):.4f} nats" in table
    assert main(["compare", sample_run[0], md_run[0], "--out", png]) == 2
    assert "--overwrite" in capsys.readouterr().err
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy(os.path.join(md_run[0], "summary.json"), half)
    assert main(["compare", sample_run[0], str(half), "--out", str(tmp_path / "other.png")]) == 2
    assert f"{half}: not a run folder of openmm-timewarp sample or md (no trajectory.dcd)" in capsys.readouterr().err
    # mdtraj's DCD plugin prints from C (to fd 1 here, fd 2 elsewhere): silenced on both.
    assert "dcdplugin" not in done.stdout + done.stderr and done.stderr == "", done.stderr


def test_compare_writes_beside_the_first_run_and_refuses_other_distributions(sample_run, model, tmp_path, capsys):
    first = tmp_path / "first"
    shutil.copytree(sample_run[0], first)
    done = cli("compare", str(first), sample_run[0])
    assert done.returncode == 0, done.stderr
    name = f"first-vs-{os.path.basename(sample_run[0])}"
    assert (tmp_path / f"{name}.png").is_file() and (tmp_path / f"{name}.txt").is_file()
    assert not os.path.exists(os.path.join(os.path.dirname(PDB), f"{name}.png"))  # not the working folder
    hot = tmp_path / "hot"
    assert main(["sample", PDB, "--model", model, "--steps", "20", "--frame-every", "2", "--temperature", "400",
                 "--out", str(hot), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["compare", str(first), str(hot), "--out", str(tmp_path / "c.png")]) == 2
    assert "different temperatures (310 K vs 400 K)" in capsys.readouterr().err
    assert main(["compare", str(first), str(hot), "--out", str(tmp_path / "c.png"), "--allow-mismatch"]) == 0
    summary = json.load(open(hot / "summary.json"))
    summary["force_field"] = "amber99sb + obc2.xml"
    json.dump(summary, open(hot / "summary.json", "w"))
    assert main(["compare", str(first), str(hot), "--out", str(tmp_path / "d.png")]) == 2
    assert "force fields" in capsys.readouterr().err


def test_models_describes_a_model_file(model):
    done = cli("models", model)
    assert done.returncode == 0, done.stderr
    assert "lag 100 ps, trained at 310 K, elements H C N O S, up to 4 residues" in done.stdout
    # A model without a timewarp.json entry recommends no hybrid Monte Carlo moves.
    assert "recommended integrator settings: hmc_interval 0, hmc_steps 10, hmc_step_size 1 fs" in done.stdout
    assert "needs fast-coordinate moves: no" in done.stdout
    assert main(["models"]) == 0


def test_models_shows_the_settings_recorded_in_the_file(tmp_path, capsys):
    if DEFAULT_MODEL not in openmm_timewarp.available_models():
        pytest.skip("no default model shipped")
    # An unshipped copy has no provenance file beside it: the settings must come from the file itself.
    copy = shutil.copy(ModelFile.open(DEFAULT_MODEL).path, tmp_path / "copy.pt")
    for name in (DEFAULT_MODEL, copy):
        assert main(["models", str(name)]) == 0
        out = capsys.readouterr().out
        assert "recommended integrator settings: hmc_interval 2, hmc_steps 10, hmc_step_size 1 fs" in out, name
        assert "needs fast-coordinate moves: yes" in out, name
    assert main(["models", str(copy), "--json"]) == 0
    (described,) = json.loads(capsys.readouterr().out)
    assert described["integrator_settings"]["hmc_interval"] == 2 and described["needs_fast_coordinate_moves"]


def test_sample_help_names_the_models_recommendation(capsys):
    assert main(["sample", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default: the model's recommendation, see 'openmm-timewarp models'" in text and "1 for the" not in text


def test_sample_with_the_shipped_default_model(tmp_path):
    if DEFAULT_MODEL not in openmm_timewarp.available_models():
        pytest.skip("no default model shipped")
    out = str(tmp_path / "default")
    done = cli("sample", PDB, "--steps", "600", "--seed", "2", "--out", out, "--no-progress")
    assert done.returncode == 0, done.stderr
    summary = json.load(open(os.path.join(out, "summary.json")))
    shipped = ModelFile.open(DEFAULT_MODEL)
    assert summary["model"] == DEFAULT_MODEL and summary["lag_time_ps"] == shipped.lag_time_ps
    assert summary["hmc_interval"] == shipped.integrator_settings["hmc_interval"] == 2
    # About half of its proposals are accepted on ACE-ALA-NME (benchmarks/ala_sampling.py): about 300 here.
    assert summary["num_proposed"] == 600 and summary["num_accepted"] >= 150


def test_default_model_missing_is_explained(capsys, tmp_path):
    if DEFAULT_MODEL in openmm_timewarp.available_models():
        pytest.skip("the default model is shipped")
    assert main(["sample", PDB, "--out", str(tmp_path / "x")]) == 2
    assert "default model is not shipped" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_refusals_through_the_command(model, tmp_path):
    water = with_extra(tmp_path / "water.pdb", WATER)
    for args, message in (((str(tmp_path / "missing.pdb"),), "missing.pdb: no such file"),
                          ((water,), "--strip-solvent")):
        done = cli("sample", *args, "--model", model, "--out", str(tmp_path / "out"))
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
        assert not (tmp_path / "out").exists()


def bad_inputs(tmp_path) -> dict:
    """Name -> (PDB file, expected words of the error)."""
    garbage = tmp_path / "garbage.pdb"
    garbage.write_text("this is not\na PDB file\n")
    text = open(PDB).read()
    (tmp_path / "nan.pdb").write_text(text.replace("   1.910  -1.114  -0.117", "     nan  -1.114  -0.117"))
    (tmp_path / "aib.pdb").write_text(text.replace(" ALA A", " AIB A"))
    (tmp_path / "noelement.pdb").write_text(text.replace(" HB1 ALA A   2       3.079  -3.347  -1.091  1.00  0.00"
                                                         "           H", " QQ1 ALA A   2       3.079  -3.347  -1.091"
                                                         "  1.00  0.00             "))
    topology, positions = systems.peptide_from_sequence("AAA")
    broken = app.Modeller(topology, positions)
    broken.delete([list(topology.residues())[2]])
    return {
        "unreadable": (str(garbage), "cannot read it as a PDB file"),
        "folder": (str(tmp_path), "is a folder"),
        "nan": (str(tmp_path / "nan.pdb"), "NaN or infinite coordinates for atom(s) ALA2:N"),
        "ions": (with_extra(tmp_path / "ion.pdb", SODIUM), "water/ion residue(s) (NA)"),
        "ligand": (with_extra(tmp_path / "lig.pdb", LIGAND), "ligand or non-standard residue(s) LIG"),
        "non-standard": (str(tmp_path / "aib.pdb"), "non-standard residue(s) AIB2"),
        "no element": (str(tmp_path / "noelement.pdb"), "unknown element for atom(s) ALA2:QQ1"),
        "chain break": (write_pdb(tmp_path / "break.pdb", broken.topology, broken.positions),
                        "chain break between ALA2 and ALA4"),
    }


def test_bad_inputs_are_refused(model, tmp_path, capsys):
    for name, (path, message) in bad_inputs(tmp_path).items():
        out = tmp_path / f"out-{name.replace(' ', '-')}"
        assert main(["sample", path, "--model", model, "--out", str(out)]) == 2, name
        err = capsys.readouterr().err
        assert err.startswith("openmm-timewarp: error:") and message in err, (name, err)
        assert not out.exists(), name


def test_element_unknown_to_the_model(tmp_path, capsys):
    no_oxygen = proposals.save(proposals.GaussianDriftProposal(0.0, 0.001, ["H", "C", "N"], temperature=310.0),
                               tmp_path / "hcn.pt")
    assert main(["sample", PDB, "--model", no_oxygen, "--out", str(tmp_path / "out")]) == 2
    assert "element(s) O unknown to the model hcn.pt (it knows H C N)" in capsys.readouterr().err


def test_strip_solvent_and_add_caps(model, tmp_path, capsys):
    bare = tmp_path / "bare.pdb"
    bare.write_text("".join(line for line in open(PDB) if line.startswith("ATOM")) + "END\n")
    solvated = with_extra(tmp_path / "solvated.pdb", WATER, SODIUM, source=str(bare))
    out = tmp_path / "out"
    assert main(["sample", solvated, "--model", model, "--out", str(out), "--steps", "20", "--no-progress"]) == 2
    assert "--strip-solvent" in capsys.readouterr().err
    assert main(["sample", solvated, "--model", model, "--out", str(out), "--steps", "20", "--no-progress",
                 "--strip-solvent", "--cap-termini"]) == 0
    summary = json.load(open(out / "summary.json"))
    assert any("removed 2 water/ion residue(s) (HOH, NA)" in n for n in summary["notes"])
    assert any("added an ACE cap before ALA" in n for n in summary["notes"])
    assert any("added an NME cap after ALA" in n for n in summary["notes"])
    assert "note: added an NME cap" in open(out / "summary.txt").read()
    top = md.load(str(out / "topology.pdb")).topology
    assert [r.name for r in top.residues] == ["ACE", "ALA", "NME"] and top.n_atoms == 22


def test_output_folder_is_never_overwritten_silently(model, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    done = cli("sample", PDB, "--model", model, "--out", str(out), "--steps", "10")
    assert done.returncode == 2 and "exists" in done.stderr and "--overwrite" in done.stderr
    assert (out / "precious.txt").read_text() == "keep me"
    assert main(["sample", PDB, "--model", model, "--out", str(out), "--steps", "10", "--frame-every", "5",
                 "--no-progress", "--overwrite"]) == 0
    assert not (out / "precious.txt").exists()
    assert md.load_dcd(str(out / "trajectory.dcd"), top=str(out / "topology.pdb")).n_frames == 2


def test_explore_is_labelled_biased(tmp_path, capsys):
    # Moves of 0.003 nm raise the energy by about 100 kJ/mol: Metropolis-Hastings accepts none,
    # exploration mode (threshold 300 kJ/mol) most.
    wide = proposals.save(proposals.GaussianDriftProposal(0.0, 0.003, ["H", "C", "N", "O", "S"], temperature=310.0),
                          tmp_path / "wide.pt")
    out = tmp_path / "explore"
    assert main(["sample", PDB, "--model", wide, "--out", str(out), "--steps", "50", "--explore", "--no-progress"]) == 0
    summary = json.load(open(out / "summary.json"))
    assert summary["biased"] and summary["mode"] == "exploration" and summary["acceptance"] > 0.2
    assert "EXPLORATION MODE" in open(out / "summary.txt").read() and "BIASED" in capsys.readouterr().err


def test_python_api_returns_objects(model):
    from openmm_timewarp.run import SamplingResult, sample

    assert openmm_timewarp.sample is sample
    result = sample(PDB, model=ModelFile.open(model), steps=30, frame_every=3, seed=5)
    assert isinstance(result, SamplingResult) and result.files == {}
    assert isinstance(result.trajectory, md.Trajectory) and result.trajectory.n_frames == 10
    assert result.phi.shape == (10, 1) and result.residues == ["ALA2"]
    assert result.num_proposed == 30 and result.acceptance == result.num_accepted / 30
    assert result.summary["hmc_interval"] == 0 and result.summary["model_path"] == os.path.abspath(model)
    assert result.populations[0]["beta"][0] == pytest.approx(np.mean(analysis.assign_basins(result.phi, result.psi) == 0))


def test_sample_reads_the_model_file_once(model, tmp_path, monkeypatch):
    import builtins

    import torch

    from openmm_timewarp.run import sample

    fresh = str(shutil.copy(model, tmp_path / "fresh.pt"))  # a path ModelFile has not read in this process
    loads, reads = [], []
    load, read = torch.jit.load, builtins.open
    monkeypatch.setattr(torch.jit, "load", lambda *args, **kw: loads.append(1) or load(*args, **kw))
    def counting_open(file, *args, **kw):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == fresh:
            reads.append(1)
        return read(file, *args, **kw)

    monkeypatch.setattr(builtins, "open", counting_open)
    sample(PDB, model=fresh, steps=4, frame_every=2, seed=5)
    assert len(loads) == 1 and len(reads) == 1


def test_every_command_module_registers_its_subcommands():
    present = [name for name in MODULES if importlib.util.find_spec(f"openmm_timewarp.cli.{name}") is not None]
    assert {"sample", "md", "compare", "models"} <= set(present)
    for name in present:
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"openmm_timewarp.cli.{name}").add_parsers(subparsers)
        assert subparsers.choices, name
        for command, parser in subparsers.choices.items():
            assert callable(parser.get_default("run")), (name, command)
    parser = build_parser()
    for argv in (["sample", PDB], ["md", PDB], ["compare", "a", "b"], ["models"]):
        assert callable(parser.parse_args(argv).run), argv


def test_bad_options_and_help_return_a_status(capsys):
    assert main(["md", "--help"]) == 0
    assert "usage: openmm-timewarp md" in capsys.readouterr().out
    assert main(["sample", PDB, "--steps", "many"]) == 2
    assert "invalid int value: 'many'" in capsys.readouterr().err


def test_a_model_trained_on_other_sequences_is_flagged(model, tmp_path):
    from openmm_timewarp.peptide import prepare_peptide

    topology, positions = systems.peptide_from_sequence("G")
    path = write_pdb(tmp_path / "gly.pdb", topology, positions)
    walk = ModelFile.open(model)
    reasons = prepare_peptide(path, dataclasses.replace(walk, metadata={"sequences": ["A"]})).domain_warnings
    assert any("residue(s) G of G occur in none of the sequences walk.pt was trained on (A)" in reason
               for reason in reasons), reasons
    trained = dataclasses.replace(walk, metadata={"sequences": ["A", "G"]})
    assert prepare_peptide(path, trained).domain_warnings == []
    assert prepare_peptide(path, None).domain_warnings == []


def test_output_cut_short_by_the_reader_is_not_an_error():
    """``openmm-timewarp models | head -1``: the closed pipe ends the command quietly."""
    done = subprocess.run(f"'{sys.executable}' -m openmm_timewarp.cli models | head -c 10", shell=True,
                          capture_output=True, text=True, timeout=120, **cli_options())
    assert len(done.stdout) == 10 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
