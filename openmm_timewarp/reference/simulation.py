"""The biased System of a reference run and its Langevin simulation.

Every phase runs on the Reference platform with the project's System (amber14 + built-in OBC2, no
constraints) and hydrogen mass repartitioning (masses do not change the configurational
distribution), plus a flat-bottom term that keeps every C-alpha L
(:func:`~openmm_timewarp.data.generate.chirality_restraint`; zero for L geometries, so the
distribution of the molecule is unchanged, while a bias can otherwise invert a stereocentre).
"""

from __future__ import annotations

import math
import os
from typing import Iterable

import numpy as np
import openmm
from openmm import app, unit

from ..data.generate import UnstableMD, chirality_restraint
from ..systems import create_system
from .bias import KB
from .settings import ReferenceSettings

__all__ = ["BIAS_GROUP", "biased_system", "make_simulation", "check_stable", "save_atomic"]

#: Force group of the bias forces, so that a frame's bias energy can be read alone.
BIAS_GROUP = 31


def biased_system(topology: app.Topology, settings: ReferenceSettings,
                  bias_forces: Iterable[openmm.Force] = ()) -> openmm.System:
    """The peptide's System with the chirality term and ``bias_forces`` (put in :data:`BIAS_GROUP`)."""
    system = create_system(topology, hydrogen_mass=settings.hmr)
    system.addForce(chirality_restraint(topology))
    for force in bias_forces:
        force.setForceGroup(BIAS_GROUP)
        system.addForce(force)
    return system


def make_simulation(system: openmm.System, topology: app.Topology, settings: ReferenceSettings) -> app.Simulation:
    """A ``LangevinMiddleIntegrator`` simulation of ``system`` on the Reference platform, seeded with ``settings.seed``."""
    integrator = openmm.LangevinMiddleIntegrator(settings.temperature * unit.kelvin,
                                                 settings.friction / unit.picosecond,
                                                 settings.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(settings.seed)
    return app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))


def check_stable(state: openmm.State, topology: app.Topology, temperature: float, ns: float,
                 phase: str = "production") -> None:
    """Refuse a state whose kinetic energy is not finite or ten times its expected value.

    A biased molecule can reach strained geometries where the time step is unstable; checking
    before saving keeps such a stretch out of the run folder.

    Raises
    ------
    UnstableMD
        Naming ``phase`` and the simulated time ``ns``.
    """
    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    limit = 10.0 * 1.5 * topology.getNumAtoms() * KB * temperature
    if not math.isfinite(kinetic) or kinetic > limit:
        raise UnstableMD(f"the integration blew up in {phase} at {ns:.3f} ns (kinetic energy {kinetic:.3g} kJ/mol), "
                         "before saving it: start again in a new --work with a smaller --timestep-fs")


def save_atomic(path: str, **arrays: np.ndarray) -> None:
    """Write a compressed ``.npz`` through a temporary file, so that a reader never sees half of it."""
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
