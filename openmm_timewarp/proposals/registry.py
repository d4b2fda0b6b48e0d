"""The registry of proposal kernels: one line per kernel type.

Export, training and the mixture look kernels up here by ``kind`` (a checkpoint's
``architecture``); none of them branches on a kernel's class.
"""
from typing import Any, Dict, Mapping, Type

from ..errors import InputError
from .backbone import BackboneProposal
from .flow import TimewarpFlow
from .internal_flow import InternalTimewarpFlow
from .kernel import ProposalKernel
from .mixture import ProposalMixture
from .side_chains import SideChainKernel
from .tito import TitoModel
from .tito_torsion import TorsionTito

__all__ = ["KERNELS", "kernel_class", "kernel_from_config", "kernel_config"]

KERNELS: Dict[str, Type[ProposalKernel]] = {
    TimewarpFlow.kind: TimewarpFlow,
    InternalTimewarpFlow.kind: InternalTimewarpFlow,
    BackboneProposal.kind: BackboneProposal,
    SideChainKernel.kind: SideChainKernel,
    TitoModel.kind: TitoModel,
    TorsionTito.kind: TorsionTito,
    ProposalMixture.kind: ProposalMixture,
}
"""Kernel class of each ``kind``."""


def kernel_class(kind: str) -> Type[ProposalKernel]:
    """The kernel class registered as ``kind``.

    Raises
    ------
    InputError
        If no kernel is registered under that name.
    """
    if kind not in KERNELS:
        raise InputError(f"unknown proposal kernel '{kind}'; known: {', '.join(sorted(KERNELS))}")
    return KERNELS[kind]


def kernel_from_config(config: Mapping[str, Any]) -> ProposalKernel:
    """An untrained kernel from a config dict that names its ``kind`` (see :func:`kernel_config`)."""
    if "kind" not in config:
        raise InputError(f"a kernel config needs a 'kind' ({', '.join(sorted(KERNELS))}), got keys {sorted(config)}")
    return kernel_class(str(config["kind"])).from_config(dict(config))


def kernel_config(kernel: ProposalKernel) -> Dict[str, Any]:
    """Every setting of ``kernel`` as a JSON-ready dict with its ``kind``; the inverse of
    :func:`kernel_from_config`."""
    return dict(kernel.to_config().to_dict(), kind=kernel.kind)
