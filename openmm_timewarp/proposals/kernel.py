"""The proposal-kernel protocol: what every kernel type implements, and its configuration.

A kernel is an ``nn.Module`` that TorchScript can compile and that proposes moves of one molecule
(``docs/model-contract.md``). Its configuration is a dataclass that records every setting, trained
or not, so that a kernel rebuilt from the metadata of an exported file and the file's parameters
proposes exactly what the file does. ``docs/adding-a-kernel.md`` says how to add one.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Tuple, Type, TypeVar

from torch import Tensor, nn

from ..errors import InputError
from .geometry import REJECT

__all__ = ["KernelConfig", "ProposalKernel"]

C = TypeVar("C", bound="KernelConfig")


@dataclasses.dataclass
class KernelConfig:
    """Base of the configuration dataclasses: every field is a JSON value (lists, not tuples)."""

    def to_dict(self) -> Dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: Type[C], values: Dict[str, Any]) -> C:
        """The config of ``values`` (a ``kind`` key is ignored).

        Raises
        ------
        InputError
            If ``values`` holds a key that is not a field, or lacks a required one.
        """
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in values.items() if k != "kind"}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise InputError(f"{cls.__name__}: unknown settings {unknown}; known: {sorted(fields)}")
        try:
            return cls(**values)
        except TypeError as error:
            raise InputError(f"{cls.__name__}: {error}") from None


class ProposalKernel(nn.Module):
    """Base class of the proposal kernels.

    A subclass sets the class attributes and implements :meth:`propose`, :meth:`to_config` and
    :meth:`from_config`; the registry (``proposals.registry``) maps its ``kind`` to it.

    Class attributes
    ----------------
    kind : str
        Its name in the registry, in checkpoints (``architecture``) and in exported metadata.
    config_class : type
        Its :class:`KernelConfig` subclass.
    changes_geometry : bool
        Whether its moves change bond lengths and bond angles. A model whose kernels all keep them
        needs hybrid Monte Carlo to be ergodic (``needs_fast_coordinate_moves``).
    exact_density : bool
        Whether ``log_ratio`` is the exact Metropolis-Hastings ratio (a surrogate returns NaN).
    float32_networks : bool
        Whether export stores its floating-point state in float32 (networks); False keeps float64
        (a density that enters the ratio).
    adjustable_lag : bool
        Whether the exported file may change its lag (``set_lag_ps``, TITO).
    balances_basins : bool
        Whether the exported file takes equilibrium basin populations (``set_basin_populations``,
        the torsion TITO model).
    supports_noise : bool
        Whether it implements the noise protocol of contract v2 (:meth:`topology`,
        :meth:`topology_axes`, :meth:`noise_counts`, :meth:`propose_noise`), so that a v2 file
        (``proposals.compiled``) can hold it.
    """

    kind = ""
    config_class = KernelConfig
    changes_geometry = True
    exact_density = True
    float32_networks = True
    adjustable_lag = False
    balances_basins = False
    supports_noise = False

    def __init__(self) -> None:
        super().__init__()
        # TorchScript reads no global floats: kernels reach the constant through the instance.
        self.reject = REJECT

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int) -> Tuple[Tensor, Tensor]:
        """Proposals (B, N, 3) float64 nm in the frame of ``positions`` (N, 3) and their log ratios (B,) float64."""
        raise NotImplementedError

    def topology(self, positions: Tensor, atom_types: Tensor) -> List[Tensor]:
        """Noise protocol: whether the kernel can move the molecule (() bool), then the tensors that
        :meth:`propose_noise` needs from the bond graph (found once per molecule; may branch on values)."""
        raise NotImplementedError

    def topology_axes(self) -> List[Dict[int, str]]:
        """Noise protocol: for each tensor of :meth:`topology` after the first, its axes that vary with
        the molecule, named (``atoms`` is the number of atoms; others are the kernel's own)."""
        raise NotImplementedError

    def noise_counts(self) -> List[int]:
        """Noise protocol: standard normal and uniform variates per proposal, [normals, uniforms]."""
        raise NotImplementedError

    def propose_noise(self, positions: Tensor, atom_types: Tensor, topology: List[Tensor], normals: Tensor,
                      uniforms: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Noise protocol: proposals (B, N, 3) and log ratios (B,) as a pure function of the variates
        ``normals`` (B, Z) and ``uniforms`` (B, U), with no branch on tensor values (``torch.export``
        compiles it), and whether the bond graph of ``positions`` is still that of ``topology`` (() bool)."""
        raise NotImplementedError

    def available(self, positions: Tensor, atom_types: Tensor) -> bool:
        """Whether the kernel can move this molecule (a backbone kernel needs a backbone).

        It may depend on the bond graph and the elements only, which proposals keep, so that a
        mixture's choice of kernel stays independent of the state."""
        return True

    def moves_geometry(self) -> bool:
        """Whether this kernel, as configured, changes bond lengths or angles (default: the class's
        ``changes_geometry``)."""
        return bool(self.changes_geometry)

    def leaves(self) -> List["ProposalKernel"]:
        """The kernels that propose (itself; a mixture's components)."""
        return [self]

    def to_config(self) -> KernelConfig:
        """Every setting of this kernel, trained state excluded."""
        raise NotImplementedError

    @classmethod
    def from_config(cls, config: Any) -> "ProposalKernel":
        """An untrained kernel with the settings ``config`` (a :attr:`config_class` or its dict)."""
        raise NotImplementedError

    @classmethod
    def parse_config(cls, config: Any) -> KernelConfig:
        """``config`` as a :attr:`config_class` (a dict is converted, its ``kind`` ignored)."""
        if isinstance(config, cls.config_class):
            return config
        return cls.config_class.from_dict(dict(config))
