"""Rebuild the kernel of an exported model file from the file alone: settings from its metadata,
parameters from its TorchScript state dict.

Files written before the kernel registry (the shipped ones among them) record their settings in
the training ``info`` and export flags (``flow_config``, ``kernels``, ``local_step``,
``backbone``); :func:`config_from_metadata` converts those to a registry config.
"""
import os
from typing import Any, Dict, Mapping, Tuple, Union

import torch

from ..errors import InputError
from ..model_file import ModelFile
from .kernel import ProposalKernel
from .registry import kernel_from_config

__all__ = ["config_from_metadata", "kernel_from_model_file"]


def _legacy_flow(metadata: Mapping[str, Any], flow_config: Mapping[str, Any]) -> Dict[str, Any]:
    config = dict(flow_config, kind=metadata.get("architecture", "cartesian"))
    if "kernels" in metadata:  # export --kernels FULL TORSION LOCAL --local-step S
        k = metadata["kernels"]
        config.update(kernel_weights=[k["full"], k["torsion"], k["local"]], local_step=metadata["local_step"])
    return config


def _legacy_backbone(settings: Mapping[str, Any], backbone_config: Mapping[str, Any]) -> Dict[str, Any]:
    density = backbone_config["density"]
    sides = settings.get("side_chains", {})
    rotamers = settings.get("rotamers", {})
    prior = settings.get("basin_prior", {})
    return dict(kind="backbone", elements=backbone_config["elements"], num_components=density["num_components"],
                hidden=density["hidden"], floor=density["floor"], basin_prior_weight=prior.get("weight", 0.0),
                basin_prior_width=prior.get("width", 0.35), local_fraction=settings.get("local_fraction", 0.0),
                local_width=settings.get("local_width", 0.3), side_chain_fraction=sides.get("fraction", 0.0),
                side_chain_jump=sides.get("jump", 0.0), side_chain_width=sides.get("width", 0.0),
                side_chains_with_pivots=sides.get("with_pivots", 0.0), rotamer_crossing=rotamers.get("crossing", 0.0),
                rotamer_other=rotamers.get("other", 0.0), rotamer_width=rotamers.get("width", 0.35))


def config_from_metadata(metadata: Mapping[str, Any]) -> Dict[str, Any]:
    """The registry config (with ``kind``) of the kernel of a file with this ``metadata_json()``.

    A legacy mixture (``flow_config`` with ``flow``, ``backbone`` and ``backbone_weight``) becomes
    a :class:`~.mixture.ProposalMixture` of [backbone, flow] with weights [w, 1 - w], which draws
    the same random numbers in the same order.
    """
    if "kernel" in metadata:
        return dict(metadata["kernel"])
    if "flow_config" not in metadata:
        raise InputError("the model's metadata records no kernel settings (neither 'kernel' nor 'flow_config')")
    flow_config = metadata["flow_config"]
    if "backbone_weight" not in flow_config:
        return _legacy_flow(metadata, flow_config)
    weight = float(flow_config["backbone_weight"])
    return dict(kind="mixture", weights=[weight, 1.0 - weight],
                kernels=[_legacy_backbone(metadata.get("backbone", {}), flow_config["backbone"]),
                         _legacy_flow(metadata, flow_config["flow"])])


def _state_prefixes(config: Mapping[str, Any], names) -> Dict[str, str]:
    """Prefix in the file's state dict -> prefix in the rebuilt kernel's."""
    if any(name.startswith("kernel.") for name in names):
        return {"kernel.": ""}
    if config["kind"] == "mixture":
        return {"flow.backbone.": "kernels.0.", "flow.flow.": "kernels.1."}
    return {"flow.": ""}


def kernel_from_model_file(path: Union[str, os.PathLike]) -> Tuple[ProposalKernel, Dict[str, Any], float, float]:
    """The kernel of a model file, rebuilt through the registry and loaded with the file's
    parameters, with its metadata, lag (ps) and temperature (K).

    Raises
    ------
    InputError
        If the file's state dict lacks a parameter or buffer of the rebuilt kernel.
    """
    model_file = ModelFile.open(path)
    if model_file.module is None:
        raise InputError(f"{path} is a compiled (contract v2) file, whose kernels cannot be rebuilt; rebuild "
                         "from the TorchScript file it was compiled from")
    module, metadata = model_file.module, model_file.metadata
    config = config_from_metadata(metadata)
    if config["kind"] == "tito":  # the exported lag, which export --lag-ps may have changed
        config["lag_ps"] = float(module.lag_time_ps())
    kernel = kernel_from_config(config)
    stored = module.state_dict()
    renamed: Dict[str, torch.Tensor] = {}
    for old, new in _state_prefixes(config, stored).items():
        renamed.update({new + k[len(old):]: v for k, v in stored.items() if k.startswith(old)})
    wanted = kernel.state_dict()
    missing = sorted(set(wanted) - set(renamed))
    if missing:
        raise InputError(f"{path}: the file has no values for {missing[:5]} ({len(missing)} in all)")
    # Non-persistent buffers (the basin prior) come from the config; float32 values of the file
    # convert exactly to the kernel's float64 and back on export.
    kernel.load_state_dict({k: renamed[k] for k in wanted})
    return kernel.eval(), metadata, float(module.lag_time_ps()), float(module.temperature_kelvin())
