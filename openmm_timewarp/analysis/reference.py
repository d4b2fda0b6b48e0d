"""Access to the small equilibrium references shipped in ``openmm_timewarp/reference``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["Reference", "load_reference", "reference_name", "REFERENCE_DIR"]

REFERENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "reference")


@dataclass(frozen=True)
class Reference:
    """Reweighted (phi, psi) histograms with basin populations and their error bars.

    ``histograms[r]`` and ``residue_populations[r]`` belong to residue r along the chain;
    ``histogram`` and ``populations`` are those of the first residue (all there is for ACE-X-NME).
    """

    histograms: np.ndarray
    residue_populations: List[Dict[str, Tuple[float, float]]]
    metadata: dict

    @property
    def histogram(self) -> np.ndarray:
        return self.histograms[0]

    @property
    def populations(self) -> Dict[str, Tuple[float, float]]:
        return self.residue_populations[0]


def reference_name(sequence: str, temperature: float = 310.0) -> str:
    """Name of the reference of capped ``sequence``, e.g. ``ace-ala-nme_310K``, ``ace-gly-met-nme_310K``."""
    from ..systems import ONE_TO_THREE

    return "ace-" + "".join(ONE_TO_THREE[x].lower() + "-" for x in sequence.upper()) + f"nme_{temperature:g}K"


def load_reference(name: str = "ace-ala-nme_310K") -> Reference:
    """Load ``<name>.npz`` made by ``scripts/make_reference.py``.

    Returns
    -------
    Reference
        ``histograms`` is (n_residues, 36, 36) indexed ``[residue, phi_bin, psi_bin]``;
        ``residue_populations[r]`` maps basin name -> (population, standard error).
    """
    path = os.path.join(REFERENCE_DIR, name + ".npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no reference {path}; make it with scripts/make_reference.py")
    with np.load(path) as data:
        names = [str(n) for n in data["basin_names"]]
        # One-residue files store a single (36, 36) histogram and flat populations.
        histograms = np.array(data["histogram"]).reshape(-1, *data["histogram"].shape[-2:])
        pops = np.reshape(data["populations"], (len(histograms), len(names)))
        errors = np.reshape(data["population_errors"], pops.shape)
        residue_pops = [{n: (float(p), float(e)) for n, p, e in zip(names, pr, er)}
                        for pr, er in zip(pops, errors)]
        return Reference(histograms, residue_pops, json.loads(str(data["metadata"])))
