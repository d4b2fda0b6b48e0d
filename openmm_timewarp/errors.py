"""The exceptions and warnings the library raises for its users' input."""
from __future__ import annotations

__all__ = ["InputError", "ModelDomainWarning", "NonErgodicWarning", "SlowSystemWarning", "UncertainPopulationsWarning"]


class InputError(ValueError):
    """An input the library refuses (a file, a model, a setting), with a message meant for the user.

    The command line prints it as one line and exits with status 2, without a traceback.
    """


class ModelDomainWarning(UserWarning):
    """A run lies outside what the proposal model was trained for: residues, peptide length,
    termini or temperature.  Metropolis-Hastings keeps the sampling exact; the acceptance rate may drop.

    Runs record each such warning in their summary; the command line prints it as one
    ``warning:`` line.
    """


class NonErgodicWarning(UserWarning):
    """The integrator's settings leave coordinates that the model's moves never change: the chain
    samples a conditional distribution, not the Boltzmann distribution of the System."""


class SlowSystemWarning(UserWarning):
    """A System computes something much more slowly than an equivalent the package builds
    (implicit solvent as a ``CustomGBForce``); the message names the faster construction."""


class UncertainPopulationsWarning(UserWarning):
    """The exact run that gives a TITO run its basin populations was too short to know them: a
    population's standard error exceeds :data:`~openmm_timewarp.run.tito.POPULATION_TOLERANCE`.
    The TITO chain keeps whatever populations it is told, so their error becomes its error."""
