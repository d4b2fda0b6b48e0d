"""Contract-v2 model files: each kernel's proposals as a pure function, compiled ahead of time.

A v2 file (``docs/model-contract.md``, version 2) is an AOTInductor package (``.pt2``, a zip) that
holds, for each proposing kernel, a program exported with ``torch.export`` and compiled by
AOTInductor::

    program(positions (N, 3), atom_types (N,), normals (B, Z), uniforms (B, U), topology...)
        -> proposals (B, N, 3), log_ratio (B,), same_topology ()

It draws no random numbers: the integrator passes standard normals and uniforms from its own seeded,
checkpointed stream, Z and U per proposal as the file declares. What depends only on the bond graph
(residues, torsions, features) is the ``topology`` of the kernel, computed once per molecule by a
small TorchScript module stored in the archive (``extra/topology.pt``, base64): finding residues is
a graph search with data-dependent loops, which ``torch.export`` cannot trace and which never runs
on the hot path. The archive's ``extra/timewarp.json`` holds the v1 settings entry plus the model's
facts (elements, lag, temperature, kernels with their weights and noise sizes, provenance).

Kernels take part when they implement the noise protocol of :class:`~.kernel.ProposalKernel`
(``supports_noise``); a mixture keeps its components that do and have a positive weight.
:class:`CompiledModel` runs a v2 file from Python the way the C++ loader does.
"""
from __future__ import annotations

import base64
import io
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..model_file import SETTINGS_ENTRY, TOPOLOGY_ENTRY, read_compiled_archive
from .kernel import ProposalKernel
from .export import ContractFacts
from .registry import kernel_config

__all__ = ["CompiledModel", "export_compiled", "noise_kernels", "TOPOLOGY_ENTRY", "CONTRACT_VERSION"]

CONTRACT_VERSION = 2
#: The molecule the programs are traced on: a capped tetrapeptide with side-chain torsions, so that
#: no dynamic size is 0 or 1 (torch.export would fix those).
EXAMPLE_SEQUENCE = "KWED"
EXAMPLE_BATCH = 8


class _Topology(ContractFacts):
    """The topology step of every kernel of a v2 file, with the file's facts and its kernels as the
    C++ loader reads them (scripted into the archive)."""

    def __init__(self, kernels: List[ProposalKernel], entry: Mapping[str, Any]) -> None:
        super().__init__(CONTRACT_VERSION, entry["elements"], entry["lag_time_ps"], entry["temperature_kelvin"],
                         entry["has_density"], entry["metadata"])
        self.kernels = nn.ModuleList(kernels)
        self.programs: List[str] = [k["program"] for k in entry["kernels"]]
        self.weights: List[float] = [float(k["weight"]) for k in entry["kernels"]]
        self.counts: List[List[int]] = [[int(k["normals"]), int(k["uniforms"])] for k in entry["kernels"]]

    def forward(self, positions: Tensor, atom_types: Tensor) -> List[List[Tensor]]:
        out: List[List[Tensor]] = []
        for kernel in self.kernels:
            out.append(kernel.topology(positions.to(torch.float64), atom_types))
        return out

    @torch.jit.export
    def kernel_programs(self) -> List[str]:
        """Package names of the kernels' programs."""
        return self.programs

    @torch.jit.export
    def kernel_weights(self) -> List[float]:
        """Probability of each kernel per proposal (kernels that cannot move a molecule give theirs to the others)."""
        return self.weights

    @torch.jit.export
    def noise_counts(self) -> List[List[int]]:
        """[normals, uniforms] per proposal of each kernel."""
        return self.counts


class _Program(nn.Module):
    """One kernel's pure proposal function, in the argument order of the contract."""

    def __init__(self, kernel: ProposalKernel) -> None:
        super().__init__()
        self.kernel = kernel

    def forward(self, positions: Tensor, atom_types: Tensor, normals: Tensor, uniforms: Tensor,
                topology: List[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        return self.kernel.propose_noise(positions.to(torch.float64), atom_types, topology, normals, uniforms)


def noise_kernels(kernel: ProposalKernel) -> List[Tuple[ProposalKernel, float]]:
    """The kernels of ``kernel`` that a v2 file can hold, with their weights: the kernel itself, or
    a mixture's components that support the noise protocol and have a positive weight.

    Raises
    ------
    InputError
        If none does.
    """
    if kernel.kind == "mixture":
        pairs = [(k, float(w)) for k, w in zip(kernel.kernels, kernel.weights) if w > 0]
    else:
        pairs = [(kernel, 1.0)]
    usable = [(k, w) for k, w in pairs if k.supports_noise]
    if not usable:
        kinds = ", ".join(k.kind for k, _ in pairs)
        raise InputError(f"no kernel of this model ({kinds}) supports contract v2 (a pure function of its random "
                         "numbers); export it as a version-1 file instead")
    return usable


def _example(kernel: ProposalKernel) -> Tuple[Tensor, Tensor]:
    """The tracing example: :data:`EXAMPLE_SEQUENCE` without the atoms of elements the kernel does
    not know (a heavy-atom kernel sees a heavy-atom peptide)."""
    from openmm import unit

    from ..systems import peptide_from_sequence

    topology, positions = peptide_from_sequence(EXAMPLE_SEQUENCE)
    symbols = [a.element.symbol for a in topology.atoms()]
    keep = [i for i, s in enumerate(symbols) if s in kernel.element_symbols]
    x = torch.tensor(positions.value_in_unit(unit.nanometer), dtype=torch.float64)[keep]
    types = torch.tensor([kernel.element_symbols.index(symbols[i]) for i in keep], dtype=torch.int64)
    return x, types


def _compile(kernel: ProposalKernel, metadata: Dict[str, str], simd_bits: int) -> List[str]:
    """Export one kernel's program and compile it with AOTInductor; the files of its package entry."""
    x, types = _example(kernel)
    topology = kernel.topology(x, types)[1:]
    normals_count, uniforms_count = kernel.noise_counts()
    generator = torch.Generator().manual_seed(0)
    normals = torch.randn(EXAMPLE_BATCH, normals_count, dtype=torch.float64, generator=generator)
    uniforms = torch.rand(EXAMPLE_BATCH, uniforms_count, dtype=torch.float64, generator=generator)
    dims = {"atoms": torch.export.Dim("atoms", min=2, max=100000),
            "batch": torch.export.Dim("batch", min=1, max=1 << 20)}
    for axes in kernel.topology_axes():
        for name in axes.values():
            dims.setdefault(name, torch.export.Dim(name, min=1, max=1 << 20))
    dynamic = ({0: dims["atoms"]}, {0: dims["atoms"]}, {0: dims["batch"]}, {0: dims["batch"]},
               [{axis: dims[name] for axis, name in axes.items()} for axes in kernel.topology_axes()])
    program = _Program(kernel).eval()
    args = (x, types, normals, uniforms, topology)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exported = torch.export.export(program, args, dynamic_shapes=dynamic, strict=False)
        options: Dict[str, Any] = {"aot_inductor.package": True, "aot_inductor.metadata": metadata}
        if simd_bits:
            options["cpp.simdlen"] = simd_bits
        return torch._inductor.aot_compile(exported.module(), args, options=options)


def export_compiled(kernel: ProposalKernel, out: Union[str, os.PathLike], *, lag_ps: float, temperature_K: float,
                    settings: Mapping[str, Any], metadata: Optional[Mapping[str, Any]] = None,
                    simd_bits: int = 256, log=print) -> Dict[str, Any]:
    """Write ``kernel`` as a contract-v2 file (an AOTInductor package) and return its settings entry.

    Parameters
    ----------
    kernel
        A kernel or mixture (see :func:`noise_kernels` for what a v2 file holds).
    out
        The ``.pt2`` file to write.
    lag_ps, temperature_K
        Lag of one move and temperature of the training data.
    settings
        The v1 settings entry (``integrator``, ``needs_fast_coordinate_moves``), kept as is.
    metadata
        Provenance, stored with the kernel's config added as ``kernel``.
    simd_bits
        Vector width the compiled code may use: 256 (AVX2, the default) runs on every x86-64 CPU
        of the last decade; 0 lets AOTInductor use the widest this CPU has (AVX-512 here), which
        another machine may lack.
    log
        Where progress lines go.
    """
    out = Path(out)
    if out.suffix != ".pt2":
        raise InputError(f"a contract-v2 model file must end in .pt2, got {out}")
    kernel = kernel.eval()
    pairs = noise_kernels(kernel)
    entries = []
    files: Dict[str, List[str]] = {}
    for i, (k, weight) in enumerate(pairs):
        name = f"kernel{i}"
        normals, uniforms = k.noise_counts()
        entries.append(dict(program=name, kind=k.kind, weight=weight, normals=normals, uniforms=uniforms))
        start = time.perf_counter()
        files[name] = _compile(k, {"timewarp.contract_version": str(CONTRACT_VERSION), "timewarp.kernel": k.kind},
                               simd_bits)
        log(f"compiled {name} ({k.kind}) in {time.perf_counter() - start:.0f} s")
    total = sum(w for _, w in pairs)
    for entry in entries:
        entry["weight"] /= total
    entry = dict(settings, contract_version=CONTRACT_VERSION, elements=list(kernel.element_symbols),
                 lag_time_ps=float(lag_ps), temperature_kelvin=float(temperature_K),
                 has_density=bool(kernel.exact_density), kernels=entries,
                 metadata=dict(metadata or {}, kernel=kernel_config(kernel)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        topology = torch.jit.script(_Topology([k for k, _ in pairs], entry).eval())
    buffer = io.BytesIO()
    torch.jit.save(topology, buffer)
    from torch.export.pt2_archive._package import package_pt2

    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        package_pt2(f, aoti_files=files, extra_files={
            SETTINGS_ENTRY: json.dumps(entry, sort_keys=True, indent=1),
            TOPOLOGY_ENTRY: base64.b64encode(buffer.getvalue()).decode("ascii")})
    tmp.replace(out)
    return entry


def read_entry(data: bytes, source: str) -> Tuple[Dict[str, Any], bytes]:
    """The settings entry and the topology module's bytes of a v2 file's bytes.

    Raises
    ------
    InputError
        If the bytes are not a v2 archive.
    """
    archive = read_compiled_archive(data)
    if archive is None:
        raise InputError(f"model file {source} is not a contract-v2 archive")
    return archive


class CompiledModel:
    """A v2 file run from Python as the C++ loader runs it: topology once per bond graph, variates
    from a seeded generator, one program call per kernel with proposals.

    Parameters
    ----------
    path
        The ``.pt2`` file.
    """

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        from torch._inductor.package import load_package

        data = Path(path).read_bytes()
        self.entry, topology = read_entry(data, str(path))
        # torch logs a warning when the compiled code's vector width (AVX2, see export_compiled)
        # is not this CPU's widest; AVX2 code runs on this CPU, so it is noise here.
        package_log = logging.getLogger("torch.export.pt2_archive._package")
        level = package_log.level
        package_log.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.topology_module = torch.jit.load(io.BytesIO(topology))
                self.programs = [load_package(str(path), k["program"]) for k in self.entry["kernels"]]
        finally:
            package_log.setLevel(level)
        self.weights = torch.tensor([k["weight"] for k in self.entry["kernels"]], dtype=torch.float64)
        self.cached: Optional[List[List[Tensor]]] = None

    def topology(self, positions: Tensor, atom_types: Tensor) -> List[List[Tensor]]:
        """Each kernel's topology for this molecule (recomputed by :meth:`propose` when the bond graph changes)."""
        self.cached = self.topology_module(positions, atom_types)
        return self.cached

    def program(self, k: int, positions: Tensor, atom_types: Tensor, normals: Tensor,
                uniforms: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Kernel ``k``'s compiled program on the cached topology."""
        assert self.cached is not None
        return tuple(self.programs[k](positions, atom_types, normals, uniforms, self.cached[k][1:]))

    def run(self, k: int, positions: Tensor, atom_types: Tensor, normals: Tensor,
            uniforms: Tensor) -> Tuple[Tensor, Tensor]:
        """Kernel ``k``'s proposals and log ratios, the topology found again if the bond graph changed."""
        out = self.program(k, positions, atom_types, normals, uniforms)
        if not bool(out[2]):
            self.topology(positions, atom_types)
            out = self.program(k, positions, atom_types, normals, uniforms)
        return out[0], out[1]

    def propose(self, positions: Tensor, atom_types: Tensor, num_proposals: int,
                generator: torch.Generator) -> Tuple[Tensor, Tensor]:
        """Proposals (B, N, 3) and log ratios (B,), variates from ``generator`` in the order the C++
        loader draws them: the kernel choices (B uniforms; none for a model of one kernel), then per
        kernel with rows its normals and uniforms."""
        x = positions.to(torch.float64)
        if self.cached is None:
            self.topology(x, atom_types)
        if len(self.programs) == 1:
            if not bool(self.cached[0][0]):
                raise ValueError("the kernel of this v2 model cannot move this molecule")
            spec = self.entry["kernels"][0]
            normals = torch.randn(num_proposals, spec["normals"], dtype=torch.float64, generator=generator)
            uniforms = torch.rand(num_proposals, spec["uniforms"], dtype=torch.float64, generator=generator)
            return self.run(0, x, atom_types, normals, uniforms)
        available = torch.tensor([bool(t[0]) for t in self.cached])
        weights = torch.where(available, self.weights, torch.zeros_like(self.weights))
        if not bool(available.any()):
            raise ValueError("no kernel of this v2 model can move this molecule")
        weights = weights / weights.sum() if float(weights.sum()) > 0 else available.to(torch.float64) / available.sum()
        choice = torch.rand(num_proposals, dtype=torch.float64, generator=generator)
        kernel_of = (choice[:, None] >= torch.cumsum(weights, 0)[None, :-1]).sum(1)
        y = x[None].repeat(num_proposals, 1, 1)
        log_ratio = torch.zeros(num_proposals, dtype=torch.float64)
        for k, spec in enumerate(self.entry["kernels"]):
            rows = torch.nonzero(kernel_of == k).flatten()
            if rows.numel() == 0:
                continue
            normals = torch.randn(rows.numel(), spec["normals"], dtype=torch.float64, generator=generator)
            uniforms = torch.rand(rows.numel(), spec["uniforms"], dtype=torch.float64, generator=generator)
            y[rows], log_ratio[rows] = self.run(k, x, atom_types, normals, uniforms)
        return y, log_ratio
