"""Equilibrium references of capped peptides: the shipped data and the code that makes them.

The folder holds the references themselves (``<name>.npz``, described in ``README.md``) and:

- :mod:`.io`: reading them (:func:`load_reference`, also exported by :mod:`openmm_timewarp.analysis`);
- :mod:`.settings`: :class:`~.settings.ReferenceSettings`, what defines one run;
- :mod:`.bias`: the biased torsions and the bias forces (metadynamics grid, residue bias);
- :mod:`.simulation`: the biased System and its Langevin simulation;
- :mod:`.build`: phase 1, the bias build; :mod:`.production`: phase 2, static-bias chunks;
- :mod:`.finalize`: reweighted histograms, populations and the written file;
- :mod:`.make`: one run folder from start to file (resumable); :mod:`.pool`: several runs in one file.

Only the reader is imported here; the rest needs OpenMM and mdtraj and is imported where used.
"""

from .io import REFERENCE_DIR, Reference, available_references, load_reference, reference_name

__all__ = ["REFERENCE_DIR", "Reference", "available_references", "load_reference", "reference_name"]
