"""The written reference: reweighted histograms, basin populations with block errors, and metadata.

The reweighted histogram sum_t w_t [frame t in bin] / sum_t w_t of production frames, with
w = exp(+beta V) of the frozen bias, is an unbiased (ratio) estimator of the unbiased distribution.
Error bars are standard errors of the means of contiguous blocks; the JSD between the two halves
of the production measures the reference's own statistical error.  The file's contents are
described in this folder's ``README.md``.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
from openmm import app

from ..analysis.basins import BASIN_NAMES, PHI_POSITIVE, assign_basins
from ..analysis.histogram import BIN_EDGES, jensen_shannon, ramachandran_histogram
from ..data.generate import code_version
from ..systems import FORCEFIELD_FILES, peptide_from_sequence
from .bias import KB, biased_torsion_names
from .production import kish_size, load_production
from .settings import ReferenceSettings

__all__ = ["UNCONVERGED_JSD", "POPULATION_NAMES", "block_populations", "wt_populations", "jsd_between_halves",
           "system_metadata", "write_reference", "finalize", "saved_command"]

log = logging.getLogger("openmm_timewarp.reference")

#: Half-vs-half JSD above which a reference is reported as not converged.
UNCONVERGED_JSD = 0.15
#: The populations a reference records: every basin, then phi > 0 together.
POPULATION_NAMES = list(BASIN_NAMES) + ["phi>0"]


def block_populations(labels: np.ndarray, weights: np.ndarray, n_blocks: int
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted basin populations (:data:`POPULATION_NAMES`), their block standard errors, and the per-block values."""
    names = list(BASIN_NAMES)
    n = len(labels) // n_blocks * n_blocks
    per_block = np.empty((n_blocks, len(names) + 1))
    for b, (lab, w) in enumerate(zip(np.split(labels[:n], n_blocks), np.split(weights[:n], n_blocks))):
        for i in range(len(names)):
            per_block[b, i] = w[lab == i].sum() / w.sum()
        per_block[b, -1] = sum(per_block[b, names.index(p)] for p in PHI_POSITIVE)
    total = np.array([weights[labels == i].sum() for i in range(len(names))]) / weights.sum()
    total = np.append(total, sum(total[names.index(p)] for p in PHI_POSITIVE))
    errors = per_block.std(axis=0, ddof=1) / math.sqrt(n_blocks)
    return total, errors, per_block


def wt_populations(bias: np.ndarray, bias_factor: float, temperature: float) -> np.ndarray:
    """Basin populations from the well-tempered estimate F = -gamma/(gamma - 1) V of a (phi, psi) grid ``bias[psi, phi]``."""
    n_psi, n_phi = bias.shape
    # The periodic grid repeats its first point as its last: drop it once on each axis.
    grid = np.linspace(-180.0, 180.0, n_phi)[:-1]
    psi_grid = np.linspace(-180.0, 180.0, n_psi)[:-1]
    free = -bias_factor / (bias_factor - 1) * bias[:-1, :-1]
    p = np.exp(-(free - free.min()) / (KB * temperature))
    phi, psi = np.meshgrid(grid, psi_grid)
    labels = assign_basins(phi, psi)
    pops = np.array([p[labels == i].sum() for i in range(len(BASIN_NAMES))]) / p.sum()
    return np.append(pops, sum(pops[list(BASIN_NAMES).index(x)] for x in PHI_POSITIVE))


def jsd_between_halves(phi: np.ndarray, psi: np.ndarray, weights: np.ndarray) -> float:
    """JSD between the weighted histograms of the first and second halves of a production."""
    half = len(phi) // 2
    first, second = (ramachandran_histogram(phi[s], psi[s], weights[s]) for s in (slice(0, half), slice(half, None)))
    return float(jensen_shannon(first, second))


def system_metadata(topology: app.Topology, sequence: str, temperature: float, friction: float, timestep_fs: float,
                    hmr: float) -> Dict[str, Any]:
    """What defines the sampled distribution: the peptide, force field, solvent and temperature."""
    return {
        "sequence": sequence,
        "peptide": "-".join(r.name for r in topology.residues()),
        "forcefield": list(FORCEFIELD_FILES), "solvent": "GBSAOBCForce OBC2 (mbondi2, eps 1/78.5, ACE SA)",
        "constraints": None, "temperature_K": temperature, "friction_per_ps": friction,
        "timestep_fs": timestep_fs, "hydrogen_mass_amu": hmr, "platform": "Reference",
    }


def _population_arrays(phi: np.ndarray, psi: np.ndarray, weights: np.ndarray, n_blocks: int):
    """(populations, errors, per-block populations), one row per residue."""
    per_residue = [block_populations(assign_basins(phi[:, r], psi[:, r]), weights, n_blocks)
                   for r in range(phi.shape[1])]
    return tuple(np.array([x[i] for x in per_residue]) for i in range(3))


def write_reference(path: str, phi: np.ndarray, psi: np.ndarray, weights: np.ndarray, n_blocks: int,
                    metadata: Dict[str, Any]) -> None:
    """Write a reference file atomically to ``path``.

    Histograms and basin populations of weighted frames (one column of ``phi``/``psi`` per
    residue, degrees), block errors from ``n_blocks`` contiguous blocks and the half-vs-half JSD;
    ``metadata`` (which must hold ``production_ns``) is completed with these numbers and stored.
    Logs a warning when the halves differ by more than :data:`UNCONVERGED_JSD`.
    """
    pops, errors, per_block = _population_arrays(phi, psi, weights, n_blocks)
    names = POPULATION_NAMES
    metadata.update({
        "n_frames": int(len(phi)), "n_blocks": int(n_blocks),
        "kish_effective_frames": kish_size(weights),
        "basins": names,
        "populations": [dict(zip(names, p.round(6).tolist())) for p in pops],
        "population_errors": [dict(zip(names, e.round(6).tolist())) for e in errors],
        "jsd_between_halves": [jsd_between_halves(phi[:, r], psi[:, r], weights) for r in range(phi.shape[1])],
        "code_version": code_version(),
        "written_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    })
    histograms = np.array([ramachandran_histogram(phi[:, r], psi[:, r], weights) for r in range(phi.shape[1])])
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, histogram=histograms, bin_edges_deg=BIN_EDGES, basin_names=np.array(names),
                        populations=pops, population_errors=errors, block_populations=per_block,
                        metadata=json.dumps(metadata))
    os.replace(tmp, path)
    summary = "; ".join(", ".join(f"{n} {p:.4f}+-{e:.4f}" for n, p, e in zip(names, pr, er))
                        for pr, er in zip(pops, errors))
    log.info("wrote %s: %.1f ns production; %s", path, metadata["production_ns"], summary)
    noisy = max(metadata["jsd_between_halves"])
    if noisy > UNCONVERGED_JSD:
        log.warning("the two halves of the production differ by a JSD of %.2f (> %s): not converged, not a usable "
                    "reference yet (extend it with a larger --production-ns)", noisy, UNCONVERGED_JSD)


def saved_command(work: str) -> Optional[str]:
    """The command that ran a run folder's simulation (its ``command.txt``), if it was kept."""
    path = os.path.join(work, "command.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return f.read().strip()


def method(settings: ReferenceSettings) -> str:
    """How the run's bias was made, in words."""
    residue = "every residue's (phi, psi) biased by -(1 - 1/gamma) F of ACE-ALA-NME's reference"
    metadynamics = "well-tempered metadynamics on " + ("the named torsions" if settings.bias_torsions
                                                       else "backbone torsions")
    if settings.residue_bias and settings.bias_torsions:
        return f"{residue}, plus {metadynamics} under it, then static-bias production"
    return f"{residue if settings.residue_bias else metadynamics}, then static-bias production"


def _run_metadata(settings: ReferenceSettings, topology: app.Topology, production_ns: float,
                  wt: Optional[np.ndarray]) -> Dict[str, Any]:
    metadata = system_metadata(topology, settings.sequence, settings.temperature, settings.friction,
                               settings.timestep_fs, settings.hmr)
    metadata.update({
        "method": method(settings),
        "biased_torsions": biased_torsion_names(topology, settings),
        "estimator": "histogram of production frames weighted by exp(+beta V_frozen); "
                     "errors: standard error of block means",
        "bias_factor": settings.bias_factor, "hill_height_kJ_mol": settings.height,
        "hill_width_deg": settings.sigma_deg, "hill_interval_ps": settings.hill_ps, "grid": settings.grid,
        "build_ns": settings.build_ns_simulated, "production_ns": production_ns,
        "simulated_ns": settings.build_ns_simulated + production_ns, "save_interval_ps": settings.save_ps,
        "seed": settings.seed,
        "populations_wt_free_energy": None if wt is None else dict(zip(POPULATION_NAMES, wt.round(6).tolist())),
        "command": saved_command(settings.work_dir) or settings.command_line(),
    })
    return metadata


def finalize(settings: ReferenceSettings) -> bool:
    """Write the reference file of a run folder from all its complete production chunks.

    Returns
    -------
    bool
        Whether a file was written (it takes at least two chunks).
    """
    phi, psi, weights, n_chunks = load_production(settings.work_dir, settings.temperature)
    if n_chunks < 2:
        log.info("finalize: fewer than 2 production chunks, nothing written")
        return False
    build = np.load(os.path.join(settings.work_dir, "build.npz"))
    topology, _ = peptide_from_sequence(settings.sequence, seed=settings.seed)
    # The well-tempered cross-check applies where the bias acts on one residue's own phi and psi.
    one_grid = phi.shape[1] == 1 and not (settings.bias_torsions or settings.residue_bias)
    wt = wt_populations(build["bias"], settings.bias_factor, settings.temperature) if one_grid else None
    metadata = _run_metadata(settings, topology, n_chunks * settings.chunk_ns, wt)
    write_reference(settings.out_path, phi, psi, weights, min(settings.blocks, n_chunks), metadata)
    return True
