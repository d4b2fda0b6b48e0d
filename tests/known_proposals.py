"""TorchScript test proposals with known densities (not flows), for testing the integrator exactly.

``GaussianDriftProposal`` moves every coordinate by ``drift + sigma(x) * noise`` with a
position-dependent width, so q(y | x) != q(x | y) and the Hastings correction matters; its log
ratio is exact. ``sign=-1`` flips the log ratio, which must make the sampling tests fail;
``density=False`` makes it a surrogate without a density (NaN log ratios).
"""
from __future__ import annotations

import json
import math
import os
import warnings
from typing import List, Optional, Tuple

import torch


class GaussianDriftProposal(torch.nn.Module):
    def __init__(self, drift: float, width: float, elements: List[str], lag_ps: float = 100.0,
                 temperature: float = 300.0, sign: float = 1.0, version: int = 1, density: bool = True):
        super().__init__()
        self.drift = drift
        self.width = width
        self.element_list = elements
        self.lag = lag_ps
        self.temperature = temperature
        self.sign = sign
        self.version = version
        self.density = density

    def sigma(self, x: torch.Tensor) -> torch.Tensor:
        return self.width * (1.0 + 0.5 * torch.tanh(x))

    def log_q(self, to: torch.Tensor, frm: torch.Tensor) -> torch.Tensor:
        s = self.sigma(frm)
        z = (to - frm - self.drift) / s
        return (-0.5 * z * z - torch.log(s) - 0.5 * math.log(2 * math.pi)).sum(dim=(-1, -2))

    def forward(self, positions: torch.Tensor, atom_types: torch.Tensor,
                num_proposals: int) -> Tuple[torch.Tensor, torch.Tensor]:
        x = positions.unsqueeze(0)
        noise = torch.randn(num_proposals, positions.shape[0], 3, dtype=torch.float64)
        y = x + self.drift + self.sigma(x) * noise
        log_ratio = self.log_q(x, y) - self.log_q(y, x)
        if not self.density:
            return y, torch.full_like(log_ratio, float("nan"))
        return y, self.sign * log_ratio

    @torch.jit.export
    def elements(self) -> List[str]:
        return self.element_list

    @torch.jit.export
    def lag_time_ps(self) -> float:
        return self.lag

    @torch.jit.export
    def temperature_kelvin(self) -> float:
        return self.temperature

    @torch.jit.export
    def has_density(self) -> bool:
        return self.density

    @torch.jit.export
    def contract_version(self) -> int:
        return self.version


def save(module: torch.nn.Module, path: str | os.PathLike, settings: Optional[dict] = None) -> str:
    """Script and save a test proposal; returns the path as a string.

    ``settings``, if given, is written as the archive's ``timewarp.json`` entry (the integrator
    settings the model recommends, docs/model-contract.md).
    """
    extra = {} if settings is None else {"timewarp.json": json.dumps(settings)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch 2.13 deprecates TorchScript
        torch.jit.save(torch.jit.script(module), str(path), _extra_files=extra)
    return str(path)


if __name__ == "__main__":
    # Writes a test proposal file, e.g. the argon model of the C++ tests:
    #   python tests/proposals.py OUT.pt [--elements H C N O] [--drift 0.2] [--width 0.4]
    import argparse

    parser = argparse.ArgumentParser(description="Write an asymmetric Gaussian test proposal (TorchScript).")
    parser.add_argument("out")
    parser.add_argument("--elements", nargs="+", default=["Ar"])
    parser.add_argument("--drift", type=float, default=0.2, help="nm")
    parser.add_argument("--width", type=float, default=0.4, help="nm")
    parser.add_argument("--temperature", type=float, default=300.0, help="K")
    parser.add_argument("--settings", type=json.loads, default=None, help="JSON of the timewarp.json entry")
    args = parser.parse_args()
    save(GaussianDriftProposal(args.drift, args.width, args.elements, temperature=args.temperature), args.out,
         args.settings)


class RejectAllProposal(GaussianDriftProposal):
    """Proposals that are certain rejections (log ratio -1e30): only hybrid Monte Carlo moves the chain."""

    def forward(self, positions: torch.Tensor, atom_types: torch.Tensor,
                num_proposals: int) -> Tuple[torch.Tensor, torch.Tensor]:
        y = positions.unsqueeze(0).repeat(num_proposals, 1, 1)
        return y, torch.full((num_proposals,), -1e30, dtype=torch.float64)
