"""Effective sample sizes and basin populations (DESIGN.md section 5).

The ESS of an observable is n / g with g the statistical inefficiency (1 + 2 * integrated
autocorrelation time, in frames) from :func:`pymbar.timeseries.statistical_inefficiency`, which
sums the normalised autocorrelation function until its first zero crossing.  A sampler is judged
on the minimum ESS over the observables of :func:`observables`: sin and cos of every backbone
phi and psi, the basin indicators, and the first TICA component.

A basin that is visited rarely gets at most one effective sample per entry: a handful of
one-frame blips otherwise look like many independent visits to the autocorrelation estimator.
"""

from __future__ import annotations

import logging
from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from .basins import basin_indicators

__all__ = ["statistical_inefficiency", "effective_sample_size", "basin_entries",
           "dihedral_features", "fit_tica", "observables", "ess_report", "basin_populations"]


def _timeseries():
    """pymbar.timeseries, imported on first use without its import-time warnings (no JAX, etc.)."""
    pymbar_log = logging.getLogger("pymbar")
    level = pymbar_log.level
    pymbar_log.setLevel(logging.ERROR)
    try:
        from pymbar import timeseries
    finally:
        pymbar_log.setLevel(level)
    return timeseries


def statistical_inefficiency(x: np.ndarray) -> float:
    """Statistical inefficiency g >= 1 of a time series (frames per independent sample).

    A constant series carries no information about its fluctuations; it returns ``inf``.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size < 2 or np.ptp(x) == 0.0:
        return float("inf")
    return float(_timeseries().statistical_inefficiency(x))


def effective_sample_size(x: np.ndarray) -> float:
    """n / g for one observable; 0 for a constant series."""
    g = statistical_inefficiency(x)
    return 0.0 if not np.isfinite(g) else len(np.ravel(x)) / g


def basin_entries(indicator: np.ndarray) -> int:
    """Number of entries into a basin: 0 -> 1 switches, plus one if the series starts inside."""
    ind = np.asarray(indicator, dtype=bool).ravel()
    if ind.size == 0:
        return 0
    return int(ind[0]) + int(np.count_nonzero(~ind[:-1] & ind[1:]))


def dihedral_features(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """(sin phi, cos phi, sin psi, cos psi) of every residue, shape (n_frames, 4 * n_residues).

    ``phi`` and ``psi`` are in degrees, shape (n_frames,) or (n_frames, n_residues).
    """
    phi = np.radians(np.asarray(phi, dtype=np.float64).reshape(len(phi), -1))
    psi = np.radians(np.asarray(psi, dtype=np.float64).reshape(len(psi), -1))
    return np.concatenate([np.sin(phi), np.cos(phi), np.sin(psi), np.cos(psi)], axis=1)


def fit_tica(features: Sequence[np.ndarray], lagtime: int, dim: int = 1):
    """Fit deeptime TICA on one or several feature trajectories (e.g. reference MD).

    Parameters
    ----------
    features : sequence of numpy.ndarray
        Trajectories of shape (n_frames, n_features), e.g. from :func:`dihedral_features` of
        phi *and* psi.
    lagtime : int
        TICA lag in frames.
    dim : int, optional
        Number of components kept.

    Returns
    -------
    deeptime.decomposition.CovarianceKoopmanModel
        Its ``transform(features)[:, 0]`` is the slowest linear collective variable.
    """
    from deeptime.decomposition import TICA

    if isinstance(features, np.ndarray):
        features = [features]
    return TICA(lagtime=lagtime, dim=dim).fit(list(features)).fetch_model()


def observables(phi: np.ndarray, psi: np.ndarray, tica_model=None) -> Dict[str, np.ndarray]:
    """The observables of DESIGN.md section 5 for one trajectory.

    Parameters
    ----------
    phi, psi : numpy.ndarray
        Degrees, shape (n_frames,) or (n_frames, n_residues).
    tica_model : optional
        A model from :func:`fit_tica`; adds its first component as ``"tica1"``.

    Returns
    -------
    dict
        Name -> time series.  Basin indicators (``"basin:<name>"``) are those of every residue,
        named ``"basin:<name>:<residue>"`` when there are several residues.
    """
    phi2 = np.asarray(phi, dtype=np.float64).reshape(len(phi), -1)
    psi2 = np.asarray(psi, dtype=np.float64).reshape(len(psi), -1)
    features = dihedral_features(phi2, psi2)
    n_res = phi2.shape[1]
    names = [f"{f}({a}{'' if n_res == 1 else r})" for f, a in (("sin", "phi"), ("cos", "phi"),
                                                              ("sin", "psi"), ("cos", "psi"))
             for r in range(n_res)]
    result = dict(zip(names, features.T))
    for r in range(n_res):
        suffix = "" if n_res == 1 else f":{r}"
        for name, series in basin_indicators(phi2[:, r], psi2[:, r]).items():
            result[f"basin:{name}{suffix}"] = series
    if tica_model is not None:
        result["tica1"] = tica_model.transform(features)[:, 0]
    return result


def ess_report(series: Mapping[str, np.ndarray],
               required_basins: Optional[Sequence[str]] = None) -> Dict[str, float]:
    """ESS of every observable, with the one-sample-per-entry cap on basin indicators.

    Parameters
    ----------
    series : mapping
        Name -> time series, e.g. from :func:`observables`.
    required_basins : sequence of str, optional
        Basin indicator names that count towards ``"min"`` even when never visited (ESS 0):
        the basins the reference has.  By default every basin indicator counts.

    Returns
    -------
    dict
        Name -> ESS, plus ``"min"``: the minimum over the counted observables.
    """
    report: Dict[str, float] = {}
    for name, x in series.items():
        ess = effective_sample_size(x)
        if name.startswith("basin:"):
            ess = min(ess, float(basin_entries(x)))
        report[name] = ess
    counted = [v for k, v in report.items()
               if not k.startswith("basin:") or required_basins is None or k in required_basins]
    report["min"] = float(min(counted)) if counted else 0.0
    return report


def basin_populations(phi: np.ndarray, psi: np.ndarray) -> Dict[str, tuple]:
    """Basin populations of one residue with error bars from the indicator ESS.

    The error of population p is sqrt(p (1 - p) / ESS).  ESS is the autocorrelation ESS of the
    basin indicator, capped at N_entries / (p (1 - p)): counting each entry as one independent
    visit (a renewal process), Var(p) = p^2 (1 - p)^2 / N_entries, which is exact for iid
    frames, so the cap only bites where the autocorrelation estimate over-counts few long or
    clustered visits.  (:func:`ess_report` applies the stricter DESIGN.md rule, ESS <=
    N_entries, to judge samplers.)  A basin never visited gets (0, nan).

    Returns
    -------
    dict
        Basin name (and ``"phi>0"``) -> (population, standard error).
    """
    result = {}
    for name, ind in basin_indicators(np.ravel(phi), np.ravel(psi)).items():
        p = float(ind.mean())
        if p in (0.0, 1.0):
            result[name] = (p, float("nan"))
            continue
        ess = min(effective_sample_size(ind), basin_entries(ind) / (p * (1 - p)))
        result[name] = (p, float(np.sqrt(p * (1 - p) / ess)))
    return result
