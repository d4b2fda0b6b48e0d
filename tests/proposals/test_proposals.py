"""The proposal-kernel layer: registry, config round-trips, the N-kernel mixture, export settings,
and the shipped models rebuilt through the registry."""
from __future__ import annotations

import dataclasses
import json
from typing import List

import numpy as np
import pytest
import torch

from openmm_timewarp.errors import InputError
from openmm_timewarp.proposals import KERNELS, KernelConfig, ProposalKernel, kernel_config, kernel_from_config
from openmm_timewarp.proposals.backbone import BackboneProposal
from openmm_timewarp.proposals.export import export_model, recommended_settings
from openmm_timewarp.proposals.internal_flow import InternalTimewarpFlow
from openmm_timewarp.proposals.mixture import ProposalMixture
from openmm_timewarp.proposals.rebuild import config_from_metadata, kernel_from_model_file
from openmm_timewarp.proposals.side_chains import SideChainKernel
from openmm_timewarp.proposals.tito import TitoModel
from openmm_timewarp.proposals.tito_torsion import TorsionTito

ELEMENTS = ["H", "C", "N", "O", "S"]
torch.set_num_threads(1)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@dataclasses.dataclass
class ToyConfig(KernelConfig):
    elements: List[str]
    step: float = 0.01


class ToyKernel(ProposalKernel):
    """A symmetric Gaussian random walk of every coordinate: the smallest kernel there is."""

    kind = "toy"
    config_class = ToyConfig

    def __init__(self, elements: List[str], step: float = 0.01) -> None:
        super().__init__()
        self.element_symbols = list(elements)
        self.step = float(step)

    def to_config(self) -> ToyConfig:
        return ToyConfig(list(self.element_symbols), self.step)

    @classmethod
    def from_config(cls, config) -> "ToyKernel":
        c = cls.parse_config(config)
        return cls(c.elements, c.step)

    def propose(self, positions: torch.Tensor, atom_types: torch.Tensor, num_proposals: int):
        noise = torch.randn(num_proposals, positions.shape[0], 3, dtype=torch.float64) * self.step
        return positions.to(torch.float64)[None] + noise, torch.zeros(num_proposals, dtype=torch.float64)


def configured_kernels() -> dict:
    """One kernel of every registered kind, every setting away from its default."""
    internal = InternalTimewarpFlow(ELEMENTS, hidden=8, num_couplings=1, num_geometry_couplings=1, embed_dim=4)
    internal.set_kernels(0.0, 0.9, 0.1, local_step=0.3)
    backbone = BackboneProposal.from_config(dict(
        elements=ELEMENTS, num_components=4, hidden=8, floor=0.05, basin_prior_weight=0.1, basin_prior_width=0.3,
        local_fraction=0.2, local_width=0.4, side_chain_fraction=0.3, side_chain_jump=0.5, side_chain_width=0.2,
        side_chains_with_pivots=0.1, rotamer_crossing=0.9, rotamer_other=0.2, rotamer_width=0.25))
    tito = TitoModel(ELEMENTS, hidden=8, layers=1, num_steps=2)
    tito.set_lag_ps(250.0)  # a setter's state is part of the config
    torsion_tito = TorsionTito(ELEMENTS, hidden=8, layers=1, min_lag_ps=20.0, max_lag_ps=800.0, num_steps=3,
                               lag_ps=100.0, base_scale_rad=0.3, jump_hidden=6)
    torsion_tito.set_lag_ps(400.0)
    kernels = {"cartesian": KERNELS["cartesian"](ELEMENTS, hidden=8, num_couplings=1, embed_dim=4),
               "internal": internal, "backbone": backbone, "side_chains": SideChainKernel(ELEMENTS, 0.7, 0.1),
               "tito": tito, "tito-torsion": torsion_tito}
    kernels["mixture"] = ProposalMixture([backbone, kernels["side_chains"], internal], [0.5, 0.2, 0.3])
    return kernels


def test_every_registered_kind_has_a_configured_kernel_here():
    assert sorted(configured_kernels()) == sorted(KERNELS)


@pytest.mark.parametrize("kind", sorted(KERNELS))
def test_config_round_trips_every_setting(kind):
    kernel = configured_kernels()[kind]
    config = kernel_config(kernel)
    assert config["kind"] == kind
    rebuilt = kernel_from_config(json.loads(json.dumps(config)))  # through JSON, as in a model file
    assert type(rebuilt) is type(kernel) and kernel_config(rebuilt) == config


def test_backbone_config_records_what_the_setters_change():
    kernel = BackboneProposal(ELEMENTS)
    kernel.set_local(0.3, 0.5)
    kernel.set_side_chains(0.2, 0.4, 0.1, 0.6)
    kernel.set_rotamers(1.0, 0.5, 0.3)
    kernel.density.set_basin_prior(0.2, 0.4)
    config = kernel.to_config()
    assert (config.local_fraction, config.local_width) == (0.3, 0.5)
    assert (config.side_chain_fraction, config.side_chain_jump, config.side_chain_width,
            config.side_chains_with_pivots) == (0.2, 0.4, 0.1, 0.6)
    assert (config.rotamer_crossing, config.rotamer_other, config.rotamer_width) == (1.0, 0.5, 0.3)
    assert (config.basin_prior_weight, config.basin_prior_width) == (0.2, 0.4)


def test_unknown_kinds_and_settings_are_input_errors():
    with pytest.raises(InputError, match="unknown proposal kernel 'nope'"):
        kernel_from_config({"kind": "nope"})
    with pytest.raises(InputError, match="needs a 'kind'"):
        kernel_from_config({"elements": ELEMENTS})
    with pytest.raises(InputError, match="unknown settings \\['colour'\\]"):
        kernel_from_config({"kind": "side_chains", "elements": ELEMENTS, "colour": 1})


def test_a_new_kernel_is_one_class_and_one_registry_line(monkeypatch, tmp_path):
    monkeypatch.setitem(KERNELS, ToyKernel.kind, ToyKernel)  # the registry line
    toy = kernel_from_config({"kind": "toy", "elements": ELEMENTS, "step": 0.02})
    mixture = kernel_from_config(kernel_config(ProposalMixture([toy, SideChainKernel(ELEMENTS)], [0.5, 0.5])))
    settings = export_model(mixture, tmp_path / "toy.pt", lag_ps=1.0, temperature_K=300.0)
    assert settings["needs_fast_coordinate_moves"] is False  # the toy kernel moves every coordinate
    rebuilt, metadata, lag, temperature = kernel_from_model_file(tmp_path / "toy.pt")
    assert kernel_config(rebuilt) == kernel_config(mixture) and (lag, temperature) == (1.0, 300.0)
    x = torch.randn(5, 3, dtype=torch.float64)
    torch.manual_seed(2)
    y, log_ratio = torch.jit.load(str(tmp_path / "toy.pt"))(x, torch.tensor([4, 4, 4, 4, 4]), 4)
    assert (log_ratio == 0).all() and ((y - x).abs() < 0.2).all()


def test_needs_fast_coordinate_moves_comes_from_the_weighted_kernels():
    kernels = configured_kernels()
    assert recommended_settings(kernels["backbone"])["needs_fast_coordinate_moves"]
    assert recommended_settings(kernels["backbone"])["integrator"]["hmc_interval"] == 2
    assert not recommended_settings(kernels["cartesian"])["needs_fast_coordinate_moves"]
    assert recommended_settings(kernels["cartesian"])["integrator"]["hmc_interval"] == 0
    internal = kernels["internal"]  # torsion 0.9 and local 0.1: the local steps move bonds and angles
    assert not recommended_settings(internal)["needs_fast_coordinate_moves"]
    internal.set_kernels(0.0, 1.0, 0.0, local_step=0.3)
    assert recommended_settings(internal)["needs_fast_coordinate_moves"]
    # A flow of weight 0 (the shipped recipe) does not count.
    mixture = ProposalMixture([kernels["backbone"], kernels["cartesian"]], [1.0, 0.0])
    assert recommended_settings(mixture)["needs_fast_coordinate_moves"]
    assert recommended_settings(mixture, {"hmc_interval": 5})["integrator"]["hmc_interval"] == 5
    with pytest.raises(InputError, match="unknown integrator settings"):
        recommended_settings(mixture, {"hmc_every": 5})


class Tagged(ToyKernel):
    """Proposals that say which kernel made them (x + tag), for counting a mixture's choices."""

    def __init__(self, tag: float, usable: bool = True) -> None:
        super().__init__(ELEMENTS)
        self.tag, self.usable = tag, usable

    def available(self, positions: torch.Tensor, atom_types: torch.Tensor) -> bool:
        return self.usable

    def propose(self, positions, atom_types, num_proposals):
        return (positions.to(torch.float64)[None].repeat(num_proposals, 1, 1) + self.tag,
                torch.full((num_proposals,), self.tag, dtype=torch.float64))


def test_mixture_draws_each_kernel_with_its_weight_and_skips_unavailable_ones():
    x, types = torch.zeros(3, 3, dtype=torch.float64), torch.tensor([1, 1, 1])
    torch.manual_seed(0)
    _, tags = ProposalMixture([Tagged(1.0), Tagged(2.0), Tagged(3.0)], [0.2, 0.3, 0.5]).propose(x, types, 20000)
    shares = [float((tags == t).double().mean()) for t in (1.0, 2.0, 3.0)]
    assert shares == pytest.approx([0.2, 0.3, 0.5], abs=0.015)
    _, tags = ProposalMixture([Tagged(1.0, usable=False), Tagged(2.0), Tagged(3.0)], [0.5, 0.25, 0.25]).propose(
        x, types, 20000)
    assert float((tags == 2.0).double().mean()) == pytest.approx(0.5, abs=0.015) and not (tags == 1.0).any()
    # The shipped fallback: a backbone kernel of weight 1 that cannot move the molecule hands every
    # proposal to the flow, whose weight is 0.
    _, tags = ProposalMixture([Tagged(1.0, usable=False), Tagged(2.0)], [1.0, 0.0]).propose(x, types, 100)
    assert (tags == 2.0).all()
    with pytest.raises(ValueError, match="one weight per kernel"):
        ProposalMixture([Tagged(1.0)], [0.5, 0.5])
    with pytest.raises(ValueError, match="cannot be mixed"):
        ProposalMixture([TitoModel(ELEMENTS, hidden=8, layers=1)], [1.0])


def shipped_inputs(elements: List[str]):
    """(name, positions, types) of molecules that exercise every branch of a shipped mixture:
    capped peptides (backbone pivots and side-chain turns) and the acetyl cap alone (no backbone:
    the flow)."""
    from openmm import unit

    from openmm_timewarp.systems import peptide_from_sequence

    inputs = []
    for sequence in ("A", "DE"):
        topology, positions = peptide_from_sequence(sequence)
        x = torch.tensor(np.asarray(positions.value_in_unit(unit.nanometer)), dtype=torch.float64)
        types = torch.tensor([elements.index(a.element.symbol) for a in topology.atoms()])
        inputs.append((sequence, x, types))
        if sequence == "A":
            cap = [a.index for a in topology.atoms() if a.residue.name == "ACE"]
            inputs.append(("ACE", x[cap], types[cap]))
    return inputs


@pytest.mark.parametrize("name", ["dipeptides", "ace-ala-nme"])
def test_shipped_model_rebuilt_through_the_registry_proposes_the_same_law(name, tmp_path):
    """Settings from the file's metadata, parameters from its state dict, re-exported with
    export_model: the same settings and the same proposal law.

    The backbone kernel now draws its variates in one block (contract v2's pure function), so a
    re-export no longer reproduces the shipped file's random stream; the law is compared instead:
    the Ramachandran densities' parameters bit for bit, and the distributions of the log ratios
    and of the displacement of 4,000 proposals from each file (two-sample Kolmogorov-Smirnov,
    p > 1e-4; a wrong density or weight shifts them far more, see the power check below)."""
    from scipy.stats import ks_2samp

    from openmm_timewarp.model_file import ModelFile

    shipped = ModelFile.open(name)
    kernel, metadata, lag, temperature = kernel_from_model_file(shipped.path)
    assert config_from_metadata(metadata)["kind"] == "mixture"
    out = tmp_path / f"{name}.pt"
    settings = export_model(kernel, out, lag_ps=lag, temperature_K=temperature, metadata=metadata)
    # The same recommendations; a new file also states the defaults the shipped one leaves out.
    assert settings["integrator"] == shipped.integrator_settings
    assert settings["needs_fast_coordinate_moves"] == shipped.settings["needs_fast_coordinate_moves"]
    original, again = torch.jit.load(shipped.path), torch.jit.load(str(out))
    assert json.loads(again.metadata_json())["kernel"] == kernel_config(kernel)
    features = torch.rand(7, kernel.kernels[0].num_features(), dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for a, b in zip(original.flow.backbone.density.mixture(features), getattr(again.kernel.kernels, "0").density.mixture(features)):
        assert torch.equal(a, b)
    torch.manual_seed(0)
    for label, x, types in shipped_inputs(original.elements()):
        (y_a, r_a), (y_b, r_b) = original(x, types, 4000), again(x, types, 4000)
        assert (r_a > -1e29).any() and not torch.equal(y_a[0], x), label  # real moves
        for sample_a, sample_b in ((r_a, r_b), ((y_a - x).norm(dim=(1, 2)), (y_b - x).norm(dim=(1, 2)))):
            assert ks_2samp(sample_a.numpy(), sample_b.numpy()).pvalue > 1e-4, label


def test_same_law_comparison_detects_a_shifted_density(tmp_path):
    """Power check of the comparison above: the shipped ACE-ALA-NME model against its own rebuild
    with the Ramachandran centres moved by 0.3 rad fails the same Kolmogorov-Smirnov test."""
    from scipy.stats import ks_2samp

    from openmm_timewarp.model_file import ModelFile

    shipped = ModelFile.open("ace-ala-nme")
    kernel, metadata, lag, temperature = kernel_from_model_file(shipped.path)
    density = kernel.kernels[0].density
    with torch.no_grad():
        density.net[-1].bias.view(5, -1)[1:3] += 0.3
    out = tmp_path / "shifted.pt"
    export_model(kernel, out, lag_ps=lag, temperature_K=temperature, metadata=metadata)
    original, shifted = torch.jit.load(shipped.path), torch.jit.load(str(out))
    torch.manual_seed(0)
    label, x, types = shipped_inputs(original.elements())[0]
    (_, r_a), (_, r_b) = original(x, types, 4000), shifted(x, types, 4000)
    assert ks_2samp(r_a.numpy(), r_b.numpy()).pvalue < 1e-4, label
