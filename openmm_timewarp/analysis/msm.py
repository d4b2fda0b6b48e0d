"""Kinetics of basin trajectories: Markov state models (deeptime) over the Ramachandran basins.

A residue's trajectory of basin labels (:func:`~.basins.assign_basins`) gives a reversible
maximum-likelihood MSM at each lag; its implied timescales t_i = -lag / ln |lambda_i| should not
depend on the lag once the model is Markovian, which the plot of :func:`plot_implied_timescales`
shows. MD data started out of equilibrium (a few trajectories from every basin) can be given the
reference populations as the MSM's stationary distribution: with detailed balance, the exits that
MD observes then fix the rates.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from .basins import BASIN_NAMES

__all__ = ["basin_msm", "implied_timescales", "mean_first_passage_ps", "its_lags", "residue_timescales",
           "plot_implied_timescales"]

N_BASINS = len(BASIN_NAMES)


def basin_msm(trajectories: Sequence[np.ndarray], lag_steps: int, stationary: Optional[np.ndarray] = None):
    """The reversible maximum-likelihood MSM (deeptime) of basin-label trajectories at ``lag_steps``.

    With ``stationary`` (basin populations) the MSM has that stationary distribution on the basins
    it holds; without, it is estimated on the largest connected set. Returns the model and the
    basin index of each of its states, or (None, []) where fewer than two basins are connected.
    """
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    usable = [np.asarray(t, dtype=np.int32) for t in trajectories if len(t) > lag_steps]
    if not usable:
        return None, []
    counts = TransitionCountEstimator(lagtime=lag_steps, count_mode="sliding", n_states=N_BASINS).fit(
        usable).fetch_model()
    if stationary is not None:
        keep = np.flatnonzero((np.asarray(stationary) > 0) & (counts.count_matrix.sum(1) > 0))
        counts = counts.submodel(keep)
        if counts.n_states < 2:
            return None, []
        pi = np.asarray(stationary, dtype=np.float64)[counts.state_symbols]
        estimator = MaximumLikelihoodMSM(reversible=True, stationary_distribution_constraint=pi / pi.sum())
    else:
        counts = counts.submodel_largest()
        if counts.n_states < 2:
            return None, []
        estimator = MaximumLikelihoodMSM(reversible=True)
    try:
        msm = estimator.fit(counts).fetch_model()
    except (ValueError, RuntimeError):  # deeptime refuses counts that cannot meet the constraint
        return None, []
    # The estimator may keep only a connected part of the states it was given.
    symbols = msm.count_model.state_symbols if msm.count_model is not None else counts.state_symbols
    return msm, [int(s) for s in symbols]


def implied_timescales(trajectories: Sequence[np.ndarray], lag_steps: int, step_ps: float,
                       stationary: Optional[np.ndarray] = None, k: int = 2) -> List[float]:
    """The ``k`` slowest implied timescales (ps) of :func:`basin_msm`; NaN where there are fewer processes."""
    msm, states = basin_msm(trajectories, lag_steps, stationary)
    # deeptime gives timescales and passage times in steps of the trajectories.
    timescales = [] if msm is None else list(msm.timescales(k=min(k, msm.n_states - 1)) * step_ps)
    return [float(t) for t in timescales] + [float("nan")] * (k - len(timescales))


def mean_first_passage_ps(trajectories: Sequence[np.ndarray], lag_steps: int, step_ps: float, source: str,
                          target: str, stationary: Optional[np.ndarray] = None) -> float:
    """Mean first passage time (ps) from basin ``source`` to basin ``target`` of :func:`basin_msm`;
    NaN where either basin is not in the model."""
    msm, states = basin_msm(trajectories, lag_steps, stationary)
    a, b = BASIN_NAMES.index(source), BASIN_NAMES.index(target)
    if msm is None or a not in states or b not in states:
        return float("nan")
    return float(msm.mfpt([states.index(a)], [states.index(b)]) * step_ps)


def its_lags(n_frames: int, candidates: Sequence[int] = (1, 2, 5, 10, 20, 50, 100)) -> List[int]:
    """The lags (frames) of an implied-timescale plot that leave at least 20 lags' worth of frames."""
    return [lag for lag in candidates if lag * 20 <= n_frames] or [1]


def residue_timescales(phi: np.ndarray, psi: np.ndarray, frame_ps: float, k: int = 2) -> Dict:
    """Implied timescales of each residue's basin MSM at :func:`its_lags`: ``lags_ps`` and, per
    residue, a (lags, k) list of timescales in ps (NaN where not estimable)."""
    from .basins import assign_basins

    labels = assign_basins(phi, psi)
    lags = its_lags(len(labels))
    return {"lags_ps": [lag * frame_ps for lag in lags],
            "timescales_ps": [[implied_timescales([labels[:, r]], lag, frame_ps, k=k) for lag in lags]
                              for r in range(labels.shape[1])]}


def plot_implied_timescales(path: Union[str, os.PathLike], lags_ps: Sequence[float],
                            curves: Dict[str, np.ndarray], title: str = "") -> None:
    """Plot implied timescales against the MSM lag (log axes) and save a PNG.

    ``curves`` maps a label (e.g. ``"ALA2 TITO"``) to a (lags, k) array of timescales in ps; a
    label may also be given its own lags as ``(lags_ps, timescales)``. The grey area below the
    diagonal holds timescales shorter than the lag, which an MSM cannot resolve.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    all_lags = list(lags_ps)
    for n, (label, values) in enumerate(curves.items()):
        lags, values = (values if isinstance(values, tuple) else (lags_ps, values))
        all_lags += list(lags)
        values = np.asarray(values, dtype=np.float64).reshape(len(lags), -1)
        for i in range(values.shape[1]):
            ax.plot(lags, values[:, i], marker="o", color=f"C{n}", linestyle="-" if i == 0 else "--",
                    label=label if i == 0 else None)
    span = np.array([min(all_lags), max(all_lags)])
    ax.fill_between(span, span * 1e-3, span, color="0.85", zorder=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("MSM lag (ps)")
    ax.set_ylabel("implied timescale (ps); solid t1, dashed t2")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
