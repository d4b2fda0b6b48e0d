"""Tests of the Timewarp flow: exact inverse and density, symmetries, padding, training."""
import json
import math

import numpy as np
import pytest
import torch

from kernel_cli import run_cli
from openmm_timewarp.proposals.coupling import masked_mean
from openmm_timewarp.proposals.flow import TimewarpFlow, base_log_prob, draw_base, standard_normal_log_prob
from openmm_timewarp.training.dataset import PairSet, align_rotation, load_pairs, random_rotations, rotate_pairs
from openmm_timewarp.training.losses import acceptance_loss, distance_jump, nll_loss
from openmm_timewarp.training.objectives import validation_nll
from openmm_timewarp.training.objectives import element_log_scales


def train(argv):
    """``openmm-timewarp train ARGV``, in-process."""
    assert run_cli(["train"] + list(argv)) == 0

ELEMENTS = ["H", "C", "N", "O", "S"]
# Tiny tensors: one thread avoids OpenMP spin-waiting on a busy shared machine (10-30x slower otherwise).
torch.set_num_threads(1)


def perturbed_flow(seed: int = 0, scale: float = 0.3, dtype=torch.float64, **kwargs) -> TimewarpFlow:
    """A small flow whose couplings are far from the identity (the output heads start at zero)."""
    torch.manual_seed(seed)
    flow = TimewarpFlow(ELEMENTS, hidden=16, num_couplings=2, embed_dim=8, **kwargs)
    with torch.no_grad():
        for layer in flow.layers:
            for net in (layer.position_net, layer.auxiliary_net):
                net.head.weight.normal_(0.0, scale)
                net.head.bias.normal_(0.0, scale)
        flow.element_log_scale.normal_(-2.0, 0.3)
    return flow.to(dtype)


def molecule(n: int, seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, n, 3, generator=g, dtype=dtype) * 0.3
    types = torch.randint(0, len(ELEMENTS), (1, n), generator=g)
    return x, types, torch.ones(1, n, dtype=dtype)


def test_generate_then_normalise_recovers_base_variables():
    flow = perturbed_flow()
    x, types, mask = molecule(7)
    context, weights = flow.context(x, types, mask)
    z_x, z_v = draw_base(5, 7, mask.expand(5, 7), torch.float64, torch.device("cpu"))
    d, w, log_det = flow.generate(z_x, z_v, context, weights, types.expand(5, 7), mask.expand(5, 7))
    assert masked_mean(d, mask.expand(5, 7)).abs().max() < 1e-12, "displacement left the zero-mean subspace"
    z_x2, z_v2, log_det2 = flow.normalise(d, w, context, weights, types.expand(5, 7), mask.expand(5, 7))
    assert torch.allclose(z_x2, z_x, atol=1e-5) and torch.allclose(z_v2, z_v, atol=1e-5)
    assert torch.allclose(log_det, log_det2, atol=1e-8)
    assert log_det.abs().min() > 1.0, "the test flow should not be volume preserving"


def test_log_det_matches_autograd_jacobian_on_the_zero_mean_subspace():
    n = 3
    flow = perturbed_flow(scale=0.5)
    x, types, mask = molecule(n)
    context, weights = flow.context(x, types, mask)
    # Orthonormal basis of the zero-mean vectors of one axis: columns of q (n, n - 1).
    q = torch.linalg.qr(torch.eye(n, dtype=torch.float64) - 1.0 / n)[0][:, : n - 1]
    q = q - q.mean(0, keepdim=True)
    q = torch.linalg.qr(q)[0]

    def generative_map(coords):
        a, z_v = coords[: 3 * (n - 1)].view(n - 1, 3), coords[3 * (n - 1):].view(1, n, 3)
        d, w, _ = flow.generate((q @ a)[None], z_v, context, weights, types, mask)
        return torch.cat([(q.T @ d[0]).flatten(), w.flatten()])

    g = torch.Generator().manual_seed(3)
    coords = torch.randn(3 * (n - 1) + 3 * n, generator=g, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(generative_map, coords, vectorize=True)
    expected = torch.linalg.slogdet(jacobian)[1]
    a, z_v = coords[: 3 * (n - 1)].view(n - 1, 3), coords[3 * (n - 1):].view(1, n, 3)
    _, _, log_det = flow.generate((q @ a)[None], z_v, context, weights, types, mask)
    assert log_det.item() == pytest.approx(expected.item(), abs=1e-8)


def test_density_integrates_to_one():
    """Importance sampling of a known normalised density r under q: E_q[r / q] = 1."""
    torch.manual_seed(0)
    flow = perturbed_flow(scale=0.05)
    with torch.no_grad():
        flow.element_log_scale.fill_(math.log(0.2))
    x, types, mask = molecule(2)
    count = 20000
    xb, tb, mb = x.expand(count, -1, -1), types.expand(count, -1), mask.expand(count, -1)
    with torch.no_grad():
        y, w, log_q = flow.sample(xb, tb, mb)
        d = y - xb
        # r: normals a little narrower than q around q's mean, so that r / q stays bounded: isotropic
        # on V for the displacement (per-coordinate std sigma * sqrt(1 - 1/n)), diagonal for the auxiliaries
        mu_d, sigma_d = d.mean(0), 0.8 * d.std(0).min() * math.sqrt(2.0)
        mu_w, sigma_w = w.mean(0), 0.8 * w.std(0)
        log_r = (base_log_prob((d - mu_d) / sigma_d, (w - mu_w) / sigma_w, mb)
                 - 3 * (2 - 1) * torch.log(sigma_d) - torch.log(sigma_w).sum())
        ratio = torch.exp(log_r - log_q)
    mean, err = ratio.mean().item(), ratio.std().item() / math.sqrt(count)
    assert err < 0.03
    assert abs(mean - 1.0) < 4 * err + 0.01, f"E_q[r/q] = {mean} +- {err}"


def test_propose_log_ratio_equals_densities_of_both_moves():
    flow = perturbed_flow().float()
    x, types, _ = molecule(6, dtype=torch.float64)
    torch.manual_seed(11)
    y, log_ratio = flow.propose(x[0], types[0], 4)
    # Replay the draws of propose: base noise of the forward move, then the current auxiliaries v.
    torch.manual_seed(11)
    mask = torch.ones(4, 6)
    z_x, z_v = draw_base(4, 6, mask, torch.float32, torch.device("cpu"))
    v = torch.randn(4, 6, 3)
    context, weights = flow.context(x.float() - x.float().mean(1, keepdim=True), types, mask[:1])
    _, w, _ = flow.generate(z_x, z_v, context, weights, types.expand(4, 6), mask)
    with torch.no_grad():
        log_forward = flow.log_prob(x.float().expand(4, -1, -1), y.float(), w, types.expand(4, 6), mask)
        log_reverse = flow.log_prob(y.float(), x.float().expand(4, -1, -1), v, types.expand(4, 6), mask)
    expected = standard_normal_log_prob(w, mask) + log_reverse - standard_normal_log_prob(v, mask) - log_forward
    assert log_ratio.dtype == torch.float64 and y.dtype == torch.float64
    assert torch.allclose(log_ratio, expected, atol=2e-3), (log_ratio, expected)
    assert log_ratio.abs().max() > 0.1, "the test flow should not be symmetric"
    assert torch.allclose(y.mean(1), x.mean(1).expand(4, 3), atol=1e-6), "centre of mass must be restored"


def test_identity_flow_gives_symmetric_proposals():
    flow = TimewarpFlow(ELEMENTS, hidden=16, num_couplings=2, embed_dim=8)
    x, types, _ = molecule(5)
    _, log_ratio = flow.propose(x[0], types[0], 8)
    assert log_ratio.abs().max() < 1e-4


def test_permuting_atoms_permutes_outputs():
    flow = perturbed_flow()
    x, types, mask = molecule(6)
    x_tau = x + 0.05 * torch.randn_like(x)
    w = torch.randn_like(x)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    log_p = flow.log_prob(x, x_tau, w, types, mask)
    log_p_perm = flow.log_prob(x[:, perm], x_tau[:, perm], w[:, perm], types[:, perm], mask)
    assert torch.allclose(log_p, log_p_perm, atol=1e-10)
    z_x, z_v = draw_base(1, 6, mask, torch.float64, torch.device("cpu"))
    d, w1, _ = flow.generate(z_x, z_v, *flow.context(x, types, mask), types, mask)
    d_perm, w_perm, _ = flow.generate(z_x[:, perm], z_v[:, perm], *flow.context(x[:, perm], types[:, perm], mask),
                                      types[:, perm], mask)
    assert torch.allclose(d[:, perm], d_perm, atol=1e-10) and torch.allclose(w1[:, perm], w_perm, atol=1e-10)


def test_padding_does_not_change_a_molecule():
    flow = perturbed_flow()
    small, small_types, small_mask = molecule(4, seed=2)
    big, big_types, big_mask = molecule(6, seed=3)
    small_tau, big_tau = small + 0.05, big - 0.03 * big
    w_small, w_big = torch.randn_like(small), torch.randn_like(big)
    pad = lambda t: torch.cat([t, torch.full_like(t[:, :2], 7.0)], 1)  # padding holds garbage on purpose
    x = torch.cat([pad(small), big])
    x_tau = torch.cat([pad(small_tau), big_tau])
    w = torch.cat([pad(w_small), w_big])
    types = torch.cat([torch.cat([small_types, torch.zeros_like(small_types[:, :2])], 1), big_types])
    mask = torch.cat([torch.cat([small_mask, torch.zeros_like(small_mask[:, :2])], 1), big_mask])
    batched = flow.log_prob(x, x_tau, w, types, mask)
    assert batched[0].item() == pytest.approx(flow.log_prob(small, small_tau, w_small, small_types, small_mask).item(), abs=1e-9)
    assert batched[1].item() == pytest.approx(flow.log_prob(big, big_tau, w_big, big_types, big_mask).item(), abs=1e-9)
    torch.manual_seed(5)
    y, _, log_q = flow.sample(x, types, mask)
    assert torch.all(y[0, 4:] == 7.0) and torch.isfinite(log_q).all()


def test_random_rotations_are_proper_and_rotate_pairs_rigidly():
    rotations = random_rotations(50, torch.Generator().manual_seed(0))
    eye = torch.eye(3).expand(50, 3, 3)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(50), atol=1e-5)
    assert rotations[:, 0, 0].std() > 0.3, "rotations should be spread over SO(3)"
    x, _, mask = molecule(5, dtype=torch.float32)
    x_tau = x + 0.1 * torch.randn_like(x)
    xr, xr_tau = rotate_pairs(x.expand(50, -1, -1), x_tau.expand(50, -1, -1), mask.expand(50, -1), rotations)
    dist = lambda a: torch.cdist(a, a)
    assert torch.allclose(dist(xr), dist(x).expand(50, -1, -1), atol=1e-5)
    assert torch.allclose((xr_tau - xr).norm(dim=-1), (x_tau - x).norm(dim=-1).expand(50, -1), atol=1e-5)


def test_alignment_undoes_a_rigid_rotation_and_never_reflects():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 6, 3))
    rotations = random_rotations(8, torch.Generator().manual_seed(1)).double().numpy()
    centred = x - x.mean(1, keepdims=True)
    turned = np.einsum("pni,pji->pnj", centred, rotations) + 5.0
    assert np.allclose(align_rotation(turned, x), centred + 5.0, atol=1e-6)
    mirrored = centred * np.array([1.0, 1.0, -1.0])
    aligned = align_rotation(mirrored, x)
    assert not np.allclose(aligned, centred, atol=1e-3), "a reflection is not a rotation"
    assert np.allclose(np.linalg.norm(aligned[:, :, None] - aligned[:, None], axis=-1),
                       np.linalg.norm(mirrored[:, :, None] - mirrored[:, None], axis=-1), atol=1e-9)


def write_synthetic_shards(directory, n_pairs=512, seed=0):
    """Pairs of two small rigid-ish 'molecules' (4 and 5 atoms) with a lag longer than their relaxation.

    x(t) and x(t+tau) are independent thermal fluctuations (width 0.02 nm) about a reference shape, so
    the best proposal moves each atom back towards its place in the shape that x(t) reveals; the
    model has to find that place from the geometry, in any orientation.
    """
    rng = np.random.default_rng(seed)
    molecules = {"AB": ["C", "H", "H", "O"], "XYZ": ["N", "H", "C", "O", "S"]}
    directory.mkdir(parents=True, exist_ok=True)
    for name, symbols in molecules.items():
        reference = rng.normal(0.0, 0.15, (len(symbols), 3))
        x_t, x_tau = (reference + rng.normal(0.0, 0.02, (n_pairs, len(symbols), 3)) for _ in range(2))
        meta = {"sequence": name, "temperature_K": 310.0, "lag_ps": 1.0}
        np.savez(directory / f"{name}.npz", x_t=x_t.astype(np.float32), x_tau=x_tau.astype(np.float32),
                 elements=np.array(symbols), metadata=json.dumps(meta))
    (directory / "manifest.json").write_text(json.dumps({"shards": [f"{s}.npz" for s in molecules]}))


def test_short_training_decreases_validation_loss_and_resumes(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    write_synthetic_shards(data)
    argv = ["--data", str(data), "--out", str(out), "--epochs", "1", "--seed", "0", "--batch-size", "32",
            "--hidden", "16", "--couplings", "2", "--embed-dim", "8", "--lr", "3e-3", "--no-align",
            "--architecture", "cartesian"]
    splits = load_pairs(data, ELEMENTS, 0.1, align=False)
    torch.manual_seed(0)
    initial = TimewarpFlow(ELEMENTS, hidden=16, num_couplings=2, embed_dim=8)
    with torch.no_grad():
        initial.element_log_scale.copy_(element_log_scales(splits["train"], len(ELEMENTS)))
    before = validation_nll(lambda batch: nll_loss(initial, batch), splits["val"], 128, torch.device("cpu"), 0)

    train(argv)
    argv[argv.index("--epochs") + 1] = "2"
    train(argv + ["--resume"])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[-1]["val_nll"] < before - 0.02, (before, records)
    checkpoint = torch.load(out / "best.pt", weights_only=False)
    assert checkpoint["info"]["sequences"] == ["AB", "XYZ"] and checkpoint["info"]["lag_ps"] == 1.0


def test_acceptance_loss_gradient_improves_acceptance():
    """On a harmonic target, steps on the acceptance loss raise the mean acceptance probability."""
    torch.manual_seed(0)
    n = 4
    centre = torch.randn(1, n, 3) * 0.2
    sigma = 0.05

    def reduced_energy(positions):
        return ((positions - centre) ** 2).sum((1, 2)) / (2 * sigma**2)

    flow = TimewarpFlow(ELEMENTS, hidden=16, num_couplings=2, embed_dim=8)
    with torch.no_grad():
        flow.element_log_scale.fill_(math.log(0.2))  # far too wide proposals: low acceptance
    x = centre + sigma * torch.randn(64, n, 3)
    batch = {"x_t": x, "atom_types": torch.ones(64, n, dtype=torch.long), "mask": torch.ones(64, n),
             "molecule": torch.zeros(64, dtype=torch.long)}
    optimizer = torch.optim.Adam(flow.parameters(), lr=3e-2)
    accepts = []
    for _ in range(15):
        loss, accept = acceptance_loss(flow, batch, {0: reduced_energy})
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accepts.append(accept.item())
    assert np.mean(accepts[-3:]) > 3 * np.mean(accepts[:3]) and np.mean(accepts[-3:]) > 0.05, accepts
    assert torch.isfinite(nll_loss(flow, dict(batch, x_tau=x))).all()


def test_distance_jump_ignores_rigid_motion_and_padding():
    x, _, mask = molecule(5, dtype=torch.float32)
    rotation = random_rotations(1, torch.Generator().manual_seed(2))
    moved = x @ rotation.transpose(1, 2) + 0.7
    assert distance_jump(x, moved, mask).item() < 1e-10
    stretched = x * 1.1
    expected = ((torch.cdist(x, x) * 0.1) ** 2).sum() / 20
    assert distance_jump(x, stretched, mask).item() == pytest.approx(expected.item(), rel=1e-4)
    padded = lambda t, fill: torch.cat([t, torch.full_like(t[:, :2], fill)], 1)
    padded_mask = torch.cat([mask, torch.zeros_like(mask[:, :2])], 1)
    assert distance_jump(padded(x, 3.0), padded(stretched, -9.0), padded_mask).item() == pytest.approx(
        expected.item(), rel=1e-4)


def write_triatomic_data(directory, n_pairs=256, seed=0):
    """A flexible three-atom molecule as an OpenMM System (XML) with pairs near its minimum."""
    import openmm

    system = openmm.System()
    for mass in (16.0, 1.0, 1.0):
        system.addParticle(mass)
    bonds = openmm.HarmonicBondForce()
    bonds.addBond(0, 1, 0.1, 4e5)
    bonds.addBond(0, 2, 0.1, 4e5)
    angle = openmm.HarmonicAngleForce()
    angle.addAngle(1, 0, 2, 1.9, 400.0)
    system.addForce(bonds)
    system.addForce(angle)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "system.xml").write_text(openmm.XmlSerializer.serialize(system))
    rng = np.random.default_rng(seed)
    minimum = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.1 * math.cos(1.9), 0.1 * math.sin(1.9), 0.0]])
    x_t, x_tau = (minimum + rng.normal(0.0, 0.003, (n_pairs, 3, 3)) for _ in range(2))
    meta = {"sequence": "HOH", "temperature_K": 310.0, "lag_ps": 0.1, "system_xml": "system.xml"}
    np.savez(directory / "traj_00000.npz", x_t=x_t.astype(np.float32), x_tau=x_tau.astype(np.float32),
             elements=np.array(["O", "H", "H"]), metadata=json.dumps(meta))
    return system


def test_openmm_reduced_energy_gradient_matches_finite_differences(tmp_path):
    from openmm_timewarp.training.energies import OpenMMReducedEnergy

    system = write_triatomic_data(tmp_path)
    energy = OpenMMReducedEnergy(system, 310.0)
    x = torch.tensor([[[0.0, 0.0, 0.0], [0.105, 0.01, 0.0], [-0.03, 0.09, 0.01]]], dtype=torch.float64,
                     requires_grad=True)
    value = energy(x)
    value.sum().backward()
    h = 1e-6
    for atom, axis in [(1, 0), (2, 1), (0, 2)]:
        shifted = x.detach().clone()
        shifted[0, atom, axis] += h
        numeric = (energy(shifted) - value.detach()) / h
        assert x.grad[0, atom, axis].item() == pytest.approx(numeric.item(), rel=1e-3, abs=1e-2)


def test_training_cli_runs_acceptance_fine_tuning_with_openmm(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    write_triatomic_data(data)
    train(["--data", str(data), "--out", str(out), "--epochs", "1", "--acceptance-epochs", "1",
          "--batch-size", "32", "--hidden", "16", "--couplings", "2", "--embed-dim", "8",
          "--architecture", "cartesian"])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["likelihood", "acceptance"]
    assert all(0.0 <= r["val_p_acc"] <= 1.0 for r in records) and math.isfinite(records[-1]["val_nll"])
    assert (out / "best.pt").exists() and (out / "finetuned.pt").exists()


def test_internal_architecture_trains_resumes_and_reports_acceptance(tmp_path):
    data, out = tmp_path / "data", tmp_path / "run"
    write_triatomic_data(data)
    argv = ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "32", "--hidden", "16",
            "--couplings", "2", "--embed-dim", "4", "--lr", "3e-3", "--seed", "0"]
    train(argv)
    argv[argv.index("--epochs") + 1] = "3"
    train(argv + ["--resume"])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert records[-1]["val_nll"] < records[0]["val_nll"], records
    assert all(0.0 <= r["val_p_acc"] <= 1.0 for r in records)
    checkpoint = torch.load(out / "best.pt", weights_only=False)
    assert checkpoint["architecture"] == "internal" and checkpoint["info"]["time_reversal"]
    # 90% of 256 pairs for training, doubled by the time-reversed copies
    assert checkpoint["info"]["train_pairs"] == 2 * 230
    # acceptance fine-tuning of the torsion kernel continues from the same run
    argv[argv.index("--epochs") + 1] = "3"
    train(argv + ["--resume", "--acceptance-epochs", "1", "--acceptance-kernel", "torsion"])
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert records[-1]["phase"] == "acceptance" and 0.0 <= records[-1]["val_p_acc"] <= 1.0
    assert (out / "finetuned.pt").exists()


def test_pairs_load_from_several_folders(tmp_path):
    write_synthetic_shards(tmp_path / "one")
    write_synthetic_shards(tmp_path / "two")
    single = load_pairs(tmp_path / "one", ELEMENTS, 0.1, align=False)
    both = load_pairs([tmp_path / "one", tmp_path / "two"], ELEMENTS, 0.1, align=False)
    assert len(both["train"]) == 2 * len(single["train"]) and len(both["val"]) == 2 * len(single["val"])
    assert len(both["train"].molecules) == 2 * len(single["train"].molecules)
    with pytest.raises(FileNotFoundError, match="no \\*.npz pair shards in .*empty"):
        (tmp_path / "empty").mkdir()
        load_pairs([tmp_path / "one", tmp_path / "empty"], ELEMENTS, 0.1, align=False)


def test_blown_up_pairs_are_dropped_with_a_warning(tmp_path):
    write_triatomic_data(tmp_path)
    with np.load(tmp_path / "traj_00000.npz") as shard:
        x_t, x_tau, elements, metadata = shard["x_t"], shard["x_tau"], shard["elements"], shard["metadata"]
    x_tau[5] *= 1e4  # atoms flying apart
    x_t[9, 1] = np.nan
    np.savez(tmp_path / "traj_00000.npz", x_t=x_t, x_tau=x_tau, elements=elements, metadata=metadata)
    with pytest.warns(UserWarning, match="traj_00000.npz: 2 of 256 pairs dropped"):
        splits = load_pairs(tmp_path, ELEMENTS, 0.0)
    assert len(splits["train"]) == 254 and torch.isfinite(splits["train"].x_tau).all()


def test_batches_of_one_group_each_cover_every_group():
    molecule = torch.repeat_interleave(torch.arange(3), torch.tensor([70, 40, 100]))
    pairs = PairSet(torch.zeros(210, 3, 3), torch.zeros(210, 3, 3), torch.zeros(210, 3, dtype=torch.int64),
                    torch.ones(210, 3), molecule, [{}, {}, {}])
    groups = torch.tensor([0, 0, 2])[pairs.molecule]  # molecules 0 and 1 are one peptide
    batches = pairs.batch_indices(32, torch.Generator().manual_seed(0), groups=groups)
    assert len(batches) == 3 + 3 and all(len(set(groups[b].tolist())) == 1 for b in batches)
    assert {int(groups[b[0]]) for b in batches} == {0, 2}
    assert [b.tolist() for b in pairs.batch_indices(32, torch.Generator().manual_seed(0), skip=4, groups=groups)] == \
        [b.tolist() for b in batches[4:]]


def test_internal_training_across_folders_gets_energies_from_each(tmp_path):
    write_triatomic_data(tmp_path / "one")
    write_triatomic_data(tmp_path / "two", seed=1)
    out = tmp_path / "run"
    train(["--data", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(out), "--epochs", "1",
          "--batch-size", "32", "--hidden", "8", "--couplings", "1", "--embed-dim", "4"])
    checkpoint = torch.load(out / "best.pt", weights_only=False)
    assert checkpoint["info"]["data"] == [str(tmp_path / "one"), str(tmp_path / "two")]
    assert checkpoint["info"]["train_pairs"] == 2 * 2 * 230
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert math.isfinite(record["val_nll"]) and 0.0 <= record["val_p_acc"] <= 1.0
