"""From a user's PDB file to a checked, protonated peptide ready for a System.

The peptide keeps the chemistry of the file: its termini stay as they are (charged NH3+/COO- if
the file has no caps) unless the caller asks for ACE/NME caps (``cap_termini``).  pdbfixer adds
missing heavy atoms and hydrogens; every atom added or removed is listed in :class:`Prepared`.
Every refusal is an :class:`~openmm_timewarp.errors.InputError` whose message names the problem
and, where there is one, the option or edit that fixes it.  Checks run on the file as read, before
pdbfixer touches it, so that the message talks about the user's residues and not about atoms
pdbfixer made up.  Given a proposal model, the prepared peptide is also checked against what the
model supports (its elements and its size limit) and against what it was trained on (notes).
"""
from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
from openmm import app, unit

from . import systems
from .errors import InputError
from .model_file import ModelFile, ModelLike
from .systems import THREE_TO_ONE, WATER_NAMES, place_atom

__all__ = ["check_readable", "Prepared", "prepare_peptide", "BACKBONE_ATOMS"]

PathLike = Union[str, os.PathLike]
_ION_NAMES = {"NA", "CL", "K", "MG", "CA", "ZN", "LI", "RB", "CS", "F", "BR", "I", "MN", "FE",
              "CU", "NI", "CO", "CD", "SOD", "CLA", "POT", "CAL", "NA+", "CL-", "K+"}
_TERMINAL_N_HYDROGENS = {"H1", "H2", "H3", "HN1", "HN2", "HN3", "HT1", "HT2", "HT3"}
_TERMINAL_C_ATOMS = {"OXT", "HXT", "OT2", "OT1"}
_MAX_PEPTIDE_BOND = 0.2  # nm; a C-N peptide bond is 0.133 nm, anything past 0.2 is a break
#: Backbone atoms every amino acid of the file must have: pdbfixer would rebuild them with made-up
#: geometry, so their absence is refused as an incomplete file.
BACKBONE_ATOMS = ("N", "CA", "C")


@dataclass
class Prepared:
    """A checked peptide: topology and positions (nm) after pdbfixer, and what was changed.

    Attributes
    ----------
    topology, positions
        The completed peptide.
    sequence : str
        One-letter sequence of the residues between the caps (all residues if uncapped).
    notes : list of str
        What was changed, in words (caps, stripped solvent, atoms added or removed).
    atoms_added, atoms_removed : dict
        Residue label (as numbered in the file; caps as in the prepared peptide) -> atom names.
    capped : bool
        Whether both termini carry ACE/NME caps (from the file or ``cap_termini``).
    domain_warnings : list of str
        Given a model, why the peptide lies outside what the model was trained for (see
        :meth:`~openmm_timewarp.model_file.ModelFile.domain_warnings`); the runs show each as a :class:`~openmm_timewarp.errors.ModelDomainWarning`.
    """

    topology: app.Topology
    positions: unit.Quantity
    sequence: str
    notes: List[str] = field(default_factory=list)
    atoms_added: Dict[str, List[str]] = field(default_factory=dict)
    atoms_removed: Dict[str, List[str]] = field(default_factory=dict)
    capped: bool = True
    domain_warnings: List[str] = field(default_factory=list)


def check_readable(path: PathLike) -> None:
    """Refuse a path that is not a readable file (an :class:`InputError`; cheap, for before any slow set-up)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise InputError(f"{path}: is a folder, not a PDB file")
    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: not readable (permission denied)")


def _read(path: str) -> app.PDBFile:
    check_readable(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pdb = app.PDBFile(path)
    except Exception as error:  # PDBFile raises many kinds of errors on malformed text
        raise InputError(f"{path}: cannot read it as a PDB file ({type(error).__name__}: {error})") from None
    if pdb.topology.getNumAtoms() == 0:
        raise InputError(f"{path}: no atoms found; is it a PDB file?")
    return pdb


def _is_solvent(residue: app.Residue) -> bool:
    return residue.name in WATER_NAMES or residue.name.upper() in _ION_NAMES or \
        (len(list(residue.atoms())) == 1 and residue.name not in systems.CAPS)


def _check_chain(topology: app.Topology, xyz: np.ndarray, path: str) -> None:
    """Refuse ligands, non-standard residues, several chains and chain breaks."""
    odd = sorted({f"{r.name}{r.id}" for r in topology.residues()
                  if r.name not in THREE_TO_ONE and r.name not in systems.CAPS})
    if odd:
        raise InputError(f"{path}: ligand or non-standard residue(s) {', '.join(odd)}; only the 20 standard "
                         "amino acids and the ACE/NME caps are supported: remove them from the file")
    if topology.getNumChains() != 1:
        raise InputError(f"{path}: {topology.getNumChains()} chains; give one peptide chain")
    residues = list(topology.residues())
    for residue in residues:
        names = {a.name for a in residue.atoms()}
        lacking = [name for name in BACKBONE_ATOMS if name not in names]
        if residue.name in THREE_TO_ONE and lacking:
            raise InputError(f"{path}: {residue.name}{residue.id} has no backbone atom(s) {', '.join(lacking)}; "
                             "the file looks incomplete (truncated?): give every residue its N, CA and C")
    for before, after in zip(residues[:-1], residues[1:]):
        c = next((a.index for a in before.atoms() if a.name == "C"), None)
        n = next((a.index for a in after.atoms() if a.name == "N"), None)
        if c is None or n is None:
            raise InputError(f"{path}: chain break between {before.name}{before.id} and {after.name}{after.id} "
                             "(no C or N backbone atom to bond them)")
        distance = float(np.linalg.norm(xyz[c] - xyz[n]))
        if distance > _MAX_PEPTIDE_BOND:
            raise InputError(f"{path}: chain break between {before.name}{before.id} and {after.name}{after.id} "
                             f"(C-N distance {distance:.2f} nm); sample each fragment separately")


def _cap(modeller: app.Modeller, path: str, notes: List[str]) -> None:
    """Add the heavy atoms of ACE/NME caps to bare termini; pdbfixer adds their hydrogens."""
    residues = list(modeller.topology.residues())
    first, last = residues[0], residues[-1]
    drop = [a for a in first.atoms() if first.name != "ACE" and a.name in _TERMINAL_N_HYDROGENS]
    drop += [a for a in last.atoms() if last.name != "NME" and a.name in _TERMINAL_C_ATOMS]
    modeller.delete(drop)
    atoms = {(a.residue.index, a.name): a for a in modeller.topology.atoms()}
    xyz = np.array(modeller.positions.value_in_unit(unit.angstrom))
    old = list(modeller.topology.residues())
    topology = app.Topology()
    chain = topology.addChain(next(modeller.topology.chains()).id)
    positions = []

    def add(name: str, element: str, residue: app.Residue, where: np.ndarray) -> None:
        topology.addAtom(name, app.Element.getBySymbol(element), residue)
        positions.append(where)

    def at(residue: app.Residue, name: str) -> np.ndarray:
        if (residue.index, name) not in atoms:
            raise InputError(f"{path}: cannot add a cap to {residue.name}{residue.id}: it has no backbone atom "
                             f"{name}; the file looks incomplete (truncated?)")
        return xyz[atoms[(residue.index, name)].index]

    if first.name != "ACE":
        # ACE's heavy atoms: its C at phi = -70 degrees (PPII), then a trans peptide bond.
        n, ca = at(old[0], "N"), at(old[0], "CA")
        c = place_atom(at(old[0], "C"), ca, n, 1.329, 121.7, -70.0)
        ace = topology.addResidue("ACE", chain)
        add("CH3", "C", ace, place_atom(ca, n, c, 1.525, 116.2, 180.0))
        add("C", "C", ace, c)
        add("O", "O", ace, place_atom(ca, n, c, 1.231, 122.5, 0.0))
        notes.append(f"added an ACE cap before {first.name}{first.id} (asked for by cap_termini)")
    for residue in old:
        new = topology.addResidue(residue.name, chain, residue.id, residue.insertionCode)
        for atom in residue.atoms():
            add(atom.name, atom.element.symbol, new, xyz[atom.index])
    if last.name != "NME":
        # NME's N in the peptide plane opposite the carbonyl O, its methyl trans to CA.
        ca, c = at(old[-1], "CA"), at(old[-1], "C")
        n = place_atom(at(old[-1], "O"), ca, c, 1.329, 116.2, 180.0)
        nme = topology.addResidue("NME", chain)
        add("N", "N", nme, n)
        add("C", "C", nme, place_atom(ca, c, n, 1.458, 121.7, 180.0))
        notes.append(f"added an NME cap after {last.name}{last.id} (asked for by cap_termini)")
    topology.createStandardBonds()
    modeller.topology, modeller.positions = topology, unit.Quantity(np.array(positions), unit.angstrom)


def _read_atoms(path: str) -> app.PDBFile:
    """The file's atoms, refused for non-finite coordinates or atoms without an element."""
    pdb = _read(path)
    xyz = np.array(pdb.positions.value_in_unit(unit.nanometer))
    if not np.all(np.isfinite(xyz)):
        bad = sorted({f"{a.residue.name}{a.residue.id}:{a.name}" for a in pdb.topology.atoms()
                      if not np.all(np.isfinite(xyz[a.index]))})
        raise InputError(f"{path}: NaN or infinite coordinates for atom(s) {', '.join(bad[:5])}")
    missing = sorted({f"{a.residue.name}{a.residue.id}:{a.name}" for a in pdb.topology.atoms() if a.element is None})
    if missing:
        raise InputError(f"{path}: unknown element for atom(s) {', '.join(missing[:5])}; "
                         "give element symbols in columns 77-78")
    return pdb


def _remove_solvent(modeller: app.Modeller, path: str, strip_solvent: bool, notes: List[str]) -> None:
    solvent = [r for r in modeller.topology.residues() if _is_solvent(r)]
    if not solvent:
        return
    names = ", ".join(sorted({r.name for r in solvent}))
    if not strip_solvent:
        raise InputError(f"{path}: contains {len(solvent)} water/ion residue(s) ({names}); the System uses "
                         "implicit solvent: pass --strip-solvent (strip_solvent=True) to remove them")
    modeller.delete(solvent)
    notes.append(f"removed {len(solvent)} water/ion residue(s) ({names})")


def _complete(modeller: app.Modeller, path: str, ph: float, seed: int) -> Tuple[app.Topology, unit.Quantity]:
    """pdbfixer's missing atoms and hydrogens, through a temporary file (what pdbfixer reads)."""
    with tempfile.TemporaryDirectory() as tmp:
        capped = os.path.join(tmp, "capped.pdb")
        with open(capped, "w") as f:
            app.PDBFile.writeFile(modeller.topology, modeller.positions, f)
        try:
            from pdbfixer import PDBFixer

            # The checks load_pdb makes ran on the file already; load_pdb itself would insist on caps.
            return systems._complete(PDBFixer(filename=capped), ph, seed)
        except ValueError as error:
            raise InputError(f"{path}: {str(error).replace(capped, 'structure')}") from None


def _atom_changes(before: app.Topology, after: app.Topology, caps: Tuple[bool, bool]
                  ) -> Tuple[Dict[str, List[str]], Dict[str, List[str]]]:
    """Atoms added and removed per residue, between the file's peptide and the prepared one.

    ``caps`` says whether an ACE (first) and an NME (last) were added, so that the residues of the
    file line up with the prepared ones; the file's residues keep the file's numbering.
    """
    old, new = list(before.residues()), list(after.residues())
    new_caps = ([new[0]] if caps[0] else []) + ([new[-1]] if caps[1] else [])
    matched = new[int(caps[0]):len(new) - int(caps[1])]
    added = {f"{r.name}{r.id}": [a.name for a in r.atoms()] for r in new_caps}
    removed = {}
    for was, now in zip(old, matched):
        was_names, now_names = [a.name for a in was.atoms()], [a.name for a in now.atoms()]
        label = f"{was.name}{was.id}"
        plus, minus = [n for n in now_names if n not in was_names], [n for n in was_names if n not in now_names]
        if plus:
            added[label] = plus
        if minus:
            removed[label] = minus
    return added, removed


def _listed_atoms(atoms: Dict[str, List[str]]) -> str:
    return f"{sum(map(len, atoms.values()))} atom(s): " + "; ".join(f"{label} {' '.join(names)}"
                                                                  for label, names in atoms.items())


def prepare_peptide(path: PathLike, model: Optional[ModelLike] = None, strip_solvent: bool = False,
                    ph: float = 7.0, seed: int = 0, cap_termini: bool = False) -> Prepared:
    """Check a PDB file and complete it with pdbfixer (missing atoms and hydrogens).

    Parameters
    ----------
    path
        The PDB file: one chain of standard amino acids, capped or not.
    model
        The proposal model (a :class:`~openmm_timewarp.model_file.ModelFile`, a shipped name or a
        path), for its elements and its training domain; None for plain MD.
    strip_solvent
        Remove waters and ions instead of refusing them.
    ph
        pH of the added hydrogens.
    seed
        Seed of pdbfixer's placement of missing atoms.
    cap_termini
        Replace charged termini with ACE/NME caps (a different molecule, the one the shipped models
        were trained on).  Without it the termini stay as the file has them.

    Returns
    -------
    Prepared
        Its ``notes``, ``atoms_added`` and ``atoms_removed`` say what was changed; given a model,
        its ``domain_warnings`` say why the peptide lies outside the model's training domain
        (sampling stays exact; proposals may be poor).

    Raises
    ------
    InputError
        For an unreadable file, NaN coordinates, solvent (without ``strip_solvent``), ligands or
        non-standard residues, several chains, chain breaks, missing backbone atoms (an incomplete
        file), or elements unknown to the model.
    """
    path = os.fspath(path)
    pdb = _read_atoms(path)
    modeller, notes = app.Modeller(pdb.topology, pdb.positions), []
    _remove_solvent(modeller, path, strip_solvent, notes)
    _check_chain(modeller.topology, np.array(modeller.positions.value_in_unit(unit.nanometer)), path)
    before = modeller.topology
    residues = list(before.residues())
    caps = (False, False)
    if cap_termini:
        caps = (residues[0].name != "ACE", residues[-1].name != "NME")
        _cap(modeller, path, notes)
    topology, positions = _complete(modeller, path, ph, seed)
    added, removed = _atom_changes(before, topology, caps)
    notes += [f"{verb} {_listed_atoms(atoms)}" for verb, atoms in (("added", added), ("removed", removed)) if atoms]
    prepared = Prepared(topology, positions, systems.sequence_of(topology), notes, added, removed,
                        capped=systems.is_capped(topology))
    if model is not None:
        model = ModelFile.open(model)
        model.check_elements([a.element.symbol for a in topology.atoms()], source=path)
        prepared.domain_warnings = model.domain_warnings(prepared.sequence, prepared.capped)
    return prepared
