"""Export a proposal kernel (or a mixture of kernels) to a model file, and read training checkpoints.

A model file follows ``docs/model-contract.md``: a TorchScript module with the contract's methods
and the settings entry ``timewarp.json``. Kernels flagged ``float32_networks`` are stored in
float32; positions come in and proposals go out in float64, and log ratios are float64.
Randomness comes only from torch's default generator. The command line is ``cli/export.py``.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..model_file import INTEGRATOR_DEFAULTS, save_model
from .kernel import ProposalKernel
from .registry import kernel_class, kernel_config

__all__ = ["ContractFacts", "ExportedProposal", "ExportedTito", "ExportedBasinTito", "export_model", "recommended_settings", "load_checkpoint",
           "save_checkpoint"]

SHIPPED_HMC_INTERVAL = 2
"""Hybrid Monte Carlo move after every 2nd step: the recommendation for kernels that keep bond
lengths and angles (the shipped models' recipe)."""


class ContractFacts(nn.Module):
    """The facts every model file reports through TorchScript methods (``docs/model-contract.md``):
    the module of a version-1 file, and the topology module of a version-2 file, derive from it.

    Parameters
    ----------
    version : int
        The contract version the file follows.
    elements : list of str
        Element symbols that atom types index into.
    lag_time_ps, temperature_kelvin : float
        The lag of one move (ps) and the temperature of the training data (K).
    has_density : bool
        Whether the log ratios are exact.
    metadata : dict
        Provenance, returned as JSON by ``metadata_json()``.
    """

    def __init__(self, version: int, elements: List[str], lag_time_ps: float, temperature_kelvin: float,
                 has_density: bool, metadata: Mapping[str, Any]) -> None:
        super().__init__()
        self.version = int(version)
        self.element_list: List[str] = list(elements)
        self.lag_ps = float(lag_time_ps)
        self.temperature_k = float(temperature_kelvin)
        self.density = bool(has_density)
        self.metadata = json.dumps(dict(metadata), sort_keys=True)

    @torch.jit.export
    def elements(self) -> List[str]:
        """Element symbols that ``atom_types`` index into."""
        return self.element_list

    @torch.jit.export
    def lag_time_ps(self) -> float:
        """Lag time of one move, ps."""
        return self.lag_ps

    @torch.jit.export
    def temperature_kelvin(self) -> float:
        """Temperature of the training data, K."""
        return self.temperature_k

    @torch.jit.export
    def has_density(self) -> bool:
        """Whether the log ratio is exact (a surrogate such as TITO returns NaN there instead)."""
        return self.density

    @torch.jit.export
    def contract_version(self) -> int:
        """Version of the proposal-model contract this file follows."""
        return self.version

    @torch.jit.export
    def metadata_json(self) -> str:
        """Provenance of the model as a JSON string."""
        return self.metadata


class ExportedProposal(ContractFacts):
    """TorchScript-ready wrapper that follows proposal-model contract version 1.

    Parameters
    ----------
    kernel : ProposalKernel
        The kernel (or mixture) whose ``propose`` the file's ``forward`` calls.
    lag_time_ps : float
        The lag of one move, ps.
    temperature_kelvin : float
        Temperature of the training data, K.
    metadata : dict
        Provenance, returned as JSON by ``metadata_json()`` with the kernel's config added as ``kernel``.
    """

    def __init__(self, kernel: ProposalKernel, lag_time_ps: float, temperature_kelvin: float,
                 metadata: Mapping[str, Any]) -> None:
        super().__init__(1, list(kernel.element_symbols), lag_time_ps, temperature_kelvin, kernel.exact_density,
                         dict(metadata, kernel=kernel_config(kernel)))
        self.kernel = kernel.eval()

    def forward(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Return ``num_proposals`` proposals (B, N, 3) float64 nm and their log ratios (B,) float64."""
        if positions.dim() != 2 or positions.shape[1] != 3:
            raise ValueError("positions must have shape (N, 3)")
        if atom_types.shape[0] != positions.shape[0]:
            raise ValueError("atom_types must have one entry per atom")
        if int(atom_types.min()) < 0 or int(atom_types.max()) >= len(self.element_list):
            raise ValueError("atom_types must index into elements()")
        with torch.no_grad():
            proposals, log_ratio = self.kernel.propose(positions.to(torch.float64), atom_types, num_proposals)
        return proposals, log_ratio


class ExportedTito(ExportedProposal):
    """A kernel with an adjustable lag (TITO) under contract version 1: its lag can be changed
    within its trained range."""

    @torch.jit.export
    def set_lag_ps(self, lag_ps: float) -> None:
        """Make later proposals lag-``lag_ps`` moves (and ``lag_time_ps()`` report it)."""
        self.kernel.set_lag_ps(lag_ps)
        self.lag_ps = lag_ps

    @torch.jit.export
    def lag_range_ps(self) -> List[float]:
        """The lags the model was trained for, [min, max] in ps."""
        return [self.kernel.min_lag_ps, self.kernel.max_lag_ps]


class ExportedBasinTito(ExportedTito):
    """A TITO kernel that also takes each residue's equilibrium basin populations
    (:meth:`~openmm_timewarp.proposals.tito_torsion.TorsionTito.set_basin_populations`)."""

    @torch.jit.export
    def set_basin_populations(self, populations: Tensor) -> None:
        """Equilibrium populations (residues, 4) of the basins beta, alpha_R, alpha_L, PII_L; an
        empty (0, 4) tensor switches the basin-level correction off."""
        self.kernel.set_basin_populations(populations)

    @torch.jit.export
    def basin_populations(self) -> Tensor:
        """The populations set (empty if none)."""
        return self.kernel.basin_populations()


def recommended_settings(kernel: ProposalKernel, integrator_settings: Optional[Mapping[str, Any]] = None
                         ) -> Dict[str, Any]:
    """The ``timewarp.json`` entry of ``kernel``: ``needs_fast_coordinate_moves`` (no kernel with
    a positive weight changes bond lengths or angles) and the recommended integrator settings
    (``hmc_interval`` 2 when such moves are needed, else 0), updated by ``integrator_settings``.

    Raises
    ------
    InputError
        If ``integrator_settings`` names an unknown setting.
    """
    needs_fast = not kernel.moves_geometry()
    integrator = dict(INTEGRATOR_DEFAULTS, hmc_interval=SHIPPED_HMC_INTERVAL if needs_fast else 0)
    unknown = sorted(set(integrator_settings or {}) - set(INTEGRATOR_DEFAULTS))
    if unknown:
        raise InputError(f"unknown integrator settings {unknown}; known: {sorted(INTEGRATOR_DEFAULTS)}")
    integrator.update(integrator_settings or {})
    return {"integrator": integrator, "needs_fast_coordinate_moves": needs_fast}


def export_model(kernel: ProposalKernel, out: Union[str, os.PathLike], *, lag_ps: float, temperature_K: float,
                 metadata: Optional[Mapping[str, Any]] = None,
                 integrator_settings: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Script ``kernel`` in the contract wrapper and save it, with its settings entry, to ``out``.

    Parameters
    ----------
    kernel : ProposalKernel
        A kernel or a mixture; it is moved to the CPU and its ``float32_networks`` components to
        float32 (in place).
    out : path
        The model file to write.
    lag_ps, temperature_K : float
        The lag of one move (ps) and the temperature of the training data (K).
    metadata : dict, optional
        Provenance stored in ``metadata_json()`` (training data, seeds, ``sequences``,
        ``max_residues``); the kernel's config is added as ``kernel``.
    integrator_settings : dict, optional
        Overrides of the recommended integrator settings (see :func:`recommended_settings`).

    Returns
    -------
    dict
        The settings entry written (``timewarp.json``).
    """
    if not lag_ps > 0 or not temperature_K > 0:
        raise InputError(f"lag and temperature must be positive, got {lag_ps} ps and {temperature_K} K")
    kernel = kernel.cpu()
    for leaf in kernel.leaves():
        if leaf.float32_networks:
            leaf.float()
    wrapper = ExportedBasinTito if kernel.balances_basins else ExportedTito if kernel.adjustable_lag \
        else ExportedProposal
    settings = recommended_settings(kernel, integrator_settings)
    module = torch.jit.script(wrapper(kernel, lag_ps, temperature_K, dict(metadata or {})))
    save_model(module, out, settings)
    return settings


def save_checkpoint(path: Path, kernel: ProposalKernel, info: Mapping[str, Any], **extra: Any) -> None:
    """Write a training checkpoint atomically: ``architecture`` (the kernel's kind), ``flow_config``
    (its settings), ``flow_state`` (its state dict), ``info`` (``lag_ps``, ``temperature_K`` and
    provenance) and the ``extra`` entries (optimizer state, progress, random state)."""
    tmp = Path(path).with_suffix(".tmp")
    torch.save({**extra, "architecture": kernel.kind, "flow_config": kernel.to_config().to_dict(),
                "flow_state": kernel.state_dict(), "info": dict(info)}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Union[str, os.PathLike]) -> Tuple[ProposalKernel, Dict[str, Any]]:
    """The kernel of a training checkpoint (in eval mode) and its ``info``.

    Reads the keys :func:`save_checkpoint` writes; a checkpoint without ``architecture`` is a
    Cartesian flow, and a backbone checkpoint of older versions (``backbone_config`` and
    ``backbone_state``) is converted.

    Raises
    ------
    InputError
        If the file is missing or is not a checkpoint.
    """
    if not Path(path).is_file():
        raise InputError(f"no checkpoint file {path}")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or not ({"flow_config", "backbone_config"} & set(checkpoint)):
        raise InputError(f"{path} is not a training checkpoint (no flow_config)")
    if "backbone_config" in checkpoint:  # the backbone trainer's format before the kernel registry
        old = checkpoint["backbone_config"]
        config = dict({k: v for k, v in old["density"].items() if k != "num_features"}, elements=old["elements"])
        kind, state = "backbone", checkpoint["backbone_state"]
    else:
        kind, config, state = checkpoint.get("architecture", "cartesian"), checkpoint["flow_config"], checkpoint["flow_state"]
    kernel = kernel_class(kind).from_config(config)
    kernel.load_state_dict(state)
    return kernel.eval(), dict(checkpoint.get("info", {}))
