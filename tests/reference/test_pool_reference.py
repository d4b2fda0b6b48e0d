"""Pooling reference runs (openmm_timewarp.reference.pool): each run normalised, runs weighted by their Kish sizes."""

import json
import os

import numpy as np
import pytest

from openmm_timewarp.errors import InputError
from openmm_timewarp.reference.pool import PoolSettings, pool_references, read_run


def fake_run(folder, phi, psi, bias, sequence="AC", temperature=310.0, n_chunks=2, timestep_fs=2.0):
    """A run folder as make-reference leaves it: config.json and production chunks."""
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"sequence": sequence, "temperature": temperature, "friction": 1.0, "timestep_fs": timestep_fs,
                   "hmr": 4.0, "build_ns": 3.0, "chunk_ns": 1.0, "residue_bias": False}, f)
    for k, rows in enumerate(np.array_split(np.arange(len(bias)), n_chunks)):
        np.savez(os.path.join(folder, f"chunk_{k:05d}.npz"), phi=phi[rows].astype(np.float32),
                 psi=psi[rows].astype(np.float32), bias=bias[rows].astype(np.float32), checkpoint=np.zeros(1, np.uint8))
    return str(folder)


def test_runs_enter_with_their_kish_sizes(tmp_path):
    n = 400
    beta_basin = fake_run(tmp_path / "a", np.full((n, 2), -120.0), np.full((n, 2), 150.0), np.zeros(n))
    # Run b: in alpha_R, half its frames with weight e^-3 (bias -3 kT): Kish size smaller than n.
    kt = 0.0083144626 * 310.0
    bias = np.where(np.arange(n) % 2 == 0, 0.0, -3.0 * kt)
    alpha_basin = fake_run(tmp_path / "b", np.full((n, 2), -70.0), np.full((n, 2), -40.0), bias, timestep_fs=1.5)
    runs = [read_run(w) for w in (beta_basin, alpha_basin)]
    w = np.exp(-3.0)
    kish_b = n * (1 + w) ** 2 / (2 * (1 + w * w))
    assert runs[0]["kish"] == pytest.approx(n) and runs[1]["kish"] == pytest.approx(kish_b, rel=1e-4)
    out = str(tmp_path / "pool.npz")
    assert pool_references(PoolSettings("ac", (beta_basin, alpha_basin), blocks=4, out=out)) == out
    with np.load(out) as data:
        names = [str(x) for x in data["basin_names"]]
        populations = data["populations"]
        metadata = json.loads(str(data["metadata"]))
    expected = n / (n + kish_b)
    for r in range(2):
        assert populations[r, names.index("beta")] == pytest.approx(expected, rel=1e-4)
        assert populations[r, names.index("alpha_R")] == pytest.approx(1 - expected, rel=1e-4)
    assert metadata["production_ns"] == 4.0 and len(metadata["runs"]) == 2
    assert metadata["timestep_fs"] == [1.5, 2.0] and metadata["friction_per_ps"] == 1.0  # settings that differ: all listed
    assert metadata["runs"][0]["share"] == pytest.approx(expected, rel=1e-4)
    assert max(metadata["jsd_between_halves"]) < 1e-9  # every block holds the same mixture


def test_runs_of_other_peptides_and_odd_blocks_are_refused(tmp_path):
    n = 20
    a = fake_run(tmp_path / "a", np.zeros((n, 2)), np.zeros((n, 2)), np.zeros(n))
    b = fake_run(tmp_path / "b", np.zeros((n, 2)), np.zeros((n, 2)), np.zeros(n), sequence="DE")
    with pytest.raises(InputError, match="DE"):
        pool_references(PoolSettings("AC", (a, b), out=str(tmp_path / "x.npz")))
    with pytest.raises(InputError, match="even"):
        PoolSettings("AC", (a, b), blocks=3)
    with pytest.raises(InputError, match="not a reference run folder"):
        read_run(str(tmp_path))
