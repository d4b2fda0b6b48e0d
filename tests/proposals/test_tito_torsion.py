"""The torsion TITO model: its torsions and turns, training on a known transfer operator, export,
``TitoIntegrator`` with relaxation, and ``openmm-timewarp tito``."""
import json
import math
import warnings

import mdtraj as md
import numpy as np
import openmm as mm
import pytest
import torch
from openmm import app, unit

from kernel_cli import run_cli
from openmm_timewarp import TimewarpIntegrator, TitoIntegrator, systems
from openmm_timewarp.data.storage import write_shard
from openmm_timewarp.errors import InputError
from openmm_timewarp.proposals.export import export_model, load_checkpoint
from openmm_timewarp.proposals.tito_torsion import TorsionTito

ELEMENTS = ["H", "C", "N", "O", "S"]
PHI_STATES = (-1.2, 1.0)  # rad: the two phi values of the synthetic two-state process
FLIP = 0.05  # probability per frame that phi switches state


def molecule(sequence, relax=False):
    """Topology, positions (nm, float64 tensor) and atom types of ACE-sequence-NME; with ``relax``
    minimized and thermalized (the builder places proline's CD too close to the ACE cap)."""
    topology, positions = systems.peptide_from_sequence(sequence)
    if relax:
        positions = systems.thermalize(systems.create_system(topology), positions, 310.0, seed=1)
    x = torch.tensor(positions.value_in_unit(unit.nanometer), dtype=torch.float64)
    types = torch.tensor([ELEMENTS.index(a.element.symbol) for a in topology.atoms()])
    return topology, x, types


def wrap(a):
    return (a + math.pi) % (2 * math.pi) - math.pi


def test_torsions_are_mdtraj_s_and_turns_set_them_keeping_bonds_and_angles():
    topology, x, types = molecule("KW")
    model = TorsionTito(ELEMENTS)
    features, mask, neighbours, quads, bonds, moving = model.molecule(x, types)
    assert mask.tolist() == [[1, 1, 1], [1, 1, 1]] and neighbours.tolist() == [[2, 1], [0, 2]]
    new = torch.tensor(np.random.default_rng(0).uniform(-math.pi, math.pi, (4, 2, 3)))
    y = model.turn_to(x, model.torsions(x, quads), new, bonds, moving)
    trajectory = md.Trajectory(y.numpy(), md.Topology.from_openmm(topology))
    _, phi = md.compute_phi(trajectory)
    _, psi = md.compute_psi(trajectory)
    _, chi = md.compute_chi1(trajectory)
    assert np.abs(wrap(np.stack([phi, psi, chi], -1) - new.numpy())).max() < 1e-5  # mdtraj computes in float32
    # Rigid turns: every bond length and bond angle is kept, and so is the atom mean.
    def distances(z):
        return torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")

    bonded = distances(x) < 0.17
    assert ((distances(y) - distances(x))[:, bonded].abs().max()) < 1e-10
    assert torch.allclose(y.mean(1), x.mean(0).expand(4, 3), atol=1e-12)


def test_proline_phi_and_glycine_chi_are_fixed():
    _, x, types = molecule("PG", relax=True)
    mask = TorsionTito(ELEMENTS).molecule(x, types)[1]
    assert mask.tolist() == [[0, 1, 0], [1, 1, 0]]  # Pro: phi in its ring, chi1 turns the ring; Gly: no chi1


def two_state_shards(folder, n_traj=6, n_frames=1500, seed=0):
    """ACE-ALA-NME frames whose phi jumps between two values with probability FLIP per frame and
    whose psi is a wrapped Ornstein-Uhlenbeck process: P(phi flipped after k frames) is
    (1 - (1 - 2 FLIP)^k) / 2 exactly."""
    _, x, types = molecule("A")
    model = TorsionTito(ELEMENTS)
    _, _, _, quads, bonds, moving = model.molecule(x, types)
    now = model.torsions(x, quads)
    rng = np.random.default_rng(seed)
    for i in range(n_traj):
        state, psi = i % 2, 2.5
        torsions = np.empty((n_frames, 1, 3))
        for t in range(n_frames):
            state = 1 - state if rng.random() < FLIP else state
            psi = wrap(psi + 0.2 * (2.5 - psi) + 0.3 * rng.normal())
            torsions[t, 0] = [PHI_STATES[state] + 0.1 * rng.normal(), psi, 0.0]
        frames = model.turn_to(x, now, torch.tensor(torsions), bonds, moving).numpy().astype(np.float32)
        write_shard(str(folder / f"traj_{i:05d}.npz"), frames, 1, [ELEMENTS[t] for t in types],
                    {"trajectory": i, "sequence": "A", "temperature_K": 310.0, "frame_interval_ps": 10.0})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small torsion model trained on :func:`two_state_shards` (frames every 10 ps)."""
    root = tmp_path_factory.mktemp("tito-torsion")
    (root / "data" / "A").mkdir(parents=True)
    two_state_shards(root / "data" / "A")
    argv = ["train-tito", "--data", str(root / "data"), "--out", str(root / "run"), "--epochs", "3",
            "--steps-per-epoch", "300", "--batch-size", "256", "--lr", "3e-3", "--hidden", "64", "--layers", "2",
            "--min-lag-ps", "10", "--max-lag-ps", "500", "--lag-ps", "100", "--ode-steps", "10", "--seed", "0",
            "--no-progress", "--threads", "1"]
    assert run_cli(argv) == 0
    return root, argv


def test_training_learns_the_lag_dependence_of_a_known_transfer_operator(trained):
    root, argv = trained
    model, info = load_checkpoint(root / "run" / "best.pt")
    assert info["lag_range_ps"] == [10.0, 500.0] and info["sequences"] == ["A"] and model.kind == "tito-torsion"
    _, x, types = molecule("A")
    features, mask, neighbours, quads, bonds, moving = model.molecule(x, types)
    start = model.torsions(x, quads)
    start[0, 0] = PHI_STATES[0]
    torch.manual_seed(1)
    flipped = {}
    for frames in (2, 40):
        n = 1000
        with torch.no_grad():
            new = model.sample(start.float()[None].expand(n, -1, -1), features.float()[None].expand(n, -1, -1),
                               mask.float()[None].expand(n, -1, -1), neighbours[None].expand(n, -1, -1),
                               torch.full((n,), 10.0 * frames))
        flipped[frames] = float((new[:, 0, 0] > 0).float().mean())
    # Exact: 0.090 at 20 ps and 0.493 at 400 ps (standard error of 1,000 draws: 0.009 and 0.016);
    # the bounds leave room for the model's error, not for a model that ignores the lag.
    assert flipped[2] < 0.2 and 0.35 < flipped[40] < 0.65, flipped
    records = [json.loads(line) for line in (root / "run" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["val_loss"] < records[0]["val_loss"]
    with pytest.raises(InputError, match="--resume"):
        run_cli(argv)


def chain_beta_fraction(model, populations, chains=300, steps=40, burn_in=15, seed=4):
    """Fraction of beta among the last steps of ``chains`` torsion chains of ``model``'s moves at
    100 ps (half of them started in each of the two basins), with ``populations`` set (or none)."""
    _, x, types = molecule("A")
    features, mask, neighbours, quads, _, _ = model.molecule(x, types)
    now = model.torsions(x, quads).float()[None].repeat(chains, 1, 1)
    now[:, 0, 0] = torch.tensor(PHI_STATES)[torch.arange(chains) % 2]
    model.set_basin_populations(torch.zeros(0, 4) if populations is None else torch.tensor([populations]))
    torch.manual_seed(seed)
    beta = []
    with torch.no_grad():
        for step in range(steps):
            now = model.sample(now, features.float()[None].expand(chains, -1, -1),
                               mask.float()[None].expand(chains, -1, -1), neighbours[None].expand(chains, -1, -1),
                               torch.full((chains,), 100.0))
            if step >= burn_in:
                beta.append((now[:, 0, 0] < 0).float().mean().item())
    return float(np.mean(beta))


def test_basin_populations_become_the_chain_s_populations(trained):
    # The synthetic process flips phi symmetrically: its own chain is 50/50 between beta and PII_L.
    # Told populations, the Metropolis test on the basin labels must make them the chain's: with
    # q(flip) 0.33 per 100 ps both ways, a chain kept at 0.8/0.2 relaxes at about 0.4 per step, so
    # 25 steps of 300 chains give about 3,000 independent samples (standard error 0.007).
    root, _ = trained
    model, _ = load_checkpoint(root / "run" / "best.pt")
    own = chain_beta_fraction(model, None)
    kept = {target: chain_beta_fraction(model, [target, 0.0, 0.0, 1.0 - target]) for target in (0.8, 0.3)}
    assert abs(own - 0.5) < 0.06, own
    assert abs(kept[0.8] - 0.8) < 0.05 and abs(kept[0.3] - 0.3) < 0.05, kept
    # A basin of population 0 is never entered.
    assert chain_beta_fraction(model, [1.0, 0.0, 0.0, 0.0]) > 0.99
    with pytest.raises(ValueError, match="shape"):
        model.set_basin_populations(torch.ones(1, 3))
    with pytest.raises(ValueError, match="non-negative"):
        model.set_basin_populations(torch.tensor([[0.5, -0.1, 0.3, 0.3]]))


def test_train_tito_refuses_an_option_of_the_other_model(tmp_path):
    with pytest.raises(InputError, match="--base-scale-nm does not apply to the torsion model"):
        run_cli(["train-tito", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--base-scale-nm", "0.1"])
    with pytest.raises(InputError, match="holds no traj_"):
        run_cli(["train-tito", "--data", str(tmp_path), "--out", str(tmp_path / "run")])


def test_export_and_integrator_relax_after_every_move(trained, tmp_path):
    root, _ = trained
    model, info = load_checkpoint(root / "run" / "best.pt")
    path = tmp_path / "tito.pt"
    settings = export_model(model, path, lag_ps=100.0, temperature_K=310.0, metadata=info,
                            integrator_settings={"hmc_interval": 1, "hmc_steps": 20})
    assert settings["needs_fast_coordinate_moves"] is True
    topology, positions = systems.peptide_from_sequence("A")
    system = systems.create_system(topology)
    integrator = TitoIntegrator(str(path), topology, lag=200.0 * unit.picosecond, random_seed=2)
    assert integrator.getHMCInterval() == 1 and integrator.getHMCSteps() == 20
    simulation = app.Simulation(topology, system, integrator, mm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(systems.thermalize(system, positions, 310.0, seed=1))
    simulation.step(30)
    assert simulation.context.getState().getTime().value_in_unit(unit.picosecond) == pytest.approx(6000.0)
    assert integrator.getNumProposed() == 30 and integrator.getAcceptanceRate() > 0.5
    assert integrator.getHMCAcceptanceRate() > 0.5
    with pytest.raises(ValueError, match="outside the range the model was trained for"):
        TitoIntegrator(str(path), topology, lag=5000.0)


def test_export_sets_the_sampling_of_a_move(trained, tmp_path):
    from openmm_timewarp.model_file import ModelFile

    root, _ = trained
    out = tmp_path / "coarse.pt"
    assert run_cli(["export", str(root / "run" / "best.pt"), str(out), "--tito-sampling", "5", "2"]) == 0
    kernel = json.loads(ModelFile.open(str(out)).module.metadata_json())["kernel"]
    assert kernel["num_steps"] == 5 and kernel["candidates"] == 2
    with pytest.raises(InputError, match="--tito-sampling: need at least one ODE step"):
        run_cli(["export", str(root / "run" / "best.pt"), str(tmp_path / "x.pt"), "--tito-sampling", "0", "2"])


def test_basin_populations_travel_in_the_integrator_and_its_xml(trained, tmp_path):
    from openmm_timewarp.model_file import ModelFile

    root, _ = trained
    model, info = load_checkpoint(root / "run" / "best.pt")
    path = tmp_path / "tito.pt"
    export_model(model, path, lag_ps=100.0, temperature_K=310.0, metadata=info,
                 integrator_settings={"hmc_interval": 1, "hmc_steps": 5})
    topology, _ = systems.peptide_from_sequence("A")
    integrator = TitoIntegrator(str(path), topology, basin_populations=[[0.6, 0.3, 0.08, 0.02]], random_seed=2)
    deserialized = mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(integrator))  # owns what cast() sees
    for source in (integrator, TimewarpIntegrator.cast(deserialized)):
        module = ModelFile.from_bytes(bytes(source.getModelData())).module
        assert module.basin_populations()[0].tolist() == pytest.approx([0.6, 0.3, 0.08, 0.02])
    # The file itself is unchanged, and a molecule with another number of residues is refused.
    assert ModelFile.open(str(path)).module.basin_populations().shape == (0, 4)
    with pytest.raises(ValueError, match="shape"):
        TitoIntegrator(str(path), topology, basin_populations=[0.6, 0.3, 0.08, 0.02])
    with pytest.raises(ValueError, match="for 2 residues, but the topology has 1 residues with both phi and psi"):
        TitoIntegrator(str(path), topology, basin_populations=[[0.6, 0.3, 0.08, 0.02]] * 2)


def test_tito_command_writes_a_trajectory_timescales_and_populations(trained, tmp_path, capsys):
    from openmm_timewarp.cli import main

    root, _ = trained
    model, info = load_checkpoint(root / "run" / "best.pt")
    export_model(model, tmp_path / "tito.pt", lag_ps=100.0, temperature_K=310.0, metadata=info,
                 integrator_settings={"hmc_interval": 1, "hmc_steps": 10})
    out = tmp_path / "run"
    assert main(["tito", str(_ala_pdb()), "--model", str(tmp_path / "tito.pt"), "--steps", "60", "--lag-ps", "200",
                 "--equilibrium-steps", "200", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    # The basin populations the chain keeps come from an exact chain run first, recorded in the summary.
    assert summary["equilibrium"]["n_frames"] == 200 and len(summary["basin_populations"]) == 1
    # 200 steps cannot pin them: the run says so in one line and records the largest error.
    largest = summary["equilibrium"]["largest_error"]
    assert largest["standard_error"] > 0.03 and largest["residue"] == 1
    assert "warning: the basin populations from the exact chain of 200 steps are uncertain" in capsys.readouterr().err
    assert sum(summary["basin_populations"][0]) == pytest.approx(1.0)
    assert "basin populations kept" in (out / "summary.txt").read_text()
    assert f"largest standard error {largest['standard_error']:.3f} (residue 1" in (out / "summary.txt").read_text()
    assert summary["mode"] == "tito-surrogate" and summary["biased"] and summary["lag_time_ps"] == 200.0
    assert summary["simulated_time_ps"] == pytest.approx(12000.0) and summary["n_frames"] == 60
    assert summary["implied_timescales"]["lags_ps"] == [200.0, 400.0]
    assert (out / "implied_timescales.png").stat().st_size > 0
    assert "TITO SURROGATE DYNAMICS" in (out / "summary.txt").read_text()
    # --resume keeps the run's own settings: a lag given with it is refused.
    capsys.readouterr()
    assert main(["tito", "--resume", str(out), "--lag-ps", "300"]) == 2
    assert "drop --lag-ps" in capsys.readouterr().err
    # Not a TITO model, and a lag outside the range: one clear line each.
    assert main(["tito", str(_ala_pdb()), "--model", "ace-ala-nme", "--steps", "5", "--out",
                 str(tmp_path / "x"), "--no-progress"]) == 2
    assert main(["tito", str(_ala_pdb()), "--model", str(tmp_path / "tito.pt"), "--lag-ps", "9000", "--steps", "5",
                 "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    # Equilibrium populations from a run folder: an exact sample run is taken, a TITO run refused.
    capsys.readouterr()
    assert main(["tito", str(_ala_pdb()), "--model", str(tmp_path / "tito.pt"), "--equilibrium", str(out),
                 "--steps", "5", "--out", str(tmp_path / "z"), "--no-progress"]) == 2
    assert "must come from an exact 'sample' run" in capsys.readouterr().err
    assert main(["sample", str(_ala_pdb()), "--model", "ace-ala-nme", "--steps", "100", "--out",
                 str(tmp_path / "exact"), "--no-progress"]) == 0
    assert main(["tito", str(_ala_pdb()), "--model", str(tmp_path / "tito.pt"), "--equilibrium",
                 str(tmp_path / "exact"), "--steps", "5", "--out", str(tmp_path / "w"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "w" / "summary.json").read_text())
    assert summary["equilibrium"]["source"] == str(tmp_path / "exact")
    # An exact run of another peptide is refused, though it has as many residues.
    import shutil

    shutil.copytree(tmp_path / "exact", tmp_path / "other")
    other = json.loads((tmp_path / "other" / "summary.json").read_text())
    other["sequence"] = "G"
    (tmp_path / "other" / "summary.json").write_text(json.dumps(other))
    capsys.readouterr()
    assert main(["tito", str(_ala_pdb()), "--model", str(tmp_path / "tito.pt"), "--equilibrium",
                 str(tmp_path / "other"), "--steps", "5", "--out", str(tmp_path / "v"), "--no-progress"]) == 2
    assert "sampled another peptide (G, ACE/NME caps" in capsys.readouterr().err
    assert not (tmp_path / "v").exists()


def test_uncertain_equilibrium_populations_are_reported():
    from openmm_timewarp.errors import UncertainPopulationsWarning
    from openmm_timewarp.run.tito import POPULATION_TOLERANCE, _check_uncertainty, largest_population_error

    nan = float("nan")
    rows = [{"beta": [0.6, 0.01], "alpha_R": [0.38, 0.012], "alpha_L": [0.02, 0.004], "PII_L": [0.0, nan],
             "phi>0": [0.02, 0.5]},
            {"beta": [0.3, 0.02], "alpha_R": [0.65, 0.021], "alpha_L": [0.05, 0.01], "PII_L": [0.0, nan],
             "phi>0": [0.05, 0.5]}]
    # phi>0 is not a basin the TITO chain keeps; a basin never entered has no error.
    assert largest_population_error(rows) == dict(standard_error=0.021, residue=2, basin="alpha_R", population=0.65)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _check_uncertainty(rows, "a test")
    rows[0]["beta"][1] = POPULATION_TOLERANCE + 0.001
    with pytest.warns(UncertainPopulationsWarning, match="residue 1's beta population 0.600 has a standard error"):
        _check_uncertainty(rows, "a test")


def test_an_equilibrium_run_without_frames_is_refused_in_one_line(monkeypatch):
    import importlib

    tito_module = importlib.import_module("openmm_timewarp.run.tito")  # the package exports the function tito
    summary = {"command": "sample", "mode": "metropolis-hastings", "temperature_K": 310.0, "sequence": "A",
               "termini": "ACE/NME caps", "n_atoms": 22, "n_frames": 0, "populations": []}
    monkeypatch.setattr(tito_module, "load_run", lambda folder: (summary, None))
    with pytest.raises(InputError, match="the equilibrium run recorded no frames"):
        tito_module.equilibrium_populations(_ala_pdb(), "a-folder", 0, 1, 310.0, False, False, "Reference", 1, False)


def _ala_pdb():
    from pathlib import Path

    return Path(__file__).resolve().parents[2] / "examples" / "data" / "ace-ala-nme.pdb"


def test_jump_basins_are_the_analysis_basins():
    from openmm_timewarp.analysis import assign_basins
    from openmm_timewarp.proposals.tito_torsion import basins_of

    angles = torch.tensor(np.random.default_rng(3).uniform(-math.pi, math.pi, (5000, 1, 3)))
    expected = assign_basins(np.degrees(angles[:, 0, 0].numpy()), np.degrees(angles[:, 0, 1].numpy()))
    assert np.array_equal(basins_of(angles)[:, 0].numpy(), expected)
