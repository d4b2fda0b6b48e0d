"""TITO: the equivariant flow-matching transfer operator, its training, export and integrator."""
import json
import math

import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from openmm_timewarp import TitoIntegrator, systems
from openmm_timewarp.data.storage import write_shard
from kernel_cli import run_cli
from openmm_timewarp.errors import InputError
from openmm_timewarp.proposals.export import ExportedTito, export_model, load_checkpoint
from openmm_timewarp.proposals.tito import TitoModel
from openmm_timewarp.training.tito import hydrogen_groups, permute_to_nearest

ELEMENTS = ["H", "C", "N", "O", "S"]


def train(argv):
    """``openmm-timewarp train-tito ARGV``, in-process."""
    assert run_cli(["train-tito"] + list(argv)) == 0


def small_model(**kwargs):
    torch.manual_seed(0)
    return TitoModel(ELEMENTS, hidden=16, layers=2, num_steps=4, **kwargs).double().eval()


def test_velocity_is_equivariant_to_rotation_translation_and_permutation():
    model = small_model()
    types = torch.tensor([1, 0, 0, 0, 2, 0, 3])
    y, x0 = torch.randn(2, 7, 3, dtype=torch.float64), torch.randn(2, 7, 3, dtype=torch.float64)
    s, lag = torch.tensor([0.2, 0.7], dtype=torch.float64), torch.tensor([20.0, 500.0], dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    v = model.velocity(y, x0, types, s, lag)
    shift = torch.tensor([0.7, -0.3, 0.2], dtype=torch.float64)
    moved = model.velocity(y @ rotation.T + shift, x0 @ rotation.T + shift, types, s, lag)
    assert torch.allclose(v @ rotation.T, moved, atol=1e-10)
    perm = torch.tensor([3, 0, 6, 1, 4, 2, 5])
    assert torch.allclose(v[:, perm], model.velocity(y[:, perm], x0[:, perm], types[perm], s, lag), atol=1e-10)
    assert torch.allclose(v.mean(dim=1), torch.zeros(2, 3, dtype=torch.float64), atol=1e-12)  # no drift
    # The lag and the flow time matter.
    assert not torch.allclose(v, model.velocity(y, x0, types, s, lag * 2))


def test_ot_coupling_permutes_only_equivalent_hydrogens():
    # A methyl carbon with three hydrogens and one hydroxyl hydrogen on an oxygen.
    symbols = ["C", "H", "H", "H", "O", "H"]
    positions = np.array([[0, 0, 0], [0.109, 0, 0], [-0.036, 0.103, 0], [-0.036, -0.051, 0.089],
                          [-0.036, -0.051, -0.13], [0.05, -0.08, -0.17]])
    assert hydrogen_groups(positions, symbols) == [[1, 2, 3]]
    target = torch.tensor(positions, dtype=torch.float32)[None]
    base = target[:, [0, 2, 3, 1, 4, 5]]  # the base has the methyl hydrogens rotated by one place
    matched = permute_to_nearest(target, base, [[1, 2, 3]])
    assert torch.allclose(matched, base)


def test_export_has_no_density_and_a_settable_lag(tmp_path):
    model = small_model(min_lag_ps=10.0, max_lag_ps=1000.0, lag_ps=100.0).float()
    path = tmp_path / "tito.pt"
    settings = export_model(model, path, lag_ps=100.0, temperature_K=310.0, metadata={"sequences": ["A"]})
    assert settings["needs_fast_coordinate_moves"] is False
    module = torch.jit.load(str(path))
    assert json.loads(module.metadata_json())["kernel"]["kind"] == "tito"
    assert not module.has_density() and module.lag_time_ps() == 100.0 and module.lag_range_ps() == [10.0, 1000.0]
    positions = torch.randn(7, 3, dtype=torch.float64)
    types = torch.tensor([1, 0, 0, 0, 2, 0, 3])
    torch.manual_seed(3)
    proposals, log_ratio = module(positions, types, 3)
    assert proposals.shape == (3, 7, 3) and proposals.dtype == torch.float64 and torch.isnan(log_ratio).all()
    assert torch.allclose(proposals.mean(dim=1), positions.mean(dim=0).expand(3, 3), atol=1e-5)
    torch.manual_seed(3)
    python = ExportedTito(model, 100.0, 310.0, {})(positions, types, 3)[0]
    assert torch.allclose(python, proposals, atol=1e-6)
    module.set_lag_ps(250.0)
    torch.jit.save(module, str(tmp_path / "lag250.pt"))
    assert torch.jit.load(str(tmp_path / "lag250.pt")).lag_time_ps() == 250.0
    with pytest.raises(Exception, match="outside the trained range"):
        module.set_lag_ps(2000.0)


def ou_shards(folder, n_traj=4, n_frames=2000, relaxation=10.0, seed=0):
    """Two-atom 'molecules' (C and O on the x axis) whose separation is an Ornstein-Uhlenbeck process
    with relaxation time ``relaxation`` frames: x(t + k) | x(t) is known exactly for every lag k."""
    rng = np.random.default_rng(seed)
    a = math.exp(-1.0 / relaxation)
    for i in range(n_traj):
        r = np.empty(n_frames)
        r[0] = 0.3
        for t in range(1, n_frames):
            r[t] = 0.3 + a * (r[t - 1] - 0.3) + 0.05 * math.sqrt(1 - a * a) * rng.normal()
        frames = np.zeros((n_frames, 2, 3), np.float32)
        frames[:, 1, 0] = r
        write_shard(str(folder / f"traj_{i:05d}.npz"), frames, 1, ["C", "O"],
                    {"trajectory": i, "trajectory_seed": i, "start": [], "sequence": "ou", "temperature_K": 310.0,
                     "frame_interval_ps": 1.0})


def test_training_learns_the_lag_dependence_of_a_known_transfer_operator(tmp_path):
    """Separation r of an OU process: E[r(t + k) | r(t)] = 0.3 + exp(-k / 10) (r(t) - 0.3). The model
    must regress strongly at lag 2 (slope 0.82) and hardly at lag 40 (slope 0.02)."""
    (tmp_path / "data").mkdir()
    ou_shards(tmp_path / "data")
    argv = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--epochs", "4", "--steps-per-epoch",
            "300", "--lr", "3e-3", "--batch-size", "64", "--hidden", "32", "--layers", "2", "--min-lag-ps", "1", "--max-lag-ps", "50",
            "--ode-steps", "10", "--seed", "0", "--no-progress", "--threads", "1", "--cartesian"]
    train(argv)
    model, info = load_checkpoint(tmp_path / "run" / "best.pt")
    assert info["lag_range_ps"] == [1.0, 50.0] and info["sequences"] == ["ou"]
    torch.manual_seed(1)
    types = torch.tensor([1, 3])
    slopes, spreads = {}, {}
    for lag in (2.0, 40.0):
        r0 = torch.tensor([0.22, 0.38])
        x0 = torch.zeros(2, 2, 3)
        x0[:, 1, 0] = r0
        x0 = x0 - x0.mean(dim=1, keepdim=True)
        with torch.no_grad():
            x1 = model.sample(x0.repeat_interleave(400, 0), types, torch.full((800,), lag))
        r1 = (x1[:, 1] - x1[:, 0]).norm(dim=-1).reshape(2, 400)
        slopes[lag] = float((r1[1].mean() - r1[0].mean()) / (r0[1] - r0[0]))
        spreads[lag] = float(r1.std(dim=1).mean())
    # Exact: slopes 0.82 and 0.02, spreads 0.029 and 0.050 nm; the standard error of an estimated
    # slope is about 0.02, so the bounds leave room for the model's error, not for a lag-blind model.
    assert slopes[2.0] > 0.65 and abs(slopes[40.0]) < 0.25, slopes
    assert 0.02 < spreads[2.0] < 0.04 and 0.04 < spreads[40.0] < 0.065, spreads
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    with pytest.raises(InputError, match="--resume"):
        train(argv)
    argv[argv.index("--epochs") + 1] = "5"
    train(argv + ["--resume"])
    assert [json.loads(line)["epoch"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()] == [1, 2, 3, 4, 5]


def test_integrator_steps_one_lag_per_step_and_checks_its_model(tmp_path):
    model = small_model(min_lag_ps=10.0, max_lag_ps=1000.0, lag_ps=100.0).float()
    path = tmp_path / "tito.pt"
    export_model(model, path, lag_ps=100.0, temperature_K=310.0)
    topology, positions = systems.peptide_from_sequence("A")
    integrator = TitoIntegrator(str(path), topology, lag=250.0 * unit.picosecond, random_seed=4,
                                energy_threshold=1e12 * unit.kilojoule_per_mole)
    assert integrator.getStepSize().value_in_unit(unit.picosecond) == pytest.approx(250.0)
    simulation = app.Simulation(topology, systems.create_system(topology), integrator,
                                mm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(positions)
    simulation.step(3)
    assert simulation.context.getState().getTime().value_in_unit(unit.picosecond) == pytest.approx(750.0)
    assert integrator.getNumProposed() == 3 and not integrator.getMetropolisHastings()
    # The lag-250 copy lives in the integrator only: no file, its settings entry kept.
    from openmm_timewarp import ModelFile

    copy = ModelFile.from_bytes(integrator.getModelData())
    assert integrator.getModelFile() == "" and copy.lag_time_ps == 250.0
    assert copy.settings == ModelFile.open(str(path)).settings
    assert TitoIntegrator(str(path), topology).getModelFile() == str(path)  # its own lag: the file itself
    with pytest.raises(ValueError, match="lag 5000 ps is outside the range the model was trained for, \\[10, 1000\\]"):
        TitoIntegrator(str(path), topology, lag=5000.0)
    with pytest.raises(ValueError, match="is not a TITO model"):
        TitoIntegrator("ace-ala-nme", topology)
    (tmp_path / "broken.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load model file"):
        TitoIntegrator(str(tmp_path / "broken.pt"), topology)


def test_cartesian_model_refuses_basin_populations(tmp_path):
    """The Cartesian model takes no basin populations: asking for them is an error, not ignored."""
    from pathlib import Path

    from openmm_timewarp.run import tito

    model = small_model(min_lag_ps=10.0, max_lag_ps=1000.0, lag_ps=100.0).float()
    export_model(model, tmp_path / "tito.pt", lag_ps=100.0, temperature_K=310.0)
    pdb = Path(__file__).resolve().parents[2] / "examples" / "data" / "ace-ala-nme.pdb"
    for request in (dict(equilibrium=str(tmp_path)), dict(equilibrium_steps=100)):
        with pytest.raises(InputError, match="takes no basin populations"):
            tito(pdb, model=str(tmp_path / "tito.pt"), steps=2, out=str(tmp_path / "run"), **request)
    assert not (tmp_path / "run").exists()

