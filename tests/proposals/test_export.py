"""Tests of the TorchScript export: contract version 1 and agreement with the Python flow."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import harmonic_system, ROOT
from kernel_cli import run_cli
from openmm_timewarp.errors import InputError
from openmm_timewarp.proposals.export import export_model, load_checkpoint, save_checkpoint
from openmm_timewarp.proposals.flow import TimewarpFlow

ELEMENTS = ["H", "C", "N", "O", "S"]
CHECK_MODEL = Path(ROOT).parent / "shared" / "tools" / "check_model.py"
torch.set_num_threads(1)  # tiny tensors; spare a busy machine's cores
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


@pytest.fixture(scope="module")
def trained_like_flow() -> TimewarpFlow:
    """A flow with non-trivial couplings, as after training."""
    torch.manual_seed(0)
    flow = TimewarpFlow(ELEMENTS, hidden=16, num_couplings=2, embed_dim=8)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
        flow.element_log_scale.fill_(-3.0)
    return flow.eval()


@pytest.fixture(scope="module")
def exported(trained_like_flow, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model.pt"
    metadata = {"sequences": ["A"], "seed": 3, "command": "test"}
    export_model(trained_like_flow, out, lag_ps=0.5, temperature_K=310.0, metadata=metadata)
    return out


def alanine_like(n: int = 22):
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.3 + 2.0, torch.randint(0, 4, (n,), generator=g)


def test_contract_methods(exported):
    model = torch.jit.load(str(exported))
    assert model.contract_version() == 1
    assert model.elements() == ELEMENTS
    assert model.lag_time_ps() == 0.5 and model.temperature_kelvin() == 310.0
    assert model.has_density() is True
    metadata = json.loads(model.metadata_json())
    assert metadata["sequences"] == ["A"] and metadata["seed"] == 3
    assert metadata["kernel"]["kind"] == "cartesian" and metadata["kernel"]["hidden"] == 16


def test_exported_module_agrees_with_python_flow(exported, trained_like_flow):
    model = torch.jit.load(str(exported))
    x, types = alanine_like()
    torch.manual_seed(123)
    y_script, log_ratio_script = model(x, types, 16)
    torch.manual_seed(123)
    with torch.no_grad():
        y_python, log_ratio_python = trained_like_flow.propose(x, types, 16)
    assert y_script.dtype == torch.float64 and log_ratio_script.dtype == torch.float64
    assert y_script.shape == (16, 22, 3) and log_ratio_script.shape == (16,)
    assert torch.allclose(y_script, y_python, atol=1e-6)
    assert torch.allclose(log_ratio_script, log_ratio_python, atol=1e-4)
    assert log_ratio_script.std() > 0.1, "a trained-like flow has non-trivial log ratios"
    assert torch.allclose(y_script.mean(1), x.mean(0).expand(16, 3), atol=1e-6), "centre of mass must be kept"


def test_same_seed_same_proposals_other_seed_different(exported):
    model = torch.jit.load(str(exported))
    x, types = alanine_like()
    torch.manual_seed(7)
    first = model(x, types, 4)
    torch.manual_seed(7)
    again = model(x, types, 4)
    other = model(x, types, 4)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


def test_bad_atom_types_are_refused(exported):
    model = torch.jit.load(str(exported))
    x, types = alanine_like()
    types[3] = len(ELEMENTS)
    with pytest.raises(Exception, match="elements"):
        model(x, types, 2)


def settings_entry(path) -> dict:
    """The archive entry ``timewarp.json`` of a model file (docs/model-contract.md)."""
    extra = {"timewarp.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    return json.loads(extra["timewarp.json"])


def test_export_cli_from_checkpoint(trained_like_flow, tmp_path):
    checkpoint = tmp_path / "best.pt"
    # The checkpoint keys of earlier versions: no architecture (a Cartesian flow), config_json's dict.
    torch.save({"flow_config": json.loads(trained_like_flow.config_json), "flow_state": trained_like_flow.state_dict(),
                "info": {"lag_ps": 1.0, "temperature_K": 300.0, "sequences": ["AA"]}}, checkpoint)
    flow, info = load_checkpoint(checkpoint)
    assert info["sequences"] == ["AA"]
    out = tmp_path / "cli.pt"
    assert run_cli(["export", str(checkpoint), str(out)]) == 0
    model = torch.jit.load(str(out))
    assert model.lag_time_ps() == 1.0 and model.temperature_kelvin() == 300.0
    entry = settings_entry(out)  # a Cartesian flow moves every coordinate: no hybrid Monte Carlo needed
    assert not entry["needs_fast_coordinate_moves"] and entry["integrator"]["hmc_interval"] == 0
    assert run_cli(["export", str(checkpoint), str(tmp_path / "hmc.pt"), "--hmc-interval", "3", "--hmc-steps", "5",
                    "--hmc-minimum-mass-amu", "4"]) == 0
    assert settings_entry(tmp_path / "hmc.pt")["integrator"] == {"hmc_interval": 3, "hmc_steps": 5,
                                                                 "hmc_step_size_ps": 0.001, "hmc_minimum_mass_amu": 4.0}
    with pytest.raises(InputError, match="--hmc-minimum-mass-amu must be at least 0"):
        run_cli(["export", str(checkpoint), str(tmp_path / "bad.pt"), "--hmc-minimum-mass-amu", "-1"])
    with pytest.raises(InputError, match="exists"):
        run_cli(["export", str(checkpoint), str(out)])
    with pytest.raises(InputError, match="internal architecture"):
        run_cli(["export", str(checkpoint), str(out), "--overwrite", "--kernels", "0", "1", "0"])
    with pytest.raises(InputError, match="TITO"):
        run_cli(["export", str(checkpoint), str(out), "--overwrite", "--lag-ps", "5"])


def test_checkpoint_round_trip_and_refusals(trained_like_flow, tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint(path, trained_like_flow, {"lag_ps": 1.0, "temperature_K": 300.0}, state={"epoch": 1})
    flow, info = load_checkpoint(path)
    assert flow.to_config() == trained_like_flow.to_config() and info["lag_ps"] == 1.0
    assert all(torch.equal(a, b) for a, b in zip(flow.state_dict().values(), trained_like_flow.state_dict().values()))
    with pytest.raises(InputError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


@pytest.mark.skipif(not CHECK_MODEL.exists(), reason="shared check_model.py tool not present")
def test_check_model_tool_accepts_export(exported):
    result = subprocess.run([sys.executable, str(CHECK_MODEL), str(exported), "--batch"],
                            capture_output=True, text=True, timeout=120, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "contract 1 ok" in result.stdout


def test_integrator_samples_harmonic_well_exactly_with_exported_flow(tmp_path):
    """MH with an asymmetric exported flow keeps the Boltzmann distribution of three particles.

    The flow keeps the centre of mass, so the chain samples the internal coordinates: in an
    isotropic harmonic well of width sigma, x_i - mean(x) has variance sigma^2 (1 - 1/n) per axis.
    """
    import numpy as np
    import openmm
    from openmm import unit

    openmm_timewarp = pytest.importorskip("openmm_timewarp")
    torch.manual_seed(1)
    flow = TimewarpFlow(ELEMENTS, hidden=16, num_couplings=2, embed_dim=8)
    with torch.no_grad():
        for layer in flow.layers:
            # Gates on the neighbour offsets: a drift that contracts the molecule, so the proposal is
            # asymmetric and ignoring the log ratio would sample too small a variance.
            layer.position_net.head.bias[6:] = 1.5
        flow.element_log_scale.fill_(math.log(0.08))
    model = tmp_path / "flow.pt"
    settings = export_model(flow, model, lag_ps=1.0, temperature_K=310.0)
    assert settings["needs_fast_coordinate_moves"] is False and settings["integrator"]["hmc_interval"] == 0

    sigma, n = 0.1, 3
    system = harmonic_system(n, sigma, temperature=310.0)
    integrator = openmm_timewarp.TimewarpIntegrator(str(model), ["C"] * n, 310.0, random_seed=3,
                                                    proposals_per_batch=16, adaptive_batch_size=False)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.random.default_rng(0).normal(0.0, sigma, (n, 3)))
    samples = []
    for _ in range(3000):
        integrator.step(1)
        x = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        samples.append(x - x.mean(0))
    samples = np.array(samples)[300:]
    variance = samples.var(axis=0).mean()
    assert variance == pytest.approx(sigma**2 * (1 - 1 / n), rel=0.15)
