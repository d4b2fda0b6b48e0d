"""Tests of openmm_timewarp.data: a tiny generation run, its format, resume and refusal."""

import json
import os

import numpy as np
import pytest

from openmm_timewarp.analysis import backbone_dihedrals
from openmm_timewarp.data import load_pairs, pairs_from_frames, read_shard
from openmm_timewarp.data.generate import START_CENTERS, Settings, generate

TINY = dict(sequence="A", lag_ps=0.2, frame_interval_ps=0.1, trajectory_ps=1.0, restraint_ps=2.0,
            equilibrate_ps=0.1, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("data"))
    # 9 pairs per trajectory: 7 trajectories cover every start centre once.
    manifest = generate(Settings(**TINY), out, n_pairs=60, progress=False)
    return out, manifest


def test_shapes_and_metadata(dataset):
    out, manifest = dataset
    assert manifest["n_trajectories"] == 7 and manifest["n_pairs"] == 63
    with open(os.path.join(out, "manifest.json")) as f:
        assert json.load(f)["n_pairs"] == 63
    shard = read_shard(os.path.join(out, "traj_00000.npz"))
    assert shard["x_t"].shape == shard["x_tau"].shape == (9, 22, 3)
    assert shard["x_t"].dtype == np.float32 and shard["frames"].shape == (11, 22, 3)
    assert list(shard["elements"]).count("H") == 12
    meta = shard["metadata"]
    for key in ("sequence", "forcefield", "solvent", "temperature_K", "lag_ps", "timestep_fs",
                "friction_per_ps", "hydrogen_mass_amu", "seed", "trajectory_seed", "code_version"):
        assert key in meta
    assert meta["temperature_K"] == 310.0 and meta["lag_ps"] == 0.2
    # Pairs are frames two intervals (= lag) apart.
    np.testing.assert_array_equal(shard["x_tau"][0], shard["frames"][2])
    x_t, x_tau = pairs_from_frames(shard["frames"], 2)
    np.testing.assert_array_equal(x_tau, shard["x_tau"])
    x_t, x_tau, elements, _ = load_pairs(out)
    assert x_t.shape == (63, 22, 3) and len(elements) == 22
    assert np.all(np.abs(x_tau - x_t).max(axis=(1, 2)) < 0.5)  # sane moves, nm


def test_starts_cover_every_basin(dataset):
    out, _ = dataset
    from openmm import app
    import io

    started = []
    for i in range(len(START_CENTERS)):
        shard = read_shard(os.path.join(out, f"traj_{i:05d}.npz"))
        name = shard["metadata"]["start"][0]["basin"]
        phi0, psi0 = START_CENTERS[name]
        started.append(name)
        top = app.PDBFile(io.StringIO(shard["metadata"]["topology_pdb"])).topology
        phi, psi = backbone_dihedrals(shard["frames"][:1], top)
        # 0.1 ps after releasing the restraint the molecule is still nearer its centre than any
        # other (C7ax, a shoulder of alpha_L, relaxes fastest).
        def distance(centre):
            return np.hypot((phi[0, 0] - centre[0] + 180) % 360 - 180, (psi[0, 0] - centre[1] + 180) % 360 - 180)

        assert distance((phi0, psi0)) < 60
        assert min(START_CENTERS, key=lambda n: distance(START_CENTERS[n])) == name
    assert sorted(started) == sorted(START_CENTERS)  # as many trajectories as basins: each basin once


def test_resume_skips_finished_and_refuses_other_settings(dataset):
    out, _ = dataset
    path = os.path.join(out, "traj_00002.npz")
    mtime = os.path.getmtime(path)
    os.remove(os.path.join(out, "traj_00005.npz"))
    manifest = generate(Settings(**TINY), out, n_pairs=60, progress=False)
    assert manifest["n_trajectories"] == 7 and os.path.getmtime(path) == mtime
    with pytest.raises(ValueError, match="other settings"):
        generate(Settings(**dict(TINY, seed=4)), out, n_pairs=60, progress=False)


def test_start_basins_narrow_the_starts_and_old_folders_still_resume(dataset):
    from openmm_timewarp import systems
    from openmm_timewarp.data.generate import start_targets

    topology, _ = systems.peptide_from_sequence("APG")
    phi_positive = ["alpha_L", "C7ax", "PII_L"]
    for trajectory in range(10):
        names = [n for n, _, _ in start_targets(topology, trajectory, np.random.default_rng(trajectory),
                                                phi_positive)]
        # Proline cannot turn phi: it takes a phi < 0 centre; the others only the chosen centres.
        assert names[0] in phi_positive and names[2] in phi_positive
        assert START_CENTERS[names[1]][0] < 0
    with pytest.raises(ValueError, match="unknown basin alpha_X"):
        Settings(**dict(TINY, start_basins=["alpha_L", "alpha_X"]))
    # A folder written before the setting existed (no start_basins in its manifest) still resumes.
    out, _ = dataset
    path = os.path.join(out, "manifest.json")
    with open(path) as f:
        manifest = json.load(f)
    del manifest["settings"]["start_basins"]
    with open(path, "w") as f:
        json.dump(manifest, f)
    assert generate(Settings(**TINY), out, n_pairs=60, progress=False)["n_trajectories"] == 7
    with pytest.raises(ValueError, match="other settings"):
        generate(Settings(**dict(TINY, start_basins=["alpha_L"])), out, n_pairs=60, progress=False)


def test_starts_are_turned_to_their_targets_before_the_restraints_pull():
    """The torsions are set by rigid turns (bonds and chirality kept), so the restrained
    minimization has nothing far to pull; proline's phi, in a ring, keeps its value."""
    from openmm import unit

    from openmm_timewarp import systems
    from openmm_timewarp.data.generate import turn_to_targets

    topology, positions = systems.peptide_from_sequence("APG")
    x = np.asarray(positions.value_in_unit(unit.nanometer))
    targets = [(n, *START_CENTERS[n]) for n in ("PII_L", "alpha_R", "alpha_L")]
    y = turn_to_targets(topology, x, targets)
    phi0, _ = backbone_dihedrals(x[None], topology)
    phi, psi = backbone_dihedrals(y[None], topology)
    for r, (_, target_phi, target_psi) in enumerate(targets):
        assert abs((psi[0, r] - target_psi + 180) % 360 - 180) < 1e-3
        expected = phi0[0, r] if r == 1 else target_phi  # residue 2 is proline
        assert abs((phi[0, r] - expected + 180) % 360 - 180) < 1e-3
    for a, b in topology.bonds():
        assert abs(np.linalg.norm(y[a.index] - y[b.index]) - np.linalg.norm(x[a.index] - x[b.index])) < 1e-9
    assert not systems.inverted_centers(y, systems.chiral_centers(topology)).any()


def test_unstable_frames_are_refused_with_their_place():
    from openmm_timewarp.data.generate import check_frame

    first = np.zeros((3, 3))
    first[1, 0] = 0.15
    check_frame(first + 0.01, first, "trajectory 0")
    with pytest.raises(RuntimeError, match="trajectory 2, frame 7: non-finite"):
        check_frame(np.full((3, 3), np.nan), first, "trajectory 2, frame 7")
    exploded = first.copy()
    exploded[2] = [-5e12, 0, 0]
    with pytest.raises(RuntimeError, match="spread"):
        check_frame(exploded, first, "trajectory 3")


def test_a_trajectory_that_blows_up_is_rerun_with_fresh_seeds(tmp_path, monkeypatch):
    from openmm_timewarp.data import generate as gen

    real, seeds = gen._sample_frames, []

    def first_attempt_explodes(settings, topology, positions, trajectory, seed):
        seeds.append(seed)
        if len(seeds) == 1:
            raise gen.UnstableMD(f"MD became unstable in trajectory {trajectory} (seed {seed}), frame 3")
        return real(settings, topology, positions, trajectory, seed)

    monkeypatch.setattr(gen, "_sample_frames", first_attempt_explodes)
    generate(Settings(**TINY), str(tmp_path), n_pairs=9, progress=False)
    assert seeds == [300001, 350001]  # seed 3, trajectory 0: attempt k adds k * 50000
    metadata = read_shard(os.path.join(tmp_path, "traj_00000.npz"))["metadata"]
    assert metadata["attempt"] == 1 and metadata["trajectory_seed"] == 350001

    def always_explodes(settings, topology, positions, trajectory, seed):
        raise gen.UnstableMD(f"MD became unstable (seed {seed})")

    monkeypatch.setattr(gen, "_sample_frames", always_explodes)
    with pytest.raises(gen.UnstableMD, match="unstable in all 3 attempts: .*seed 300002.*seed 400002"):
        generate(Settings(**TINY), str(tmp_path), n_pairs=18, progress=False)


def test_chirality_term_and_d_frames():
    """The restrained starts' chirality term costs nothing for the L peptide and a lot for its mirror
    image (D); a D frame is refused by name, so a start that inverts anyway is retried."""
    import openmm
    from openmm import unit

    from openmm_timewarp import systems
    from openmm_timewarp.data import generate as gen

    topology, positions = systems.peptide_from_sequence("AA", seed=1)
    centers = systems.chiral_centers(topology)
    x = np.asarray(positions.value_in_unit(unit.nanometer))
    mirrored = x * np.array([-1.0, 1.0, 1.0])  # the mirror image: every centre D
    assert systems.inverted_centers(np.stack([x, mirrored]), centers).tolist() == [[False, False], [True, True]]
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    system.addForce(gen.chirality_restraint(topology))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    energies = []
    for frame in (x, mirrored):
        context.setPositions(frame)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert energies[0] == 0.0 and energies[1] > 0.25 * gen.CHIRALITY_K
    with pytest.raises(gen.UnstableMD, match="inverted the C-alpha of chiral centre\\(s\\) \\[0, 1\\] in trajectory 5"):
        gen.check_frame(mirrored, x, "trajectory 5", centers=centers)
