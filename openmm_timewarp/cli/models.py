"""``openmm-timewarp models [MODEL ...]``: the shipped models, or the given model files."""
from __future__ import annotations

import argparse
import json
from typing import Dict

__all__ = ["add_parser", "describe", "run"]

# Provenance keys (training's checkpoint info, a shipped model's JSON) worth a line each, in this order.
_KEYS = ("sequences", "data", "train_pairs", "val_pairs", "epochs", "acceptance_epochs", "seed", "acceptance",
         "command")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("models", help="list the shipped models (or describe model files)",
                                   description="List the shipped proposal models with what each was trained on, "
                                               "its lag time and temperature; or describe the given model files.")
    parser.add_argument("model", nargs="*", help="shipped model names or model files (default: all shipped)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=run)


def describe(model: str) -> Dict:
    """What a model (name or file) says about itself, merged with its shipped provenance file."""
    from ..api import resolve_model
    from ..trained import available_models, model_info

    facts = resolve_model(model)
    info = dict(model_info(model) if model in available_models() else {})
    info.update(facts.metadata)
    return dict(name=model, path=facts.path, elements=facts.elements, lag_time_ps=facts.lag_time_ps,
                temperature_K=facts.temperature_K, exact_density=facts.has_density,
                max_residues=facts.max_residues, provenance=info)


def run(args: argparse.Namespace) -> int:
    from ..trained import available_models

    names = args.model or available_models()
    described = [describe(name) for name in names]
    if args.json:
        print(json.dumps(described, indent=1))
        return 0
    if not names:
        print("no shipped models in this installation; train one with 'openmm-timewarp generate-data', 'train' and "
              "'export', then pass the file with --model")
    for d in described:
        print(f"{d['name']}: lag {d['lag_time_ps']:g} ps, trained at {d['temperature_K']:g} K, elements "
              f"{' '.join(d['elements'])}, up to {d['max_residues']} residues, "
              f"{'exact density (Metropolis-Hastings)' if d['exact_density'] else 'no density (exploration only)'}")
        print(f"  file {d['path']}")
        for key in _KEYS:
            if key in d["provenance"]:
                print(f"  {key}: {d['provenance'][key]}")
        if not d["provenance"]:
            print("  no recorded provenance (what it was trained on is unknown)")
    return 0
