"""Interrupted runs keep what they sampled, and a resumed run is the uninterrupted one.

Runs go through a subprocess (``python -m openmm_timewarp.cli``), which is signalled once its
log shows progress.  The proposal is the Gaussian walk of ``conftest.walk_model`` on ACE-ALA-NME (Reference
platform), fast enough that a few thousand steps take seconds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import mdtraj as md
import numpy as np
import pytest

from conftest import ALA_PDB, cli_options
from openmm_timewarp.cli import main
from openmm_timewarp.run.writer import FrameWriter, load_frames

PDB = ALA_PDB


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "openmm_timewarp.cli", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **cli_options())


def rows(folder) -> int:
    try:
        with open(os.path.join(folder, "log.csv")) as f:
            return sum(1 for _ in f) - 1
    except FileNotFoundError:
        return 0


def signal_after(process: subprocess.Popen, folder, n_rows: int, signum: int, need_checkpoint: bool = False):
    """Send ``signum`` once the run's log holds ``n_rows`` rows; returns (status, stdout, stderr)."""
    deadline = time.time() + 240
    while rows(folder) < n_rows or (need_checkpoint and not _checkpointed(folder)):
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.02)
    process.send_signal(signum)
    out, err = process.communicate(timeout=240)
    return process.returncode, out, err


def _checkpointed(folder) -> bool:
    path = os.path.join(folder, "checkpoint.zip")
    if not os.path.isfile(path):
        return False
    import zipfile

    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("progress.json"))["n_frames"] > 0


def frames(folder) -> np.ndarray:
    return load_frames(os.path.join(folder, "trajectory.dcd"), os.path.join(folder, "topology.pdb")).xyz


@pytest.fixture(scope="module")
def walk(walk_model) -> str:
    return walk_model


@pytest.fixture(scope="module")
def whole(walk, tmp_path_factory):
    """The uninterrupted run the interrupted ones must reproduce."""
    out = str(tmp_path_factory.mktemp("runs") / "whole")
    process = start("sample", PDB, "--model", walk, "--steps", "20000", "--frame-every", "5", "--seed", "11",
                    "--out", out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return out


def test_interrupted_sample_keeps_a_consistent_folder_and_resumes_bit_for_bit(walk, whole, tmp_path):
    # 20,000 steps: with 4,000 the run could finish between the 40th log row and the signal.
    out = str(tmp_path / "stopped")
    status, _, err = signal_after(start("sample", PDB, "--model", walk, "--steps", "20000", "--frame-every", "5",
                                        "--seed", "11", "--out", out), out, 40, signal.SIGINT)
    assert status == 130 and "Traceback" not in err and f"--resume {out}" in err, err
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert summary["status"] == "interrupted" and summary["interrupted_by"] == "SIGINT"
    n = summary["n_frames"]
    assert 40 <= n < 4000 and summary["steps_done"] == 5 * n and summary["num_proposed"] == 5 * n
    assert len(frames(out)) == rows(out) == n and "INTERRUPTED" in open(os.path.join(out, "summary.txt")).read()
    assert os.path.isfile(os.path.join(out, "ramachandran_ALA2.png"))
    # The settings come from the folder: new ones are refused, not silently ignored.
    assert main(["sample", "--resume", out, "--steps", "100"]) == 2
    assert main(["md", "--resume", out]) == 2
    process = start("sample", "--resume", out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert np.array_equal(frames(out), frames(whole))
    assert open(os.path.join(out, "log.csv")).read() == open(os.path.join(whole, "log.csv")).read()
    resumed, reference = (json.load(open(os.path.join(d, "summary.json"))) for d in (out, whole))
    assert resumed["status"] == "complete" and resumed["num_accepted"] == reference["num_accepted"]
    assert resumed["populations"] == reference["populations"]


def test_a_killed_run_resumes_from_its_last_checkpoint(walk, whole, tmp_path):
    out = str(tmp_path / "killed")
    status, _, _ = signal_after(start("sample", PDB, "--model", walk, "--steps", "20000", "--frame-every", "5",
                                      "--seed", "11", "--out", out, "--checkpoint-every", "0.002"),
                                out, 60, signal.SIGKILL, need_checkpoint=True)
    assert status == -signal.SIGKILL and not os.path.exists(os.path.join(out, "summary.json"))
    assert main(["compare", out, whole]) == 2  # an unfinished folder is named as such
    process = start("sample", "--resume", out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert np.array_equal(frames(out), frames(whole))
    assert open(os.path.join(out, "log.csv")).read() == open(os.path.join(whole, "log.csv")).read()


def test_md_stops_on_sigterm_and_resumes(tmp_path):
    args = ("md", PDB, "--steps", "20000", "--frame-every", "20", "--seed", "4")
    whole = str(tmp_path / "whole")
    assert main([*args, "--out", whole, "--no-progress"]) == 0
    out = str(tmp_path / "stopped")
    status, _, err = signal_after(start(*args, "--out", out), out, 30, signal.SIGTERM)
    assert status == 130 and "Traceback" not in err
    assert json.load(open(os.path.join(out, "summary.json")))["interrupted_by"] == "SIGTERM"
    assert len(frames(out)) == rows(out)
    assert main(["md", "--resume", out, "--no-progress"]) == 0
    assert np.array_equal(frames(out), frames(whole))
    assert open(os.path.join(out, "log.csv")).read() == open(os.path.join(whole, "log.csv")).read()


def test_streamed_trajectory_is_what_mdtraj_writes(tmp_path):
    xyz = np.random.RandomState(1).randn(7, 22, 3).astype(np.float32)
    topology = md.load(PDB).topology
    md.Trajectory(xyz, topology).save_dcd(str(tmp_path / "saved.dcd"))
    paths = str(tmp_path / "streamed.dcd"), str(tmp_path / "log.csv")
    writer = FrameWriter.create(*paths, 22, ["step", "x"])
    for i in range(5):
        writer.append(xyz[i], [i, 0.5])
    writer.close()
    # A kill after frame 5 but before the checkpoint's frame 3 was superseded: continue from 3.
    writer = FrameWriter.reopen(*paths, 22, 3)
    for i in range(3, 7):
        writer.append(xyz[i], [i, 0.5])
    writer.close()
    saved, streamed = open(tmp_path / "saved.dcd", "rb").read(), open(paths[0], "rb").read()
    # Equal but for the title record's unused bytes (bytes 100-180 hold the title text and padding).
    assert len(saved) == len(streamed) and saved[:100] == streamed[:100] and saved[276:] == streamed[276:]
    assert [line.split(",")[0] for line in open(paths[1]).read().split()] == ["step"] + [str(i) for i in range(7)]


def test_run_without_a_folder_and_interrupted_through_the_api(walk, monkeypatch):
    from openmm_timewarp.run import recording, sample

    class Stopped(recording.StopRequest):
        def __enter__(self):
            super().__enter__()
            self.requested = "SIGINT"  # as if Ctrl-C came before the first step
            return self

    monkeypatch.setattr(recording, "StopRequest", Stopped)
    result = sample(PDB, model=walk, steps=50, frame_every=5, seed=2)
    assert result.interrupted and result.trajectory.n_frames == 0 and result.summary["steps_done"] == 0


def test_stop_request_restores_handlers_and_leaves_ignored_signals_ignored():
    from openmm_timewarp.run.interrupt import StopRequest

    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.requested == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert stop.requested is None
    finally:
        signal.signal(signal.SIGTERM, before)
