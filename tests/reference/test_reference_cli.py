"""The generate-data, make-reference, pool-reference and proposal-acceptance subcommands: options, refusals,
and tiny runs that resume."""
from __future__ import annotations

import argparse
import json
import os

import numpy as np
import pytest

from openmm_timewarp.cli import generate_data, reference
from openmm_timewarp.errors import InputError


def run(argv) -> int:
    """Parse ``argv`` with this module's subcommands and run it, as ``openmm-timewarp`` does."""
    parser = argparse.ArgumentParser(prog="openmm-timewarp")
    subparsers = parser.add_subparsers(dest="command", required=True)
    generate_data.add_parsers(subparsers)
    reference.add_parsers(subparsers)
    args = parser.parse_args([str(a) for a in argv])
    return args.run(args)


def test_generate_data_runs_and_resumes(tmp_path):
    argv = ["generate-data", "--sequence", "A", "--lag-ps", "0.2", "--frame-ps", "0.1", "--trajectory-ns", "0.0006",
            "--restraint-ps", "0.1", "--equilibrate-ps", "0.1", "--pairs", "3", "--out", tmp_path, "--no-progress"]
    assert run(argv) == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["n_pairs"] == 5 and manifest["settings"]["lag_ps"] == 0.2
    assert manifest["settings"]["temperature_K"] == 310.0 and manifest["settings"]["hydrogen_mass_amu"] == 4.0
    assert run(argv) == 0  # resumed: nothing left to run
    with pytest.raises(InputError, match="other settings"):
        run(argv + ["--seed", "2"])


def test_generate_data_needs_a_peptide(tmp_path):
    with pytest.raises(InputError, match="--sequence or --pdb"):
        run(["generate-data", "--out", tmp_path, "--pairs", "3"])


def test_make_reference_runs_resumes_and_extends(tmp_path):
    """A tiny metadynamics run: build, two production chunks, the file; then the same command with more
    production resumes from the chunks it has."""
    work, out = tmp_path / "run", tmp_path / "ref.npz"
    argv = ["make-reference", "--sequence", "A", "--build-ns", "0.002", "--chunk-ns", "0.001", "--save-ps", "0.1",
            "--production-ns", "0.002", "--blocks", "2", "--grid", "37", "--work", work, "--out", out]
    assert run(argv) == 0
    assert sorted(os.listdir(work)) == ["build.npz", "chunk_00000.npz", "chunk_00001.npz", "command.txt",
                                        "config.json"]
    assert (work / "command.txt").read_text().startswith("openmm-timewarp make-reference --sequence A")
    with np.load(out) as data:
        metadata = json.loads(str(data["metadata"]))
        assert data["histogram"].shape == (1, 36, 36)
    assert metadata["n_frames"] == 20 and metadata["production_ns"] == 0.002 and metadata["build_ns"] == 0.002
    first_chunk = (work / "chunk_00000.npz").stat().st_mtime_ns
    assert run(argv[:-4] + ["--production-ns", "0.003", "--work", work, "--out", out]) == 0
    assert (work / "chunk_00000.npz").stat().st_mtime_ns == first_chunk and (work / "chunk_00002.npz").exists()
    with np.load(out) as data:
        assert json.loads(str(data["metadata"]))["n_frames"] == 30
    with pytest.raises(InputError, match="other settings"):
        run(argv + ["--seed", "2"])


def test_make_reference_refuses_bad_torsions_before_running(tmp_path):
    with pytest.raises(InputError, match="1 to 3"):
        run(["make-reference", "--sequence", "TT", "--bias-torsions", "phi1", "psi1", "phi2", "psi2"])
    with pytest.raises(InputError, match="psi3"):
        run(["make-reference", "--sequence", "TT", "--bias-torsions", "psi3", "--work", tmp_path / "w",
             "--out", tmp_path / "o.npz"])


def test_pool_reference_refuses_odd_blocks(tmp_path):
    with pytest.raises(InputError, match="even"):
        run(["pool-reference", "--sequence", "AC", "--work", tmp_path, "--blocks", "3"])


def test_proposal_acceptance_refuses_a_residue_out_of_range():
    with pytest.raises(InputError, match="residue must lie in 1..2"):
        run(["proposal-acceptance", "--sequence", "RW", "--residue", "3"])
