"""Metastable basins of the Ramachandran plane.

Angles are in degrees in [-180, 180).  The basins tile the whole plane, so every frame has
exactly one label.  Boundaries (degrees) and the minima they hold, as seen in the 310 K
well-tempered metadynamics free-energy surface of ACE-ALA-NME (amber14 + OBC2):

=======  =============================================  ========================================
name     region                                         minima, F (kJ/mol) above the global one
=======  =============================================  ========================================
beta     phi < 0 and (psi >= 50 or psi < -120)          PPII (-65, 150) 0, C5 (-150, 160) 4
alpha_R  phi < 0 and -120 <= psi < 50                   alpha_R (-70, -15) 2
alpha_L  phi >= 0 and -110 <= psi < 100                 alpha_L (60, 30) 7, with the C7ax shoulder
                                                        (70, -70) 17: no barrier between them
PII_L    phi >= 0 and (psi >= 100 or psi < -110)        (60, 180) 13, the mirror image of PPII
=======  =============================================  ========================================

The phi < 0 split is the usual convention (alpha_R: -120 < psi < 50).  The phi > 0 half is
split at the two saddles along phi = 60 (psi about 105 and -115, 20-22 kJ/mol): alpha_L holds
about 2.4% of the population at 310 K and PII_L about 0.25%.  Both are reached from phi < 0
only by the slow phi flip; ``"phi>0"`` (:data:`PHI_POSITIVE`) merges them where an estimator
needs more statistics.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

__all__ = ["BASIN_NAMES", "PHI_POSITIVE", "assign_basins", "basin_indicators"]

BASIN_NAMES: Tuple[str, ...] = ("beta", "alpha_R", "alpha_L", "PII_L")
PHI_POSITIVE: Tuple[str, ...] = ("alpha_L", "PII_L")


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (np.asarray(angle, dtype=np.float64) + 180.0) % 360.0 - 180.0


def assign_basins(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Label every (phi, psi) pair with the index of its basin in :data:`BASIN_NAMES`.

    Parameters
    ----------
    phi, psi : array_like
        Dihedrals in degrees, any shape (wrapped to [-180, 180) first).

    Returns
    -------
    numpy.ndarray
        Integer labels with the shape of ``phi``.
    """
    phi, psi = _wrap(phi), _wrap(psi)
    alpha_r = (psi >= -120.0) & (psi < 50.0)
    alpha_l = (psi >= -110.0) & (psi < 100.0)
    return np.where(phi < 0.0, np.where(alpha_r, 1, 0), np.where(alpha_l, 2, 3)).astype(np.int64)


def basin_indicators(phi: np.ndarray, psi: np.ndarray) -> Dict[str, np.ndarray]:
    """Indicator time series (float 0/1) of every basin and of the merged phi > 0 region.

    ``phi`` and ``psi`` are one residue's dihedrals, shape (n_frames,), degrees.
    """
    labels = assign_basins(phi, psi)
    indicators = {name: (labels == i).astype(np.float64) for i, name in enumerate(BASIN_NAMES)}
    indicators["phi>0"] = (_wrap(phi) >= 0.0).astype(np.float64)
    return indicators
