"""``openmm-timewarp models [MODEL ...]``: the shipped models, or the given model files.

What is printed is :meth:`openmm_timewarp.model_file.ModelFile.description`.
"""
from __future__ import annotations

import argparse
import json
from typing import Dict

__all__ = ["add_parsers"]

# Provenance keys (training's checkpoint info, a shipped model's JSON) worth a line each, in this order.
_KEYS = ("sequences", "data", "train_pairs", "val_pairs", "epochs", "acceptance_epochs", "seed", "acceptance",
         "command")


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register ``models``."""
    parser = subparsers.add_parser(
        "models", help="list the shipped models (or describe model files)",
        description="List the shipped proposal models with what each was trained on, its lag time and temperature, "
                    "and the integrator settings it recommends; or describe the given model files.")
    parser.add_argument("model", nargs="*", help="shipped model names or model files (default: all shipped)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=_run)


def _text(d: Dict) -> str:
    settings = d["integrator_settings"]
    lines = [f"{d['name']}: lag {d['lag_time_ps']:g} ps, trained at {d['temperature_K']:g} K, elements "
             f"{' '.join(d['elements'])}, up to {d['max_residues']} residues, "
             f"{'exact density (Metropolis-Hastings)' if d['exact_density'] else 'no density (exploration only)'}",
             f"  file {d['path']} (" + ("compiled, contract v2" if d["contract_version"] == 2
                                         else f"TorchScript, contract v{d['contract_version']}") + ")",
             f"  recommended integrator settings: hmc_interval {settings['hmc_interval']}, hmc_steps "
             f"{settings['hmc_steps']}, hmc_step_size {settings['hmc_step_size_ps'] * 1000:g} fs" +
             (f", hmc_minimum_mass {settings['hmc_minimum_mass_amu']:g} amu" if settings["hmc_minimum_mass_amu"] else ""),
             "  needs fast-coordinate moves: " + ("yes (its moves leave bond lengths and angles unchanged: keep "
                                                  "hmc_interval > 0)" if d["needs_fast_coordinate_moves"] else "no")]
    lines += [f"  {key}: {d['provenance'][key]}" for key in _KEYS if key in d["provenance"]]
    if not d["provenance"]:
        lines.append("  no recorded provenance (what it was trained on is unknown)")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    from ..model_file import ModelFile, available_models

    names = args.model or available_models()
    described = [ModelFile.open(name).description() for name in names]
    if args.json:
        print(json.dumps(described, indent=1))
        return 0
    if not names:
        print("no shipped models in this installation; train one with 'openmm-timewarp generate-data', 'train' and "
              "'export', then pass the file with --model")
    for d in described:
        print(_text(d))
    return 0
