"""Two run folders side by side, as a table and a PNG (what ``openmm-timewarp compare`` writes).

For each residue: the Jensen-Shannon divergence between the two (phi, psi) histograms (36 x 36
bins, nats), each run's divergence from the shipped reference where there is one (``openmm_timewarp/reference``:
ACE-ALA-NME and validation dipeptides at 310 K), the minimum ESS over the DESIGN.md observables per second of each run's recorded sampling
wall time, and the basin populations with their error bars.
"""
from __future__ import annotations

import os
import warnings
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from openmm import unit

from ..analysis import (BASIN_NAMES, backbone_dihedrals, ess_report, jensen_shannon, load_reference, observables,
                        ramachandran_histogram, reference_name)
from ..errors import InputError
from .folder import load_run

__all__ = ["check_comparable", "compare_runs", "comparison_table", "default_output", "plot_comparison",
           "write_comparison"]

PathLike = Union[str, os.PathLike]

_KB = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)


def _reference(summary: Dict) -> Optional[np.ndarray]:
    """The shipped reference histograms (one per residue) for this peptide and temperature, if any."""
    try:
        return load_reference(reference_name(summary["sequence"], round(summary["temperature_K"]))).histograms
    except (FileNotFoundError, KeyError):  # no reference, or a residue without a one-letter code
        return None


def _label(folder: str, summary: Dict) -> str:
    kind = "MD" if summary["command"] == "md" else ("Timewarp explore (BIASED)" if summary.get("biased")
                                                    else "Timewarp MH")
    return f"{os.path.basename(os.path.normpath(folder))} [{kind}]"


def check_comparable(sa: Dict, sb: Dict, atoms_a: int, atoms_b: int, allow_mismatch: bool = False) -> None:
    """Refuse two runs whose distributions differ by construction; warn about different models.

    Different peptides (sequence, termini, atoms) are always refused; different temperatures
    or force fields unless ``allow_mismatch``.  Different models are what a comparison may be
    for: a :class:`UserWarning` and a line in the table say so.
    """
    if atoms_a != atoms_b or sa["sequence"] != sb["sequence"] or sa.get("termini") != sb.get("termini"):
        raise InputError(f"the runs hold different peptides ({sa['sequence']}, {sa.get('termini', 'caps')}, {atoms_a} "
                         f"atoms vs {sb['sequence']}, {sb.get('termini', 'caps')}, {atoms_b} atoms)")
    mismatched = []
    if abs(sa["temperature_K"] - sb["temperature_K"]) > 0.5:
        mismatched.append(f"temperatures ({sa['temperature_K']:g} K vs {sb['temperature_K']:g} K)")
    if sa.get("force_field") != sb.get("force_field"):
        fields = (s.get("force_field", "unrecorded") for s in (sa, sb))
        mismatched.append("force fields ({} vs {})".format(*fields))
    if mismatched and not allow_mismatch:
        raise InputError(f"the runs sample different distributions: different {' and '.join(mismatched)}; pass "
                         "--allow-mismatch (allow_mismatch=True) to compare them anyway")
    if sa.get("model") and sb.get("model") and sa.get("model_path") != sb.get("model_path"):
        warnings.warn(f"the runs use different models ({sa['model']} vs {sb['model']})", UserWarning, stacklevel=3)


def compare_runs(folder_a: PathLike, folder_b: PathLike, allow_mismatch: bool = False) -> Dict:
    """Statistics of two run folders; see the module docstring.

    Returns
    -------
    dict
        ``labels``, ``summaries``, ``histograms`` (per run, per residue), ``jsd`` (per residue),
        ``jsd_reference`` (per run, per residue, or None), ``ess`` and ``ess_per_s`` (per run:
        the minimum ESS over all observables and over the sin/cos of the dihedrals), ``residues``.

    Raises
    ------
    InputError
        If a folder is not a run folder, or the runs are not comparable (:func:`check_comparable`).
    """
    runs = [load_run(folder) for folder in (folder_a, folder_b)]
    (sa, ta), (sb, tb) = runs
    check_comparable(sa, sb, ta.n_atoms, tb.n_atoms, allow_mismatch)
    result: Dict = dict(labels=[_label(f, s) for f, (s, _) in zip((folder_a, folder_b), runs)],
                        summaries=[sa, sb], residues=sa["residues"], histograms=[], ess=[], ess_per_s=[],
                        jsd_reference=[])
    for summary, trajectory in runs:
        phi, psi = backbone_dihedrals(trajectory)
        hists = [ramachandran_histogram(phi[:, r], psi[:, r]) for r in range(phi.shape[1])]
        reference = _reference(summary)
        result["histograms"].append(hists)
        result["jsd_reference"].append(None if reference is None else [jensen_shannon(h, r) for h, r in zip(hists, reference)])
        series = observables(phi, psi)
        # DESIGN.md's minimum counts every basin (0 until all are visited); the dihedral-only minimum
        # still ranks two short runs that have not yet visited every basin.
        ess = (ess_report(series)["min"], ess_report(series, required_basins=())["min"])
        result["ess"].append(ess)
        result["ess_per_s"].append(tuple(e / summary["wall_time_s"] if summary["wall_time_s"] > 0 else float("nan")
                                         for e in ess))
    result["jsd"] = [jensen_shannon(a, b) for a, b in zip(*result["histograms"])]
    return result


def comparison_table(result: Dict) -> str:
    """The comparison of :func:`compare_runs` as a text table, one block per residue."""
    (sa, sb), (la, lb) = result["summaries"], result["labels"]
    width = max(len(la), len(lb), 12)

    def row(name: str, a, b) -> str:
        return f"{name:28s} {str(a):>{width}s} {str(b):>{width}s}"

    acc = [f"{s['acceptance']:.4g}" if "acceptance" in s else "-" for s in (sa, sb)]
    lines = [row("", la, lb), row("frames", sa["n_frames"], sb["n_frames"]),
             row("simulated time (ps)", f"{sa['simulated_time_ps']:g}", f"{sb['simulated_time_ps']:g}"),
             row("temperature (K)", f"{sa['temperature_K']:g}", f"{sb['temperature_K']:g}"),
             row("acceptance", *acc),
             row("sampling wall time (s)", f"{sa['wall_time_s']:.2f}", f"{sb['wall_time_s']:.2f}"),
             row("min ESS, all observables", *(f"{e[0]:.1f}" for e in result["ess"])),
             row("  per wall second", *(f"{e[0]:.3g}" for e in result["ess_per_s"])),
             row("min ESS, dihedrals only", *(f"{e[1]:.1f}" for e in result["ess"])),
             row("  per wall second", *(f"{e[1]:.3g}" for e in result["ess_per_s"]))]
    for r, label in enumerate(result["residues"]):
        lines.append(f"{label}: JSD(A, B) = {result['jsd'][r]:.4f} nats (36 x 36 bins)")
        ref = result["jsd_reference"]
        if ref[0] is not None and ref[1] is not None:
            lines.append(row("  JSD to reference", f"{ref[0][r]:.4f}", f"{ref[1][r]:.4f}"))
        for name in BASIN_NAMES + ("phi>0",):
            cells = [f"{p:.4f} +- {e:.4f}" for p, e in (s["populations"][r][name] for s in (sa, sb))]
            lines.append(row(f"  {name}", *cells))
    if any(s.get("biased") for s in (sa, sb)):
        lines.append("note: an exploration-mode run is BIASED; its populations and JSD are not Boltzmann statistics")
    if abs(sa["temperature_K"] - sb["temperature_K"]) > 0.5:
        lines.append("note: the runs are at different temperatures")
    if sa.get("force_field") != sb.get("force_field"):
        lines.append("note: the runs use different force fields")
    if sa.get("model") and sb.get("model") and sa.get("model_path") != sb.get("model_path"):
        lines.append(f"note: the runs use different models ({sa['model']} vs {sb['model']})")
    if any(s.get("status") == "interrupted" for s in (sa, sb)):
        lines.append("note: an interrupted run's statistics are those of its partial run")
    return "\n".join(lines) + "\n"


def _free_energy(hist: np.ndarray, kelvin: float) -> np.ndarray:
    with np.errstate(divide="ignore"):
        free = -_KB * kelvin * np.log(hist)
    free -= free[np.isfinite(free)].min()
    free[~np.isfinite(free)] = np.nan
    return free


def plot_comparison(result: Dict, path: PathLike) -> None:
    """Per residue, both runs' free-energy surfaces and their basin populations, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_res = len(result["residues"])
    fig, axes = plt.subplots(n_res, 3, figsize=(14, 4.3 * n_res), squeeze=False)
    edges = np.linspace(-180.0, 180.0, result["histograms"][0][0].shape[0] + 1)
    for r, label in enumerate(result["residues"]):
        for k in range(2):
            ax = axes[r, k]
            free = _free_energy(result["histograms"][k][r], result["summaries"][k]["temperature_K"])
            mesh = ax.pcolormesh(edges, edges, free.T, cmap="viridis", vmin=0.0, vmax=30.0)
            ax.set(xlabel=r"$\phi$ (deg)", ylabel=r"$\psi$ (deg)", xticks=range(-180, 181, 90),
                   yticks=range(-180, 181, 90), title=f"{label}: {result['labels'][k]}")
            # Basin boundaries of openmm_timewarp.analysis.basins, grey so that they show on empty bins too.
            style = dict(color="grey", lw=0.7, ls="--")
            ax.axvline(0.0, **style)
            for x0, x1, y in ((-180, 0, 50), (-180, 0, -120), (0, 180, 100), (0, 180, -110)):
                ax.plot([x0, x1], [y, y], **style)
            ax.set_aspect("equal")
            fig.colorbar(mesh, ax=ax, label="F (kJ/mol)", shrink=0.8)
        ax = axes[r, 2]
        x = np.arange(len(BASIN_NAMES))
        for k, shift in ((0, -0.2), (1, 0.2)):
            pops = result["summaries"][k]["populations"][r]
            p = np.array([pops[n][0] for n in BASIN_NAMES])
            e = np.nan_to_num(np.array([pops[n][1] for n in BASIN_NAMES]))
            ax.bar(x + shift, p, 0.4, yerr=e, capsize=3, label=result["labels"][k])
        ax.set(xticks=x, xticklabels=BASIN_NAMES, ylabel="population", ylim=(0, 1),
               title=f"{label}: JSD(A, B) = {result['jsd'][r]:.3f}\nmin ESS/s "
                     f"{result['ess_per_s'][0][0]:.3g} vs {result['ess_per_s'][1][0]:.3g}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def default_output(folder_a: PathLike, folder_b: PathLike) -> str:
    """Where ``compare`` writes by default: ``A-vs-B.png`` beside the first run's folder."""
    a, b = (os.path.abspath(os.path.normpath(os.fspath(f))) for f in (folder_a, folder_b))
    return os.path.join(os.path.dirname(a), f"{os.path.basename(a)}-vs-{os.path.basename(b)}.png")


def write_comparison(folder_a: PathLike, folder_b: PathLike, out: Optional[PathLike] = None,
                     overwrite: bool = False, allow_mismatch: bool = False) -> Tuple[Dict, str, List[str]]:
    """Compare two run folders and write the plot to ``out`` and the table beside it (``.txt``).

    ``out`` defaults to :func:`default_output` (beside the first run, not the working folder).

    Returns
    -------
    result, table, written
        :func:`compare_runs`' statistics, :func:`comparison_table`, and the paths written.

    Raises
    ------
    InputError
        If an output file exists and not ``overwrite`` (checked first), or as :func:`compare_runs`.
    """
    out = default_output(folder_a, folder_b) if out is None else os.fspath(out)
    text_path = os.path.splitext(out)[0] + ".txt"
    existing = [p for p in (out, text_path) if os.path.exists(p)]
    if existing and not overwrite:
        raise InputError(f"{', '.join(existing)} exist(s); choose another --out or pass --overwrite")
    result = compare_runs(folder_a, folder_b, allow_mismatch)
    table = comparison_table(result)
    with open(text_path, "w") as f:
        f.write(table)
    plot_comparison(result, out)
    return result, table, [out, text_path]
