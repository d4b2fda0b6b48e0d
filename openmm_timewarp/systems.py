"""Capped peptides in implicit solvent: topologies, coordinates and OpenMM Systems.

Every System built here follows DESIGN.md section 3: ``amber14-all.xml``, implicit solvent OBC2,
``NoCutoff``, no constraints, flexible water, 310 K by default.  The OBC2 solvent is OpenMM's
built-in :class:`openmm.GBSAOBCForce` with the radii and screening scales that
``implicit/obc2.xml`` would assign (mbondi2 radii, OBC2 scales, ACE surface term).  Its energy
agrees with ``amber14-all.xml + implicit/obc2.xml`` to 1-5e-5 kJ/mol (``tests/test_systems.py``
checks 1e-4), and it is much cheaper: for ACE-ALA-NME on the Reference platform (this 2-core
machine, shared and loaded, best of 3) one 2 fs Langevin step cost 91 us against 2870 us with
``obc2.xml``'s ``CustomGBForce`` (31x), and one energy evaluation through Python
(``setPositions`` + ``getState``) 110 us against 2190 us (20x).
"""

from __future__ import annotations

import functools
import io
import math
import os
import random
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import openmm
from openmm import app, unit
from openmm.app.internal.customgbforces import GBSAOBC2Force

__all__ = [
    "ONE_TO_THREE",
    "CAPS",
    "DEFAULT_TEMPERATURE",
    "FORCEFIELD_FILES",
    "peptide_from_sequence",
    "load_pdb",
    "create_system",
    "chiral_centers",
    "inverted_centers",
    "sequence_of",
    "thermalize",
    "slow_path_reason",
    "warn_if_slow",
]

ONE_TO_THREE = {
    "A": "ALA", "R": "ARG", "N": "ASN", "D": "ASP", "C": "CYS", "Q": "GLN", "E": "GLU",
    "G": "GLY", "H": "HIS", "I": "ILE", "L": "LEU", "K": "LYS", "M": "MET", "F": "PHE",
    "P": "PRO", "S": "SER", "T": "THR", "W": "TRP", "Y": "TYR", "V": "VAL",
}
# Protonation and tautomer variants that amber14 knows, mapped back to one letter.
THREE_TO_ONE = {three: one for one, three in ONE_TO_THREE.items()}
THREE_TO_ONE.update({"HID": "H", "HIE": "H", "HIP": "H", "CYX": "C", "ASH": "D", "GLH": "E",
                      "LYN": "K"})
CAPS = ("ACE", "NME")
WATER_NAMES = {"HOH", "WAT", "H2O", "TIP3", "TIP", "SOL", "T3P", "T4P", "SPC", "DOD"}

DEFAULT_TEMPERATURE = 310.0 * unit.kelvin
FORCEFIELD_FILES = ("amber14-all.xml",)
SOLVENT_DIELECTRIC = 78.5
SOLUTE_DIELECTRIC = 1.0

# Ideal backbone geometry (Engh & Huber), Angstrom and degrees.
_BOND = {"N-CA": 1.458, "CA-C": 1.525, "C-N": 1.329, "C-O": 1.231}
_ANGLE = {"N-CA-C": 111.2, "CA-C-N": 116.2, "C-N-CA": 121.7, "CA-C-O": 120.5}


def _as_float(value: Union[float, unit.Quantity], default_unit: unit.Unit) -> float:
    """Strip ``default_unit`` from a Quantity, or take a bare number as already in it."""
    if unit.is_quantity(value):
        return value.value_in_unit(default_unit)
    return float(value)


def place_atom(a: np.ndarray, b: np.ndarray, c: np.ndarray, bond: float, angle: float,
           torsion: float) -> np.ndarray:
    """Place atom d from a, b, c with |cd| = bond, angle bcd and torsion abcd (degrees)."""
    angle, torsion = math.radians(angle), math.radians(torsion)
    bc = c - b
    bc /= np.linalg.norm(bc)
    n = np.cross(b - a, bc)
    n /= np.linalg.norm(n)
    m = np.cross(n, bc)
    local = np.array([-bond * math.cos(angle),
                      bond * math.sin(angle) * math.cos(torsion),
                      bond * math.sin(angle) * math.sin(torsion)])
    return c + local[0] * bc + local[1] * m + local[2] * n


def _backbone_pdb(residues: Sequence[str], phi: float, psi: float) -> str:
    """PDB text of ACE-...-NME heavy backbone atoms with ideal geometry and given phi/psi."""
    # ACE's CH3 and C play the roles of CA and C of a residue -1; NME's N and C those of N and CA.
    ch3 = np.zeros(3)
    c_ace = np.array([_BOND["CA-C"], 0.0, 0.0])
    o_ref = np.array([-1.0, 1.0, 0.0])  # any point off the CH3-C axis fixes the frame
    records: List[Tuple[str, str, int, np.ndarray]] = [("CH3", "ACE", 1, ch3), ("C", "ACE", 1, c_ace)]
    records.append(("O", "ACE", 1, place_atom(o_ref, ch3, c_ace, _BOND["C-O"], _ANGLE["CA-C-O"], 0.0)))
    prev_n, prev_ca, prev_c = o_ref, ch3, c_ace
    prev_psi = 180.0
    for i, name in enumerate(list(residues) + ["NME"], start=2):
        n = place_atom(prev_n, prev_ca, prev_c, _BOND["C-N"], _ANGLE["CA-C-N"], prev_psi)
        ca = place_atom(prev_ca, prev_c, n, _BOND["N-CA"], _ANGLE["C-N-CA"], 180.0)  # trans omega
        if name == "NME":
            records += [("N", name, i, n), ("C", name, i, ca)]
            break
        c = place_atom(prev_c, n, ca, _BOND["CA-C"], _ANGLE["N-CA-C"], phi)
        o = place_atom(n, ca, c, _BOND["C-O"], _ANGLE["CA-C-O"], psi + 180.0)
        records += [("N", name, i, n), ("CA", name, i, ca), ("C", name, i, c), ("O", name, i, o)]
        prev_n, prev_ca, prev_c, prev_psi = n, ca, c, psi
    lines = []
    for serial, (atom, res, resid, xyz) in enumerate(records, start=1):
        lines.append("ATOM  %5d %-4s %3s A%4d    %8.3f%8.3f%8.3f  1.00  0.00          %2s"
                     % (serial, " " + atom if len(atom) < 4 else atom, res, resid, *xyz, atom[0]))
    return "\n".join(lines + ["TER", "END"]) + "\n"


def _complete(fixer, ph: float, seed: int) -> Tuple[app.Topology, unit.Quantity]:
    """Add missing heavy atoms and hydrogens with pdbfixer; return topology and positions.

    Reproducible for a given seed: OpenMM's Modeller places new hydrogens at random positions drawn
    from Python's global ``random`` (seeded here, and restored afterwards), and both minimizations
    run on the Reference platform, whose sums do not depend on thread scheduling.
    """
    fixer.missingResidues = {}
    fixer.findMissingAtoms()
    fixer.platform = openmm.Platform.getPlatformByName("Reference")
    state = random.getstate()
    try:
        random.seed(seed)
        fixer.addMissingAtoms(seed=seed)
        fixer.addMissingHydrogens(ph)
    finally:
        random.setstate(state)
    positions = np.array(fixer.positions.value_in_unit(unit.nanometer))
    return fixer.topology, unit.Quantity(positions, unit.nanometer)


def peptide_from_sequence(sequence: str, phi: float = -150.0, psi: float = 150.0,
                          ph: float = 7.0, seed: int = 0) -> Tuple[app.Topology, unit.Quantity]:
    """Build the capped peptide ACE-<sequence>-NME with 3D coordinates, offline.

    The backbone is placed with ideal bond lengths and angles at the given (phi, psi) and trans
    peptide bonds; pdbfixer then adds side chains from its residue templates and hydrogens at
    the given pH.  Relax the structure (energy minimization) before dynamics.

    Parameters
    ----------
    sequence : str
        One-letter amino-acid codes, e.g. ``"A"`` (ACE-ALA-NME) or ``"AV"``.
    phi, psi : float, optional
        Backbone dihedrals of every residue in degrees; the default is an extended strand.
    ph : float, optional
        pH used to choose protonation states.
    seed : int, optional
        Seed of pdbfixer's clash-removal dynamics, for reproducible coordinates.

    Returns
    -------
    topology : openmm.app.Topology
        Topology with bonds and hydrogens.
    positions : openmm.unit.Quantity
        (n_atoms, 3) numpy array in nanometres.

    Raises
    ------
    ValueError
        If the sequence is empty or holds a letter that is not a standard amino acid.
    """
    from pdbfixer import PDBFixer

    sequence = sequence.strip().upper()
    if not sequence:
        raise ValueError("empty peptide sequence")
    unknown = sorted(set(sequence) - set(ONE_TO_THREE))
    if unknown:
        raise ValueError(f"unknown one-letter residue code(s) {unknown} in {sequence!r}; "
                         f"known: {''.join(sorted(ONE_TO_THREE))}")
    pdb = _backbone_pdb([ONE_TO_THREE[s] for s in sequence], phi, psi)
    return _complete(PDBFixer(pdbfile=io.StringIO(pdb)), ph, seed)


def _check_residues(topology: app.Topology, source: str, require_caps: bool = True) -> None:
    """Refuse anything but one chain of standard amino acids, capped unless not ``require_caps``."""
    names = [r.name for r in topology.residues()]
    water = sorted({n for n in names if n in WATER_NAMES})
    if water:
        raise ValueError(f"{source}: contains water ({', '.join(water)}); only implicit solvent is "
                         "supported: remove solvent and ions first")
    ions = sorted({r.name for r in topology.residues() if len(list(r.atoms())) == 1})
    if ions:
        raise ValueError(f"{source}: contains single-atom residues (ions?) {ions}; remove them first")
    unknown = sorted({n for n in names if n not in THREE_TO_ONE and n not in CAPS})
    if unknown:
        raise ValueError(f"{source}: unknown residue(s) {unknown}; only standard amino acids and "
                         "the caps ACE/NME are supported")
    if topology.getNumChains() != 1:
        raise ValueError(f"{source}: {topology.getNumChains()} chains; exactly one peptide is supported")
    if any(n in CAPS for n in names[1:-1]):
        raise ValueError(f"{source}: a cap ({', '.join(n for n in names[1:-1] if n in CAPS)}) inside the chain")
    if require_caps and (len(names) < 3 or names[0] != "ACE" or names[-1] != "NME"):
        raise ValueError(f"{source}: residues {names[0]}...{names[-1]}: the peptide must be capped "
                         "as ACE-...-NME")


def load_pdb(path: Union[str, os.PathLike], ph: float = 7.0,
             seed: int = 0) -> Tuple[app.Topology, unit.Quantity]:
    """Read a capped peptide from a PDB file, adding missing heavy atoms and hydrogens.

    Parameters
    ----------
    path : str or os.PathLike
        PDB file of one ACE-...-NME chain, hydrogens optional.
    ph : float, optional
        pH used to add hydrogens.
    seed : int, optional
        Seed of pdbfixer's clash-removal dynamics for added atoms.

    Returns
    -------
    topology : openmm.app.Topology
    positions : openmm.unit.Quantity
        (n_atoms, 3) numpy array in nanometres.

    Raises
    ------
    ValueError
        If the file holds water, ions, non-standard residues, several chains, or an uncapped
        peptide.
    """
    from pdbfixer import PDBFixer

    fixer = PDBFixer(filename=os.fspath(path))
    _check_residues(fixer.topology, os.fspath(path))
    return _complete(fixer, ph, seed)


def is_capped(topology: app.Topology) -> bool:
    """Whether the chain starts with an ACE cap and ends with an NME cap."""
    residues = [r.name for r in topology.residues()]
    return bool(residues) and residues[0] == "ACE" and residues[-1] == "NME"


def sequence_of(topology: app.Topology) -> str:
    """One-letter sequence of the residues between the caps, e.g. ``"A"`` for ACE-ALA-NME."""
    return "".join(THREE_TO_ONE[r.name] for r in topology.residues() if r.name not in CAPS)


@functools.lru_cache(maxsize=1)
def _forcefield() -> app.ForceField:
    # Parsing amber14-all.xml takes about a second; every System reuses one ForceField.
    return app.ForceField(*FORCEFIELD_FILES)


def create_system(topology: app.Topology,
                  hydrogen_mass: Optional[Union[float, unit.Quantity]] = None,
                  constraints: Optional[object] = None) -> openmm.System:
    """Create the reference System: amber14 + built-in OBC2, NoCutoff, no constraints.

    Parameters
    ----------
    topology : openmm.app.Topology
        A peptide, e.g. from :func:`peptide_from_sequence` or :func:`load_pdb`: capped, or with
        the charged termini amber14 has templates for.
    hydrogen_mass : float or openmm.unit.Quantity, optional
        Hydrogen mass repartitioning (amu if a float), e.g. 4 for data generation.  Masses do
        not change the configurational Boltzmann distribution, only the kinetics.
    constraints : optional
        ``app.HBonds`` etc. for a plain-MD baseline as users run it; ``TimewarpIntegrator``
        refuses constrained Systems, since its proposals move every atom.

    Returns
    -------
    openmm.System
        Forces: the amber14 bonded terms, a ``NonbondedForce`` (NoCutoff) and a
        ``GBSAOBCForce`` (OBC2, solute dielectric 1, solvent 78.5, ACE surface term).

    Raises
    ------
    ValueError
        If the topology is not a single peptide of standard residues or is periodic.
    """
    _check_residues(topology, "topology", require_caps=False)
    if topology.getPeriodicBoxVectors() is not None:
        raise ValueError("periodic topologies are not supported: implicit solvent, NoCutoff only")
    forcefield = _forcefield()
    kwargs = {}
    if hydrogen_mass is not None:
        kwargs["hydrogenMass"] = _as_float(hydrogen_mass, unit.amu) * unit.amu
    system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=constraints,
                                     rigidWater=False, removeCMMotion=True, **kwargs)
    nonbonded = next(f for f in system.getForces() if isinstance(f, openmm.NonbondedForce))
    gb = openmm.GBSAOBCForce()
    gb.setNonbondedMethod(openmm.GBSAOBCForce.NoCutoff)
    gb.setSoluteDielectric(SOLUTE_DIELECTRIC)
    gb.setSolventDielectric(SOLVENT_DIELECTRIC)
    # GBSAOBCForce applies the 0.009 nm dielectric offset itself: pass the full radii.
    for i, (radius, scale) in enumerate(GBSAOBC2Force.getStandardParameters(topology)):
        charge = nonbonded.getParticleParameters(i)[0]
        gb.addParticle(charge, float(radius), float(scale))
    system.addForce(gb)
    return system


def chiral_centers(topology: app.Topology) -> List[Tuple[int, int, int, int]]:
    """C-alpha chiral centres as ``(CA, N, C, CB)`` atom-index quadruplets.

    The signed volume ``(N - CA) . ((C - CA) x (CB - CA))`` is positive for L and negative for
    D residues; the integrator's exploration mode rejects moves that flip its sign.  Glycine (no
    CB) has no centre.
    """
    centers = []
    for residue in topology.residues():
        atoms = {a.name: a.index for a in residue.atoms()}
        if all(name in atoms for name in ("CA", "N", "C", "CB")):
            centers.append((atoms["CA"], atoms["N"], atoms["C"], atoms["CB"]))
    return centers


def inverted_centers(positions: np.ndarray, centers: Sequence[Tuple[int, int, int, int]]) -> np.ndarray:
    """Which of the ``(CA, N, C, CB)`` centres (:func:`chiral_centers`) are D in each frame.

    ``positions`` is (n_atoms, 3) or (n_frames, n_atoms, 3); returns a bool array of shape
    (n_centers,) or (n_frames, n_centers): True where the signed volume is negative.
    """
    x = np.asarray(positions, dtype=np.float64)
    if not len(centers):
        return np.zeros(x.shape[:-2] + (0,), dtype=bool)
    ca, n, c, cb = (x[..., list(idx), :] for idx in zip(*centers))
    return np.einsum("...i,...i->...", n - ca, np.cross(c - ca, cb - ca)) < 0


def thermalize(system: openmm.System, positions, temperature: Union[float, unit.Quantity] = 310.0,
               picoseconds: float = 2.0, seed: int = 1) -> unit.Quantity:
    """Minimize, then run a short Langevin MD (1 fs, friction 1/ps, Reference platform).

    A Timewarp chain started from an energy minimum begins with every bond and angle at rest, a
    state that MD almost never visits; its first proposals are then rarely accepted. A few
    picoseconds of MD give the stiff coordinates their thermal spread before sampling starts.

    Returns
    -------
    openmm.unit.Quantity
        The final positions, nm.
    """
    warn_if_slow(system)  # a user's System: its chain will be slow too, and there is a fast equivalent
    kelvin = _as_float(temperature, unit.kelvin)
    integrator = openmm.LangevinMiddleIntegrator(kelvin * unit.kelvin, 1.0 / unit.picosecond, 1.0 * unit.femtosecond)
    integrator.setRandomNumberSeed(seed)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    openmm.LocalEnergyMinimizer.minimize(context)
    context.setVelocitiesToTemperature(kelvin * unit.kelvin, seed)
    integrator.step(int(round(picoseconds * 1000)))
    return context.getState(getPositions=True).getPositions(asNumpy=True)


SLOW_SOLVENT_ADVICE = ("the System computes implicit solvent with a CustomGBForce (as ForceField('amber14-all.xml', "
                 "'implicit/obc2.xml') builds it), 10-30x slower per energy than OpenMM's built-in GBSAOBCForce; "
                 "for amber14 + OBC2, openmm_timewarp.systems.create_system(topology) builds the same model on the "
                 "fast path (energies agree to 1e-4 kJ/mol)")
_told_slow = False


def slow_path_reason(system: openmm.System) -> Optional[str]:
    """Why ``system`` is on a slow path the package has a fast equivalent for, or None.

    Today one case: implicit solvent as a ``CustomGBForce`` (``implicit/obc2.xml``) instead of the
    built-in ``GBSAOBCForce`` that :func:`create_system` uses.
    """
    if any(isinstance(force, openmm.CustomGBForce) for force in system.getForces()):
        return SLOW_SOLVENT_ADVICE
    return None


def warn_if_slow(system: openmm.System, stacklevel: int = 2) -> bool:
    """Warn (:class:`~openmm_timewarp.errors.SlowSystemWarning`, once per process) if ``system`` is on a slow path.

    Returns whether it is, warned or not.
    """
    reason = slow_path_reason(system)
    if reason is not None:
        warn_slow_once(reason, stacklevel + 1)
    return reason is not None


def warn_slow_once(reason: str = SLOW_SOLVENT_ADVICE, stacklevel: int = 2) -> None:
    """Warn (:class:`~openmm_timewarp.errors.SlowSystemWarning`) of a slow path, once per process."""
    import warnings

    from .errors import SlowSystemWarning

    global _told_slow
    if not _told_slow:
        _told_slow = True
        warnings.warn(reason, SlowSystemWarning, stacklevel=stacklevel + 1)
