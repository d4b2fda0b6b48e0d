"""``generate-data``, ``train``, ``train-backbone``, ``train-tito`` and ``export``: the training pipeline's own command lines, forwarded."""
from __future__ import annotations

import argparse
import sys
from typing import Dict, List

__all__ = ["FORWARDED", "add_parsers", "forward"]

#: Subcommand -> (module, what it does).
FORWARDED: Dict[str, tuple] = {
    "generate-data": ("openmm_timewarp.data.generate", "MD training pairs x(t), x(t+tau) for a peptide"),
    "train": ("openmm_timewarp.training.train", "train a Timewarp flow on generated pairs"),
    "train-backbone": ("openmm_timewarp.training.backbone", "fit the backbone pivot density to generated frames"),
    "train-tito": ("openmm_timewarp.training.tito", "train a TITO transfer operator on generated trajectories"),
    "export": ("openmm_timewarp.models.export", "export a training checkpoint to a TorchScript model file"),
}


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """List the forwarded subcommands in the main help (their options live in their own parsers)."""
    for name, (module, help_text) in FORWARDED.items():
        subparsers.add_parser(name, help=f"{help_text} (python -m {module})", add_help=False)


def forward(name: str, argv: List[str]) -> int:
    """Run the subcommand's module CLI with ``argv``; returns its exit status."""
    import importlib

    module_name = FORWARDED[name][0]
    module = importlib.import_module(module_name)
    # export's main() reads sys.argv itself; the others take argv but get it the same way.
    saved = sys.argv
    sys.argv = [f"openmm-timewarp {name}"] + argv
    try:
        module.main()
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
    return 0
