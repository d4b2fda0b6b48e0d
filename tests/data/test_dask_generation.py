"""Tests of many-peptide data generation through Dask: a local cluster, resume, split checks,
and the same shards as the in-process (serial) path."""

import argparse
import json
import os

import numpy as np
import pytest

pytest.importorskip("distributed")

from openmm_timewarp.cli import generate_data as cli  # noqa: E402
from openmm_timewarp.data import read_shard  # noqa: E402
from openmm_timewarp.data.generate import Settings, generate, generate_many  # noqa: E402
from openmm_timewarp.data.split import select_sequences  # noqa: E402
from openmm_timewarp.errors import InputError  # noqa: E402

TINY = dict(lag_ps=0.2, frame_interval_ps=0.1, trajectory_ps=1.0, restraint_ps=2.0,
            equilibrate_ps=0.1, seed=3)
HERE = os.path.dirname(os.path.abspath(__file__))
SPLIT = {"about": "test split", "train": ["AD", "AE", "ACDD"], "validation": ["GM"]}
ARRAYS = ("x_t", "x_tau", "frames", "elements")


@pytest.fixture(scope="module")
def split_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("split") / "split.json"
    path.write_text(json.dumps(SPLIT))
    return str(path)


@pytest.fixture(scope="module")
def dask_run(tmp_path_factory):
    """ACE-ALA-NME and the train dipeptide ACE-ALA-ASP-NME, two trajectories each, through a local
    Dask cluster of two worker processes."""
    out = tmp_path_factory.mktemp("dask")
    jobs = [(Settings(sequence=s, **TINY), str(out / s)) for s in ("A", "AD")]
    manifests = generate_many(jobs, n_pairs=18, workers=2, progress=False)
    return out, jobs, manifests


def _same_shard(a, b):
    a, b = read_shard(a), read_shard(b)
    for key in ARRAYS:
        np.testing.assert_array_equal(a[key], b[key])
    varying = ("seconds", "code_version")  # wall time and the working tree's state
    assert {k: v for k, v in a["metadata"].items() if k not in varying} == \
        {k: v for k, v in b["metadata"].items() if k not in varying}


def test_dask_run_writes_one_folder_per_peptide(dask_run):
    out, jobs, manifests = dask_run
    for settings, folder in jobs:
        assert manifests[folder]["n_trajectories"] == 2 and manifests[folder]["n_pairs"] == 18
        assert manifests[folder]["settings"]["sequence"] == settings.sequence
        assert sorted(f for f in os.listdir(folder) if f.endswith(".npz")) == ["traj_00000.npz", "traj_00001.npz"]
    assert read_shard(os.path.join(out, "AD", "traj_00001.npz"))["x_t"].shape == (9, 34, 3)


def test_dask_shards_equal_the_serial_ones(dask_run, tmp_path):
    """What one trajectory computes does not depend on where it runs: the same seed gives the
    same shard in this process as in a Dask worker."""
    _, jobs, _ = dask_run
    settings, folder = jobs[1]
    generate(settings, str(tmp_path), n_pairs=18, workers=1, progress=False)
    for i in range(2):
        _same_shard(os.path.join(folder, f"traj_{i:05d}.npz"), os.path.join(tmp_path, f"traj_{i:05d}.npz"))


def test_resume_regenerates_only_the_missing_shard(dask_run):
    out, jobs, _ = dask_run
    kept = {folder: os.path.getmtime(os.path.join(folder, "traj_00000.npz")) for _, folder in jobs}
    missing = os.path.join(out, "AD", "traj_00001.npz")
    before = read_shard(missing)
    os.remove(missing)
    manifests = generate_many(jobs, n_pairs=18, workers=2, progress=False)
    assert all(m["n_trajectories"] == 2 for m in manifests.values())
    assert {f: os.path.getmtime(os.path.join(f, "traj_00000.npz")) for f in kept} == kept
    assert os.path.getmtime(os.path.join(out, "A", "traj_00001.npz")) < os.path.getmtime(missing)
    np.testing.assert_array_equal(read_shard(missing)["frames"], before["frames"])


def test_split_slices_and_refusals(split_file):
    assert select_sequences(None, split_file) == ["AD", "AE", "ACDD"]
    assert select_sequences(None, split_file, offset=1, limit=1) == ["AE"]
    assert select_sequences(None, split_file, "validation") == ["GM"]
    assert select_sequences(["ad", "AD", "ACDD"], split_file) == ["AD", "ACDD"]
    assert select_sequences(["WW"]) == ["WW"]  # no split: any sequence
    with pytest.raises(InputError, match="AA not in the 'train' list"):
        select_sequences(["AD", "AA"], split_file)  # not in the split: maybe held out
    with pytest.raises(InputError, match="GM not in the 'train' list"):
        select_sequences(["GM"], split_file)
    with pytest.raises(InputError, match=r"unknown one-letter code\(s\) \['B', 'X'\]"):
        select_sequences(["AXB"])
    with pytest.raises(InputError, match="select none"):
        select_sequences(None, split_file, offset=3)
    with pytest.raises(InputError, match="no list of sequences called 'test'"):
        select_sequences(None, split_file, "test")


def _args(**overrides):
    args = dict(sequence=None, pdb=None, split=None, subset="train", offset=0, limit=None, out="OUT")
    args.update(overrides)
    return argparse.Namespace(**args)


def test_cli_folders(split_file):
    assert cli._jobs(_args(sequence=["A"])) == [("A", "OUT", None)]
    assert cli._jobs(_args(sequence=["A", "AA"])) == [("A", os.path.join("OUT", "A"), None),
                                                      ("AA", os.path.join("OUT", "AA"), None)]
    assert cli._jobs(_args(split=split_file, limit=1)) == [("AD", os.path.join("OUT", "AD"), None)]
    with pytest.raises(InputError, match="give --sequence or --pdb, or --split"):
        cli._jobs(_args())
    with pytest.raises(InputError, match="AA not in the 'train' list"):
        cli._jobs(_args(sequence=["AD", "AA"], split=split_file))
    with pytest.raises(InputError, match="cannot be combined"):
        cli._jobs(_args(pdb="x.pdb", sequence=["A"]))


def test_unreachable_scheduler_is_an_input_error(monkeypatch):
    from openmm_timewarp.data import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)  # port 9 (discard) has no scheduler
    with pytest.raises(InputError, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        list(cluster.run_tasks(abs, [1, 2], scheduler="tcp://127.0.0.1:9"))


def test_a_failing_task_does_not_stop_the_others():
    """An expected failure in a Dask worker comes back as that task's error; the others finish."""
    import math

    from openmm_timewarp.data.cluster import run_tasks

    outcomes = {i: (result, error) for i, result, error in
                run_tasks(math.sqrt, [4.0, -1.0, 9.0], workers=2, keys=["a", "b", "c"], expected=(ValueError,))}
    assert outcomes[0] == (2.0, None) and outcomes[2] == (3.0, None)
    assert outcomes[1][0] is None and isinstance(outcomes[1][1], ValueError)
    with pytest.raises(ValueError):
        list(run_tasks(math.sqrt, [-1.0, 4.0], workers=2))  # not expected: raised
