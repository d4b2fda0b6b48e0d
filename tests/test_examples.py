"""Smoke tests: the examples run as a user would run them and write what they promise."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
import known_proposals as proposals

EXAMPLES = os.path.join(ROOT, "examples")


def test_sample_alanine_dipeptide_example(tmp_path):
    model = proposals.save(proposals.GaussianDriftProposal(0.0, 0.001, ["H", "C", "N", "O"], temperature=310.0),
                           tmp_path / "model.pt")
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, os.path.join(EXAMPLES, "sample_alanine_dipeptide.py"), "--model", model,
                             "--steps", "200", "--out", str(out)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "acceptance rate" in result.stdout and "alpha_R" in result.stdout
    for name in ("trajectory.dcd", "log.csv", "ramachandran.png"):
        assert (out / name).stat().st_size > 0
    again = subprocess.run([sys.executable, os.path.join(EXAMPLES, "sample_alanine_dipeptide.py"), "--model", model,
                            "--out", str(out)], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr


@pytest.mark.slow
def test_train_your_own_model_example(tmp_path):
    work = tmp_path / "own"
    result = subprocess.run(["bash", os.path.join(EXAMPLES, "train_your_own_model.sh"), str(work)], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert (work / "model.pt").stat().st_size > 0
    summary = json.loads((work / "sample" / "summary.json").read_text())
    assert summary["num_proposed"] == 300 and summary["n_frames"] == 30
    assert summary["model_path"] == str(work / "model.pt") and summary["lag_time_ps"] == 2.0


def run_example(script: str, *args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, script), *args], cwd=cwd, capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=600)


def test_metadynamics_example_reweights_with_the_shipped_model(tmp_path):
    out = tmp_path / "metad"
    result = run_example("metadynamics_with_timewarp.py", "--build-steps", "60", "--production-steps", "60",
                         "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = np.load(out / "phase2.npz")
    assert data["phi"].shape == (60,) and np.all(np.isfinite(data["bias"]))
    assert data["bias"].max() > 0, "hills were deposited in phase 1"
    assert "reweighted" in result.stdout and "alpha_L" in result.stdout


def test_restraint_example_holds_psi_with_the_shipped_model(tmp_path):
    out = tmp_path / "restrained"
    result = run_example("restrained_sampling.py", "--steps", "300", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "trajectory.dcd").stat().st_size > 0
    line = next(s for s in result.stdout.splitlines() if s.startswith("share with -120 <= psi < 50"))
    sampled = float(line.split("sampled ")[1].split(",")[0])
    assert sampled > 0.8, result.stdout  # the restraint at -40 degrees holds psi in alpha_R
    acceptance = float(result.stdout.split("acceptance rate ")[1].split()[0])
    assert acceptance > 0.005, result.stdout


def test_tito_trajectory_example(tmp_path):
    # The shipped TITO model: the example's plumbing (its quality: benchmarks/tito_kinetics.py).
    out = tmp_path / "tito"
    result = run_example("tito_trajectory.py", "--lag-ps", "250", "--steps", "20", "--equilibrium-steps", "200",
                         "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20 steps of 250 ps (5 ns)" in result.stdout and "alpha_R" in result.stdout
    assert "exact chain of 200 steps: basin populations" in result.stdout
    for name in ("trajectory.dcd", "log.csv", "ramachandran.png"):
        assert (out / name).stat().st_size > 0
    times = np.loadtxt(out / "log.csv", delimiter=",", usecols=1, skiprows=1, ndmin=1)
    assert times[-1] == 5000.0  # ps: the reporters' clock runs at one lag per step


def test_replica_exchange_example_runs_timewarp_in_openmms_sampler(tmp_path):
    out = tmp_path / "remd"
    result = run_example("replica_exchange_with_timewarp.py", "--replicas", "2", "--iterations", "6", "--steps", "5",
                         "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    data = np.load(out / "states.npz")
    assert data["phi"].shape == (6, 1) and data["holder"].shape == (6,)
    assert np.allclose(data["temperatures"], [310.0, 450.0])
    assert "alpha_R" in result.stdout and "iterations in" in result.stdout
    again = run_example("replica_exchange_with_timewarp.py", "--out", str(out), cwd=tmp_path)
    assert again.returncode == 2 and "exists" in again.stderr
