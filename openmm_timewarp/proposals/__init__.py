"""Proposal kernels: what proposes the moves that the integrator accepts or rejects.

Each kernel type lives in its own module and is registered in :mod:`.registry`; :mod:`.kernel`
holds the protocol, :mod:`.export` writes a kernel (or a :class:`.mixture.ProposalMixture` of
several) to a model file. Shared geometry is in :mod:`.geometry`.
"""
from .kernel import KernelConfig, ProposalKernel
from .registry import KERNELS, kernel_class, kernel_config, kernel_from_config

__all__ = ["KERNELS", "KernelConfig", "ProposalKernel", "kernel_class", "kernel_config", "kernel_from_config"]
