"""The exceptions and warnings the library raises for its users' input."""
from __future__ import annotations

__all__ = ["InputError", "ModelDomainWarning", "NonErgodicWarning"]


class InputError(ValueError):
    """An input the library refuses (a file, a model, a setting), with a message meant for the user.

    The command line prints it as one line and exits with status 2, without a traceback.
    """


class ModelDomainWarning(UserWarning):
    """A molecule lies outside what the proposal model was trained for (sampling stays exact)."""


class NonErgodicWarning(UserWarning):
    """The integrator's settings leave coordinates that the model's moves never change: the chain
    samples a conditional distribution, not the Boltzmann distribution of the System."""
