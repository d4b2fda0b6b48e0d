"""Backbone dihedrals (phi, psi) of capped peptides, in degrees, computed with mdtraj."""

from __future__ import annotations

from typing import List, Tuple, Union

import mdtraj as md
import numpy as np
from openmm import app, unit

__all__ = ["backbone_dihedral_indices", "backbone_dihedrals", "residues_with_phi_and_psi", "to_mdtraj"]


def _md_topology(topology: Union[app.Topology, md.Topology]) -> md.Topology:
    if isinstance(topology, md.Topology):
        return topology
    return md.Topology.from_openmm(topology)


def backbone_dihedral_indices(topology: Union[app.Topology, md.Topology]
                              ) -> Tuple[np.ndarray, np.ndarray]:
    """Atom quadruplets of every backbone phi and psi.

    For ACE-X-NME there is one phi (C of ACE, N, CA, C) and one psi (N, CA, C, N of NME); a
    peptide with n residues between the caps has n of each, ordered along the chain.

    Returns
    -------
    phi_indices, psi_indices : numpy.ndarray
        Integer arrays of shape (n, 4).
    """
    top = _md_topology(topology)
    # mdtraj finds the quadruplets only through a trajectory: one dummy frame is enough.
    dummy = md.Trajectory(np.zeros((1, top.n_atoms, 3), dtype=np.float32), top)
    phi, psi = md.compute_phi(dummy)[0], md.compute_psi(dummy)[0]
    if len(phi) == 0 or len(phi) != len(psi):
        raise ValueError(f"found {len(phi)} phi and {len(psi)} psi dihedrals: is this a capped peptide?")
    return np.asarray(phi, dtype=np.int64), np.asarray(psi, dtype=np.int64)


def residues_with_phi_and_psi(topology: Union[app.Topology, md.Topology]
                              ) -> Tuple[List[md.core.topology.Residue], np.ndarray, np.ndarray]:
    """The residues that have both backbone dihedrals, in chain order, and their phi and psi
    quadruplets (n, 4).

    For a capped peptide these are the residues between the caps; with charged termini the first
    residue has no phi and the last no psi, so they are left out.
    """
    top = _md_topology(topology)
    dummy = md.Trajectory(np.zeros((1, top.n_atoms, 3), dtype=np.float32), top)
    # A phi's second atom (N) and a psi's first (N) belong to the residue the angle describes.
    phi_of = {top.atom(int(q[1])).residue.index: q for q in md.compute_phi(dummy)[0]}
    psi_of = {top.atom(int(q[0])).residue.index: q for q in md.compute_psi(dummy)[0]}
    both = [r for r in top.residues if r.index in phi_of and r.index in psi_of]
    return both, *(np.array([table[r.index] for r in both], dtype=np.int64).reshape(-1, 4)
                   for table in (phi_of, psi_of))


def to_mdtraj(positions: Union[np.ndarray, unit.Quantity],
              topology: Union[app.Topology, md.Topology]) -> md.Trajectory:
    """Wrap positions of shape (n_frames, n_atoms, 3) or (n_atoms, 3), nm if bare, as a Trajectory."""
    if unit.is_quantity(positions):
        positions = positions.value_in_unit(unit.nanometer)
    xyz = np.asarray(positions, dtype=np.float32)
    if xyz.ndim == 2:
        xyz = xyz[None]
    return md.Trajectory(xyz, _md_topology(topology))


def backbone_dihedrals(trajectory: Union[md.Trajectory, np.ndarray, unit.Quantity],
                       topology: Union[app.Topology, md.Topology, None] = None
                       ) -> Tuple[np.ndarray, np.ndarray]:
    """Backbone phi and psi of every frame, in degrees in [-180, 180).

    Parameters
    ----------
    trajectory : mdtraj.Trajectory or array_like
        A trajectory, or positions (n_frames, n_atoms, 3) in nm (then ``topology`` is required).
    topology : openmm.app.Topology or mdtraj.Topology, optional
        Topology of bare positions.

    Returns
    -------
    phi, psi : numpy.ndarray
        Arrays of shape (n_frames, n_residues) in degrees.
    """
    if not isinstance(trajectory, md.Trajectory):
        if topology is None:
            raise ValueError("a topology is required with bare positions")
        trajectory = to_mdtraj(trajectory, topology)
    phi_idx, psi_idx = backbone_dihedral_indices(trajectory.topology)
    phi = np.degrees(md.compute_dihedrals(trajectory, phi_idx, periodic=False))
    psi = np.degrees(md.compute_dihedrals(trajectory, psi_idx, periodic=False))
    # Map 180 to -180 so that every angle falls in the half-open interval of the 36 bins.
    return (phi + 180.0) % 360.0 - 180.0, (psi + 180.0) % 360.0 - 180.0
