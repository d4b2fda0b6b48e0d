"""Phase 2 of a reference run: plain Langevin dynamics under the frozen bias, in resumable chunks.

The final bias V of the build is frozen as a static potential and the dynamics samples
exp(-beta (U + V)).  Every saved frame records its bias energy, read from the bias forces' own
force group, so its weight exp(+beta V) is exact for the bias it was sampled under.  Each chunk
(``chunk_NNNNN.npz``: every residue's phi and psi in degrees, the bias energy, and an OpenMM
checkpoint) is written atomically; a later call resumes from the last complete chunk exactly as an
uninterrupted run would continue.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
from openmm import app, unit

from ..analysis.dihedrals import backbone_dihedrals
from .bias import KB, frozen_bias_forces
from .settings import ReferenceSettings
from .simulation import BIAS_GROUP, biased_system, check_stable, make_simulation, save_atomic

__all__ = ["chunk_paths", "production", "load_production", "kish_size"]

log = logging.getLogger("openmm_timewarp.reference")


def chunk_paths(work: str) -> List[str]:
    """The complete production chunks of a run folder, in order."""
    return sorted(p for p in glob.glob(os.path.join(work, "chunk_*.npz")) if not p.endswith(".tmp.npz"))


def _run_chunk(sim: app.Simulation, topology: app.Topology, settings: ReferenceSettings, k: int
               ) -> Tuple[np.ndarray, np.ndarray]:
    """Frames (n, atoms, 3) nm and their bias energies (kJ/mol) of production chunk ``k``."""
    save_steps = int(round(settings.save_ps * 1000 / settings.timestep_fs))
    n_frames = int(round(settings.chunk_ns * 1000 / settings.save_ps))
    positions = np.empty((n_frames, topology.getNumAtoms(), 3), np.float32)
    bias = np.empty(n_frames)
    for i in range(n_frames):
        sim.step(save_steps)
        state = sim.context.getState(getEnergy=True, getPositions=True, groups={BIAS_GROUP})
        positions[i] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        bias[i] = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        check_stable(state, topology, settings.temperature, k * settings.chunk_ns + (i + 1) * settings.save_ps / 1000)
    return positions, bias


def production(settings: ReferenceSettings, topology: app.Topology, build_path: str,
               on_chunk: Optional[Callable[[int], None]] = None) -> None:
    """Run the production chunks up to ``settings.production_ns``, resuming from the last complete one.

    Stops early, between chunks, after ``settings.max_wall_minutes``.  ``on_chunk(n)`` is called
    after the n-th chunk is saved (e.g. to write the reference every few chunks).
    """
    build = np.load(build_path)
    system = biased_system(topology, settings, frozen_bias_forces(build, topology, settings))
    chunks = chunk_paths(settings.work_dir)
    sim = make_simulation(system, topology, settings)
    # The checkpoint restores positions, velocities and the integrator's random state.
    last = np.load(chunks[-1]) if chunks else build
    sim.context.loadCheckpoint(last["checkpoint"].tobytes())
    n_total = int(round(settings.production_ns / settings.chunk_ns))
    start = time.time()
    for k in range(len(chunks), n_total):
        if (time.time() - start) / 60 > settings.max_wall_minutes:
            log.info("wall-time limit reached after chunk %d; rerun the command to continue", k)
            break
        positions, bias = _run_chunk(sim, topology, settings, k)
        phi, psi = backbone_dihedrals(positions, topology)
        save_atomic(os.path.join(settings.work_dir, f"chunk_{k:05d}.npz"), phi=phi.astype(np.float32),
                    psi=psi.astype(np.float32), bias=bias.astype(np.float32),
                    checkpoint=np.frombuffer(sim.context.createCheckpoint(), np.uint8))
        done = (k + 1 - len(chunks)) * settings.chunk_ns
        log.info("production chunk %d/%d: %.1f ns, %.2f ns/min", k + 1, n_total, (k + 1) * settings.chunk_ns,
                 done / (time.time() - start) * 60)
        if on_chunk is not None:
            on_chunk(k + 1)


def load_production(work: str, temperature: float) -> Tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(phi, psi, weights, n_chunks) of a run folder's complete production chunks.

    phi and psi are in degrees, one column per residue; the weights are exp(+beta V) of the frozen
    bias at ``temperature`` (K), scaled so that the largest is 1.
    """
    data = [np.load(c) for c in chunk_paths(work)]
    if not data:
        return np.empty((0, 1)), np.empty((0, 1)), np.empty(0), 0
    bias = np.concatenate([d["bias"] for d in data]).astype(np.float64)
    # One column per residue (chunks of the first, one-residue runs stored flat arrays).
    phi = np.concatenate([d["phi"] for d in data]).astype(np.float64).reshape(len(bias), -1)
    psi = np.concatenate([d["psi"] for d in data]).astype(np.float64).reshape(len(bias), -1)
    return phi, psi, np.exp((bias - bias.max()) / (KB * temperature)), len(data)


def kish_size(weights: np.ndarray) -> float:
    """Kish effective number of frames of a weighted sample."""
    return float(weights.sum() ** 2 / (weights ** 2).sum())
