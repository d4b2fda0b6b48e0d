"""Several reference runs of one peptide, pooled into one reference.

Every run samples the same distribution through its own frozen bias, so each is an estimator of
it: its frames keep their weights exp(+beta V) normalised within the run, and the runs enter in
proportion to their Kish effective sizes (inverse-variance weighting when the frames of every run
are equally correlated).  Block b of the pool holds block b of every run, so the block errors and
the half-vs-half JSD still compare independent stretches of sampling.  The runs must share the
sequence and temperature (read from each run folder's ``config.json``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import InputError
from ..systems import peptide_from_sequence
from .finalize import saved_command, system_metadata, write_reference
from .io import REFERENCE_DIR, reference_name
from .production import kish_size, load_production
from .settings import build_ns

__all__ = ["PoolSettings", "read_run", "pool_frames", "pool_references"]


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """Runs to pool: ``sequence``, their folders ``work``, ``blocks`` per run (even), and the output file.

    Raises
    ------
    InputError
        On construction, for an odd or too small number of blocks or no runs.
    """

    sequence: str
    work: Tuple[str, ...]
    blocks: int = 10
    out: Optional[str] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sequence", self.sequence.upper())
        object.__setattr__(self, "work", tuple(self.work))
        if self.blocks < 2 or self.blocks % 2:
            raise InputError("--blocks must be even: the halves of the pool are its first and last blocks")
        if not self.work:
            raise InputError("name at least one run folder (--work)")

    def command(self, out: str) -> List[str]:
        """The command line that pools these runs into ``out``."""
        return (["openmm-timewarp", "pool-reference", "--sequence", self.sequence, "--work", *self.work,
                 "--blocks", str(self.blocks), "--out", out])


def read_run(work: str) -> Dict[str, Any]:
    """A run folder's settings (``config``), frames (``phi``, ``psi``), weights normalised to sum 1,
    ``production_ns`` and Kish size ``kish``.

    Raises
    ------
    InputError
        If the folder is not a reference run folder or has fewer than two production chunks.
    """
    path = os.path.join(work, "config.json")
    if not os.path.exists(path):
        raise InputError(f"{work}: no config.json, not a reference run folder")
    with open(path) as f:
        config = json.load(f)
    phi, psi, weights, n_chunks = load_production(work, config["temperature"])
    if n_chunks < 2:
        raise InputError(f"{work}: fewer than 2 production chunks")
    return {"work": work, "config": config, "phi": phi, "psi": psi, "weights": weights / weights.sum(),
            "production_ns": n_chunks * config["chunk_ns"], "kish": kish_size(weights)}


def pool_frames(runs: Sequence[Dict[str, Any]], shares: Sequence[float], n_blocks: int
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phi, psi, weights) of the pool, ordered block by block (block b of every run, in turn);
    run i's weights sum to ``shares[i]``."""
    parts = []
    for r, share in zip(runs, shares):
        n = len(r["weights"]) // n_blocks * n_blocks  # equal blocks; at most n_blocks - 1 frames dropped
        parts.append([np.array_split(a[:n], n_blocks) for a in (r["phi"], r["psi"], r["weights"] * share)])
    return tuple(np.concatenate([p[k][b] for b in range(n_blocks) for p in parts]) for k in range(3))


def _check_same_peptide(runs: Sequence[Dict[str, Any]], sequence: str) -> None:
    temperature = runs[0]["config"]["temperature"]
    for r in runs:
        config = r["config"]
        if config["sequence"] != sequence or config["temperature"] != temperature:
            raise InputError(f"{r['work']}: sequence {config['sequence']} at {config['temperature']} K, not "
                             f"{sequence} at {temperature} K as the first run")


def _pool_metadata(runs: Sequence[Dict[str, Any]], shares: Sequence[float], settings: PoolSettings,
                   out: str) -> Dict[str, Any]:
    first = runs[0]["config"]
    described = [{"work": os.path.relpath(r["work"]), "settings": r["config"], "command": saved_command(r["work"]),
                  "production_ns": r["production_ns"], "simulated_ns": build_ns(r["config"]) + r["production_ns"],
                  "kish_effective_frames": r["kish"], "share": share} for r, share in zip(runs, shares)]
    metadata = system_metadata(peptide_from_sequence(settings.sequence)[0], settings.sequence, first["temperature"],
                               first["friction"], first["timestep_fs"], first["hmr"])
    for key, setting in (("timestep_fs", "timestep_fs"), ("friction_per_ps", "friction"), ("hydrogen_mass_amu", "hmr")):
        values = sorted({r["config"][setting] for r in runs})
        if len(values) > 1:  # the runs' own settings are in "runs"
            metadata[key] = values
    metadata.update({
        "method": "pooled static-bias reference runs (see runs)",
        "estimator": "each run's frames weighted by exp(+beta V_frozen), normalised within the run, runs "
                     "weighted by their Kish sizes; errors: standard error of block means, block b = block b "
                     "of every run",
        "runs": described,
        "production_ns": sum(r["production_ns"] for r in runs),
        "simulated_ns": sum(d["simulated_ns"] for d in described),
        "command": " ".join(settings.command(out)),
    })
    return metadata


def pool_references(settings: PoolSettings) -> str:
    """Pool the runs of ``settings`` and write the reference; returns the written path.

    Raises
    ------
    InputError
        If a folder is not a usable run, or the runs differ in sequence or temperature.
    """
    runs = [read_run(w) for w in settings.work]
    _check_same_peptide(runs, settings.sequence)
    out = os.path.abspath(settings.out or os.path.join(
        REFERENCE_DIR, reference_name(settings.sequence, runs[0]["config"]["temperature"]) + ".npz"))
    total_kish = sum(r["kish"] for r in runs)
    shares = [r["kish"] / total_kish for r in runs]
    phi, psi, weights = pool_frames(runs, shares, settings.blocks)
    write_reference(out, phi, psi, weights, settings.blocks, _pool_metadata(runs, shares, settings, out))
    return out
