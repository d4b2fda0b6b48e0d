"""The biases of a reference run: which torsions are biased, and the forces that bias them.

Two kinds of bias, alone or together, each frozen for the production (:mod:`.production`):

- a metadynamics grid on one to three named torsions (:func:`bias_torsions`; by default the slow
  backbone torsions: phi of every non-proline residue, then psi of prolines, the first two of these),
  frozen as :func:`static_bias_force`;
- the *residue bias*: every residue's (phi, psi) biased by -(1 - 1/gamma) F, with F the free energy
  of ACE-ALA-NME from its shipped reference (:func:`residue_bias_grid`, :func:`residue_bias_force`).
  It acts on every backbone torsion at once, which a two-torsion metadynamics cannot do.

Grids follow ``openmm.app.Metadynamics``: ``bias[cv2, cv1]`` (the first torsion varies fastest),
periodic on [-pi, pi] with the last point equal to the first.
"""

from __future__ import annotations

import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import openmm
from openmm import app, unit

from ..analysis.dihedrals import backbone_dihedral_indices, to_mdtraj
from ..errors import InputError
from .io import load_reference
from .settings import ReferenceSettings

__all__ = ["KB", "side_chain_torsion_indices", "bias_torsions", "torsion_force", "static_bias_force",
           "residue_bias_grid", "residue_bias_force", "frozen_bias_forces", "biased_torsion_names"]

#: Boltzmann's constant, kJ/mol/K.
KB = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)


def side_chain_torsion_indices(topology: app.Topology) -> Dict[str, np.ndarray]:
    """Atom quadruplets of every chi1 and chi2, named ``chi1_2`` (chi1 of the second residue after ACE)."""
    import mdtraj as md

    dummy = to_mdtraj(np.zeros((topology.getNumAtoms(), 3)), topology)  # mdtraj finds torsions only in a trajectory
    top = dummy.topology
    named = {}
    for order, compute in ((1, md.compute_chi1), (2, md.compute_chi2)):
        for quadruplet in compute(dummy)[0]:
            named[f"chi{order}_{top.atom(int(quadruplet[0])).residue.index}"] = np.asarray(quadruplet, np.int64)
    return named


def bias_torsions(topology: app.Topology, names: Optional[Sequence[str]] = None) -> List[Tuple[str, np.ndarray]]:
    """The torsions a metadynamics build biases, as (name, atom quadruplet).

    Parameters
    ----------
    topology : openmm.app.Topology
        The capped peptide.
    names : sequence of str, optional
        E.g. ``["psi1", "phi2", "psi2"]`` or ``["chi1_1", "chi1_2"]``, residues counted from 1 after
        ACE.  By default phi and psi of a single residue; for longer peptides the phi of every
        non-proline residue, then the psi of prolines (whose phi sits in the ring), the first two.

    Raises
    ------
    InputError
        If a named torsion is not in this peptide.
    """
    phi_idx, psi_idx = backbone_dihedral_indices(topology)
    if names:
        available = {f"{kind}{k + 1}": idx[k] for kind, idx in (("phi", phi_idx), ("psi", psi_idx))
                     for k in range(len(idx))}
        available.update(side_chain_torsion_indices(topology))
        unknown = [n for n in names if n not in available]
        if unknown:
            raise InputError(f"bias torsions {unknown} not in this peptide; choose from {sorted(available)}")
        return [(n, available[n]) for n in names]
    if len(phi_idx) == 1:
        return [("phi", phi_idx[0]), ("psi", psi_idx[0])]
    residues = [r.name for r in topology.residues() if r.name not in ("ACE", "NME")]
    slow = [(f"phi{k + 1}", phi_idx[k]) for k, n in enumerate(residues) if n != "PRO"]
    slow += [(f"psi{k + 1}", psi_idx[k]) for k, n in enumerate(residues) if n == "PRO"]
    return slow[:2]


def torsion_force(indices: Sequence[int]) -> openmm.CustomTorsionForce:
    """The torsion of one atom quadruplet as a force whose energy is the angle (a collective variable)."""
    force = openmm.CustomTorsionForce("theta")
    force.addTorsion(*[int(i) for i in indices], [])
    return force


def static_bias_force(bias: np.ndarray, torsions: List[Tuple[str, np.ndarray]]) -> openmm.CustomCVForce:
    """A frozen metadynamics grid (``bias[cv2, cv1]`` or ``bias[cv3, cv2, cv1]``, kJ/mol) as a force on ``torsions``."""
    cvs = [f"cv{k + 1}" for k in range(len(torsions))]
    force = openmm.CustomCVForce(f"table({', '.join(cvs)})")
    for cv, (_, idx) in zip(cvs, torsions):
        force.addCollectiveVariable(cv, torsion_force(idx))
    sizes = bias.shape[::-1]
    limits = [-math.pi, math.pi] * len(sizes)
    if len(sizes) == 1:  # the 1D table takes no size
        table = openmm.Continuous1DFunction(bias.ravel(), *limits, True)
    else:
        function = {2: openmm.Continuous2DFunction, 3: openmm.Continuous3DFunction}[len(sizes)]
        table = function(*sizes, bias.ravel(), *limits, True)
    force.addTabulatedFunction("table", table)
    return force


def residue_bias_grid(temperature: float, bias_factor: float, cap_kj_mol: float = 35.0) -> np.ndarray:
    """-(1 - 1/gamma) F(phi, psi) of ACE-ALA-NME on a periodic 37 x 37 grid ``[psi, phi]``, kJ/mol.

    F comes from the shipped 36 x 36 reference histogram at ``temperature`` (K), averaged over the
    four bins around each grid point and capped ``cap_kj_mol`` above its minimum (empty bins); the
    grid points lie at the bin corners, the last equal to the first as periodic splines need.
    ``bias_factor`` is gamma; the grid is zero at its maximum.
    """
    histogram = load_reference("ace-ala-nme_310K").histograms[0]  # [phi_bin, psi_bin]
    corners = 0.25 * (histogram + np.roll(histogram, 1, 0) + np.roll(histogram, 1, 1)
                      + np.roll(histogram, 1, (0, 1)))  # corners[i, j] at (-180 + 10 i, -180 + 10 j)
    kt = KB * temperature
    free = -kt * np.log(np.maximum(corners, corners.max() * math.exp(-cap_kj_mol / kt)))
    bias = -(1.0 - 1.0 / bias_factor) * (free - free.min())
    bias = np.pad(bias, ((0, 1), (0, 1)), mode="wrap")
    return bias.T.copy()


def residue_bias_force(bias: np.ndarray, topology: app.Topology) -> openmm.CustomCVForce:
    """The sum over residues of ``bias[psi, phi]`` at each residue's own (phi, psi)."""
    phi_idx, psi_idx = backbone_dihedral_indices(topology)
    terms = [f"table(phi{k + 1}, psi{k + 1})" for k in range(len(phi_idx))]
    force = openmm.CustomCVForce(" + ".join(terms))
    for k in range(len(phi_idx)):
        force.addCollectiveVariable(f"phi{k + 1}", torsion_force(phi_idx[k]))
        force.addCollectiveVariable(f"psi{k + 1}", torsion_force(psi_idx[k]))
    n_psi, n_phi = bias.shape
    force.addTabulatedFunction("table", openmm.Continuous2DFunction(
        n_phi, n_psi, bias.ravel(), -math.pi, math.pi, -math.pi, math.pi, True))
    return force


def frozen_bias_forces(build: Mapping[str, np.ndarray], topology: app.Topology,
                       settings: ReferenceSettings) -> List[openmm.CustomCVForce]:
    """The production's static bias from a build file's arrays: the residue bias, the frozen
    metadynamics grid, or both (``build["bias"]`` and, with both, ``build["residue_bias"]``)."""
    if not settings.has_build:
        return [residue_bias_force(build["bias"], topology)]
    forces = [static_bias_force(build["bias"], bias_torsions(topology, settings.bias_torsions))]
    if settings.residue_bias:
        forces.append(residue_bias_force(build["residue_bias"], topology))
    return forces


def biased_torsion_names(topology: app.Topology, settings: ReferenceSettings) -> List[str]:
    """Names of every torsion the production's bias acts on (``phi1``, ``psi1``, ..., ``chi1_2``)."""
    names = []
    if settings.residue_bias:
        n = len(backbone_dihedral_indices(topology)[0])
        names = [f"{kind}{k + 1}" for k in range(n) for kind in ("phi", "psi")]
        if not settings.has_build:
            return names
    return names + [name for name, _ in bias_torsions(topology, settings.bias_torsions)]
