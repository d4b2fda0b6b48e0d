"""Trained proposal models shipped with the package.

Each model is a TorchScript file following the proposal-model contract, stored beside this module
together with a JSON file of the same name that records what it was trained on and how.
"""
from __future__ import annotations

import json
import os
from typing import Dict, List

_HERE = os.path.dirname(os.path.abspath(__file__))

#: The model ``sample`` and ``openmm-timewarp sample`` use unless told otherwise.
DEFAULT_MODEL = "dipeptides"


def available_models() -> List[str]:
    """Names of the shipped models, sorted."""
    return sorted(f[:-3] for f in os.listdir(_HERE) if f.endswith(".pt"))


def model_info(name: str) -> Dict:
    """The recorded provenance of a shipped model (training data, command, seed, measured quality)."""
    path = os.path.join(_HERE, name + ".json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def model_path(model: str | os.PathLike) -> str:
    """Resolve a model argument to the absolute path of a model file.

    Parameters
    ----------
    model
        The path of a TorchScript model file, or the name of a shipped model (see
        :func:`available_models`).

    Returns
    -------
    str
        The absolute path of the model file.

    Raises
    ------
    FileNotFoundError
        If ``model`` is neither an existing file nor the name of a shipped model.
    """
    model = os.fspath(model)
    if os.path.isfile(model):
        return os.path.abspath(model)
    shipped = os.path.join(_HERE, model + ".pt")
    if os.path.isfile(shipped):
        return shipped
    names = ", ".join(available_models()) or "none"
    raise FileNotFoundError(f"no model file '{model}' and no shipped model of that name (shipped models: {names})")


def load_module(path: str | os.PathLike):
    """Load a TorchScript model file on the CPU.

    Raises
    ------
    ValueError
        If the file cannot be read as a TorchScript module (missing, truncated or not a model).
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that TorchScript is deprecated
        try:
            return torch.jit.load(os.fspath(path), map_location="cpu")
        except Exception as error:  # torch raises RuntimeError or ValueError for corrupt files
            raise ValueError(f"cannot load model file {os.fspath(path)}: {error}") from None
