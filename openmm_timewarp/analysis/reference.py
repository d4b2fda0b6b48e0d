"""Access to the small equilibrium references shipped in ``openmm_timewarp/reference``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

__all__ = ["Reference", "load_reference", "REFERENCE_DIR"]

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference")


@dataclass(frozen=True)
class Reference:
    """A reweighted (phi, psi) histogram with basin populations and their error bars."""

    histogram: np.ndarray
    populations: Dict[str, Tuple[float, float]]
    metadata: dict


def load_reference(name: str = "ace-ala-nme_310K") -> Reference:
    """Load ``<name>.npz`` made by ``scripts/make_reference.py``.

    Returns
    -------
    Reference
        ``histogram`` is (36, 36) indexed ``[phi_bin, psi_bin]``; ``populations`` maps basin
        name -> (population, standard error).
    """
    path = os.path.join(REFERENCE_DIR, name + ".npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no reference {path}; make it with scripts/make_reference.py")
    with np.load(path) as data:
        pops = {str(n): (float(p), float(e)) for n, p, e in
                zip(data["basin_names"], data["populations"], data["population_errors"])}
        return Reference(np.array(data["histogram"]), pops, json.loads(str(data["metadata"])))
