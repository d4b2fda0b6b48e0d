"""Ramachandran free-energy plots (matplotlib, written as PNG)."""

from __future__ import annotations

import os
from typing import Optional, Union

import numpy as np
from openmm import unit

from .histogram import N_BINS, ramachandran_histogram

__all__ = ["plot_free_energy"]

_KB = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)


def plot_free_energy(path: Union[str, os.PathLike], phi: Optional[np.ndarray] = None,
                     psi: Optional[np.ndarray] = None, histogram: Optional[np.ndarray] = None,
                     weights: Optional[np.ndarray] = None,
                     temperature: Union[float, unit.Quantity] = 310.0, vmax: float = 30.0,
                     title: str = "", bins: int = N_BINS, show_basins: bool = True) -> None:
    """Plot F(phi, psi) = -kT ln p in kJ/mol, its minimum at 0, and save it as a PNG.

    Give either ``phi`` and ``psi`` (degrees, optional ``weights``) or a ``histogram`` indexed
    ``[phi_bin, psi_bin]`` such as the reference file's.  Empty bins are left white.

    Parameters
    ----------
    path : str or os.PathLike
        Output file.
    temperature : float or openmm.unit.Quantity
        Kelvin if a float.
    vmax : float
        Upper end of the colour scale, kJ/mol.
    show_basins : bool
        Draw the basin boundaries of :mod:`openmm_timewarp.analysis.basins`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if histogram is None:
        if phi is None or psi is None:
            raise ValueError("give phi and psi, or a histogram")
        histogram = ramachandran_histogram(phi, psi, weights, bins)
    histogram = np.asarray(histogram, dtype=np.float64)
    if unit.is_quantity(temperature):
        temperature = temperature.value_in_unit(unit.kelvin)
    with np.errstate(divide="ignore"):
        free = -_KB * temperature * np.log(histogram / histogram.sum())
    free -= free[np.isfinite(free)].min()
    free[~np.isfinite(free)] = np.nan
    edges = np.linspace(-180.0, 180.0, histogram.shape[0] + 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    mesh = ax.pcolormesh(edges, edges, free.T, cmap="viridis", vmin=0.0, vmax=vmax)
    fig.colorbar(mesh, ax=ax, label="F (kJ/mol)")
    if show_basins:
        style = dict(color="white", lw=0.8, ls="--")
        ax.axvline(0.0, **style)
        ax.plot([-180, 0], [50, 50], **style)
        ax.plot([-180, 0], [-120, -120], **style)
        ax.plot([0, 180], [100, 100], **style)
        ax.plot([0, 180], [-110, -110], **style)
    ax.set(xlabel=r"$\phi$ (deg)", ylabel=r"$\psi$ (deg)", xlim=(-180, 180), ylim=(-180, 180),
           xticks=range(-180, 181, 60), yticks=range(-180, 181, 60), title=title)
    ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=120)
    plt.close(fig)
