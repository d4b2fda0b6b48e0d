"""Reading the equilibrium references shipped in this folder (``<name>.npz``).

A reference holds reweighted (phi, psi) histograms of a capped peptide with basin populations and
their error bars; :mod:`openmm_timewarp.reference.make` writes them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np

__all__ = ["Reference", "load_reference", "reference_name", "available_references", "REFERENCE_DIR"]

#: The folder of the shipped references (this package's folder).
REFERENCE_DIR = os.path.dirname(os.path.abspath(__file__))


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
        """The (36, 36) histogram of the first residue, ``[phi_bin, psi_bin]``."""
        return self.histograms[0]

    @property
    def populations(self) -> Dict[str, Tuple[float, float]]:
        """Basin name -> (population, standard error) of the first residue."""
        return self.residue_populations[0]


def reference_name(sequence: str, temperature: float = 310.0) -> str:
    """Name of the reference of capped ``sequence``, e.g. ``ace-ala-nme_310K``, ``ace-gly-met-nme_310K``."""
    from ..systems import ONE_TO_THREE

    return "ace-" + "".join(ONE_TO_THREE[x].lower() + "-" for x in sequence.upper()) + f"nme_{temperature:g}K"


def available_references() -> List[str]:
    """Names of the references in :data:`REFERENCE_DIR`, sorted."""
    return sorted(f[:-4] for f in os.listdir(REFERENCE_DIR) if f.endswith(".npz") and not f.endswith(".tmp.npz"))


def load_reference(name: str = "ace-ala-nme_310K") -> Reference:
    """Load ``<name>.npz`` from :data:`REFERENCE_DIR`, or the file ``name`` if it ends in ``.npz``
    (e.g. a reference ``make-reference --out`` wrote elsewhere).

    Returns
    -------
    Reference
        ``histograms`` is (n_residues, 36, 36) indexed ``[residue, phi_bin, psi_bin]``;
        ``residue_populations[r]`` maps basin name -> (population, standard error).

    Raises
    ------
    FileNotFoundError
        If there is no such reference (``openmm-timewarp make-reference`` makes one).
    """
    path = name if name.endswith(".npz") else os.path.join(REFERENCE_DIR, name + ".npz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"no reference {path}; make it with 'openmm-timewarp make-reference'")
    with np.load(path) as data:
        names = [str(n) for n in data["basin_names"]]
        # One-residue files store a single (36, 36) histogram and flat populations.
        histograms = np.array(data["histogram"]).reshape(-1, *data["histogram"].shape[-2:])
        pops = np.reshape(data["populations"], (len(histograms), len(names)))
        errors = np.reshape(data["population_errors"], pops.shape)
        residue_pops = [{n: (float(p), float(e)) for n, p, e in zip(names, pr, er)}
                        for pr, er in zip(pops, errors)]
        return Reference(histograms, residue_pops, json.loads(str(data["metadata"])))
