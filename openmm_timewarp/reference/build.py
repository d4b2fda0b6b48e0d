"""Phase 1 of a reference run: the bias, built and saved to ``build.npz`` with the state it ends in.

Either a well-tempered metadynamics build (``openmm.app.Metadynamics``) on the biased torsions,
which fills the basins and the barriers between them until the bias has converged in shape (under
the residue bias, if the run has one too), or, for the residue bias alone, a short equilibration
under that bias (:data:`~.settings.RESIDUE_BIAS_START_NS`).
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import openmm
from openmm import app, unit

from .bias import bias_torsions, residue_bias_force, residue_bias_grid, torsion_force
from .settings import RESIDUE_BIAS_START_NS, ReferenceSettings
from .simulation import biased_system, check_stable, make_simulation, save_atomic

__all__ = ["build_bias", "residue_bias_start", "start"]

log = logging.getLogger("openmm_timewarp.reference")

#: The build is run and reported in this many pieces.
BUILD_PIECES = 20


def _start_simulation(system: openmm.System, topology: app.Topology, positions,
                      settings: ReferenceSettings) -> app.Simulation:
    """A minimized simulation with velocities at the run's temperature."""
    sim = make_simulation(system, topology, settings)
    sim.context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(sim.context)
    sim.context.setVelocitiesToTemperature(settings.temperature * unit.kelvin, settings.seed)
    return sim


def _checkpoint(sim: app.Simulation) -> np.ndarray:
    return np.frombuffer(sim.context.createCheckpoint(), np.uint8)


def build_bias(settings: ReferenceSettings, topology: app.Topology, positions, path: str) -> None:
    """Well-tempered metadynamics; saves the final bias grid ``bias`` (and ``residue_bias``) and state to ``path``."""
    extra = {}
    if settings.residue_bias:
        extra["residue_bias"] = residue_bias_grid(settings.temperature, settings.bias_factor)
    system = biased_system(topology, settings)
    if settings.residue_bias:  # in the default force group: Metadynamics adds its own bias force
        system.addForce(residue_bias_force(extra["residue_bias"], topology))
    variables = [app.BiasVariable(torsion_force(idx), -math.pi, math.pi, math.radians(settings.sigma_deg),
                                  periodic=True, gridWidth=settings.grid)
                 for _, idx in bias_torsions(topology, settings.bias_torsions)]
    np.random.seed(settings.seed)  # Metadynamics draws its file id from numpy's global generator
    meta = app.Metadynamics(system, variables, settings.temperature * unit.kelvin, settings.bias_factor,
                            settings.height * unit.kilojoule_per_mole,
                            int(round(settings.hill_ps * 1000 / settings.timestep_fs)))
    sim = _start_simulation(system, topology, positions, settings)
    steps = int(round(settings.build_ns * 1e6 / settings.timestep_fs))
    start = time.time()
    for k in range(BUILD_PIECES):
        meta.step(sim, steps // BUILD_PIECES)
        ns = settings.build_ns * (k + 1) / BUILD_PIECES
        check_stable(sim.context.getState(getEnergy=True), topology, settings.temperature, ns, "the build")
        free = meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)
        log.info("build %.2f ns, %.0f s, free-energy range %.1f kJ/mol", ns, time.time() - start,
                 free.max() - free.min())
    gamma = settings.bias_factor
    # getFreeEnergy() = -gamma/(gamma-1) * V on the grid [cv2, cv1]; recover V from it.
    bias = -np.asarray(meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)) * (gamma - 1) / gamma
    save_atomic(path, bias=bias, checkpoint=_checkpoint(sim), seconds=time.time() - start, **extra)
    log.info("build done: bias range %.1f..%.1f kJ/mol", bias.min(), bias.max())


def residue_bias_start(settings: ReferenceSettings, topology: app.Topology, positions, path: str) -> None:
    """The residue bias grid (saved as ``bias``) and a state equilibrated under it, saved to ``path``."""
    bias = residue_bias_grid(settings.temperature, settings.bias_factor)
    system = biased_system(topology, settings, [residue_bias_force(bias, topology)])
    sim = _start_simulation(system, topology, positions, settings)
    sim.step(int(round(RESIDUE_BIAS_START_NS * 1e6 / settings.timestep_fs)))
    save_atomic(path, bias=bias, checkpoint=_checkpoint(sim), seconds=0.0)
    log.info("residue bias from ACE-ALA-NME: range %.1f..%.1f kJ/mol", bias.min(), bias.max())


def start(settings: ReferenceSettings, topology: app.Topology, positions, path: str) -> None:
    """Phase 1 of the run ``settings`` describes: :func:`build_bias` or :func:`residue_bias_start`."""
    (build_bias if settings.has_build else residue_bias_start)(settings, topology, positions, path)
