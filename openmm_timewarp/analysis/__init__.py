"""Analysis of peptide trajectories: dihedrals, basins, histograms, JSD, ESS, plots, and the shipped references.

The references' reader lives in :mod:`openmm_timewarp.reference.io` and is re-exported here;
:mod:`.acceptance` (proposal acceptance by basin) runs a model and is imported on its own.
"""

from .basins import BASIN_NAMES, PHI_POSITIVE, assign_basins, basin_indicators
from .dihedrals import backbone_dihedral_indices, backbone_dihedrals, residues_with_phi_and_psi, to_mdtraj
from .ess import (basin_entries, basin_populations, dihedral_features, effective_sample_size,
                  ess_report, fit_tica, observables, statistical_inefficiency)
from .histogram import BIN_EDGES, N_BINS, jensen_shannon, ramachandran_histogram
from .plot import plot_free_energy
from ..reference.io import REFERENCE_DIR, Reference, available_references, load_reference, reference_name

__all__ = [
    "BASIN_NAMES", "PHI_POSITIVE", "assign_basins", "basin_indicators",
    "backbone_dihedral_indices", "backbone_dihedrals", "residues_with_phi_and_psi", "to_mdtraj",
    "basin_entries", "basin_populations", "dihedral_features", "effective_sample_size",
    "ess_report", "fit_tica", "observables", "statistical_inefficiency",
    "BIN_EDGES", "N_BINS", "jensen_shannon", "ramachandran_histogram",
    "plot_free_energy", "REFERENCE_DIR", "Reference", "available_references", "load_reference", "reference_name",
]
