"""The Python face of the C++ ``TimewarpIntegrator``: model files, topologies, units and warnings."""
from __future__ import annotations

import copy
import math
import os
import warnings
from typing import Iterable, Optional, Sequence, Tuple, Union

from openmm import XmlSerializer, app, unit

from . import timewarpplugin as _plugin
from .errors import InputError, ModelDomainWarning, NonErgodicWarning
from .model_file import ModelFile

Temperature = Union[float, unit.Quantity]
Energy = Union[float, unit.Quantity]
Time = Union[float, unit.Quantity]
Mass = Union[float, unit.Quantity]
ModelLike = Union[str, os.PathLike, ModelFile]


def _value_in(value, units: unit.Unit) -> float:
    """A float in ``units`` from a Quantity, or a float taken to be in ``units`` already."""
    return value.value_in_unit(units) if unit.is_quantity(value) else float(value)


def _temperature_kelvin(temperature: Temperature) -> float:
    """The temperature in kelvin; an :class:`InputError` unless it is positive and finite."""
    kelvin = _value_in(temperature, unit.kelvin)
    if not (math.isfinite(kelvin) and kelvin > 0):
        raise InputError(f"the temperature must be positive and finite, not {kelvin:g} K")
    return kelvin


def _element_symbols(topology: Union[app.Topology, Iterable[str]]) -> list:
    if not isinstance(topology, app.Topology):
        return [str(symbol) for symbol in topology]
    symbols = []
    for atom in topology.atoms():
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({atom.name} of {atom.residue.name}{atom.residue.id}) has no element; "
                             "virtual sites and extra particles are not supported")
        symbols.append(atom.element.symbol)
    return symbols


def _warn_outside_domain(model_file: ModelFile, topology: Union[app.Topology, Sequence[str]], kelvin: float) -> None:
    """Warn (:class:`ModelDomainWarning`) when the peptide or the temperature lies outside the
    model's training domain (:meth:`ModelFile.domain_warnings`)."""
    from .systems import is_capped, sequence_of

    sequence, capped = "", True
    if isinstance(topology, app.Topology):
        try:
            sequence = sequence_of(topology)
        except KeyError:  # a residue without a one-letter code: not a peptide the models' domains describe
            pass
        capped = is_capped(topology)
    for message in model_file.domain_warnings(sequence, capped, kelvin):
        warnings.warn(message, ModelDomainWarning, stacklevel=3)


class TimewarpIntegrator(_plugin.TimewarpIntegrator):
    """Sample the Boltzmann distribution with large moves proposed by a learned model.

    Each step draws a proposal from a conditional normalizing flow trained on molecular dynamics
    (Timewarp, Klein et al. 2023) and accepts it with the Metropolis-Hastings rule against the
    potential energy the ``Context`` computes, so every force of the System, bias forces included,
    defines the target distribution. A rejected proposal is a step that keeps the current state;
    the step size is the model's lag time.

    Velocities carry no dynamics: after every call to ``step()`` they are drawn afresh from the
    Maxwell-Boltzmann distribution at ``temperature``, so reporters show the sampling temperature.

    Large learned moves mix the slow coordinates; bonds, angles and rotors then relax through
    hybrid Monte Carlo moves interleaved with the steps (``hmc_interval``): fresh velocities, a
    short velocity Verlet trajectory and a Metropolis test on the total energy, exact on their own.
    ``getHMCAcceptanceRate()`` reports them; they do not count as steps.

    The model file is read once (:meth:`ModelFile.open <openmm_timewarp.model_file.ModelFile.open>`)
    and its bytes are handed to the C++ integrator, which keeps them: ``XmlSerializer`` output,
    pickles and copies embed the model and do not need the file again.

    Parameters
    ----------
    model
        The name of a shipped model, the path of a TorchScript proposal model (contract version 1),
        or an open :class:`~openmm_timewarp.model_file.ModelFile`.
    topology
        The ``Topology`` of the System (its elements are mapped to the model's), or a sequence of
        element symbols, one per particle.
    temperature
        Temperature of the sampled distribution (kelvin if a float); positive and finite.
    metropolis_hastings
        Accept with Metropolis-Hastings (exact sampling). If False the integrator is in exploration
        mode: it accepts any proposal that raises the energy by less than
        ``exploration_energy_threshold`` and keeps every chiral centre, which visits metastable
        states quickly but does **not** sample the Boltzmann distribution.
    proposals_per_batch
        Proposals requested from the model at once; the maximum when ``adaptive_batch_size``.
    adaptive_batch_size
        Choose the batch size from the acceptance rate so that a batch holds an accepted proposal
        with probability about 0.9.
    exploration_energy_threshold
        Largest energy increase exploration mode accepts (kJ/mol if a float).
    random_seed
        Seed of the acceptance test, the velocities and the model's proposals; 0 picks a unique one.
    hmc_interval
        One hybrid Monte Carlo move after every ``hmc_interval`` steps; 0 for none. None (the
        default) takes the model's recommendation (the ``timewarp.json`` entry of the model file,
        which the shipped models carry; 0 for a file without one). Setting 0 for a model whose
        moves never change bond lengths and angles (``needs_fast_coordinate_moves``) warns with
        :class:`~openmm_timewarp.errors.NonErgodicWarning` rather than refusing: such a chain is
        still a valid Metropolis-Hastings chain of a conditional distribution, which is what an
        ablation study or a chain started from an equilibrated structure may want.
    hmc_steps
        Velocity Verlet steps per hybrid Monte Carlo move; None for the model's recommendation.
    hmc_step_size
        Velocity Verlet step size of hybrid Monte Carlo moves (ps if a float); None for the
        model's recommendation.
    hmc_minimum_mass
        Smallest particle mass in hybrid Monte Carlo moves (daltons if a float): lighter particles
        (hydrogens) move with this mass, which allows longer steps and leaves the sampled
        distribution of positions unchanged (the masses are only the kinetic energy's metric).
        0 uses the System's masses; None the model's recommendation.
    chiral_centers
        ``(center, a, b, c)`` atom index quadruplets whose handedness exploration mode keeps. By
        default the C-alpha atoms of the topology's amino acids.
    warn_outside_domain
        Warn (:class:`~openmm_timewarp.errors.ModelDomainWarning`) when ``topology`` is a peptide
        outside what the model was trained for, or ``temperature`` is more than 1 K from the
        model's (:meth:`ModelFile.domain_warnings`); callers that report it otherwise pass False.

    Raises
    ------
    InputError
        For an invalid temperature, or a model that cannot be found or read.
    openmm.OpenMMException
        For a model the C++ loader refuses (see ``docs/model-contract.md``) or an element it does
        not know.
    """

    def __init__(self, model: ModelLike, topology: Union[app.Topology, Sequence[str]],
                 temperature: Temperature = 310.0 * unit.kelvin, *, metropolis_hastings: bool = True,
                 proposals_per_batch: int = 256, adaptive_batch_size: bool = True,
                 exploration_energy_threshold: Energy = 300.0 * unit.kilojoule_per_mole, random_seed: int = 0,
                 chiral_centers: Optional[Iterable[Tuple[int, int, int, int]]] = None,
                 hmc_interval: Optional[int] = None, hmc_steps: Optional[int] = None,
                 hmc_step_size: Optional[Time] = None, hmc_minimum_mass: Optional[Mass] = None,
                 warn_outside_domain: bool = True):
        kelvin = _temperature_kelvin(temperature)
        model_file = ModelFile.open(model)
        # The C++ object loads the bytes once and applies the model's recommended HMC settings.
        super().__init__(model_file.data, _element_symbols(topology), kelvin, model_file.path)
        self._apply_hmc_settings(model_file, hmc_interval, hmc_steps, hmc_step_size, hmc_minimum_mass)
        self.setProposalsPerBatch(proposals_per_batch)
        self.setAdaptiveBatchSize(adaptive_batch_size)
        self.setExplorationEnergyThreshold(_value_in(exploration_energy_threshold, unit.kilojoule_per_mole))
        self.setRandomNumberSeed(random_seed)
        self.setMetropolisHastings(metropolis_hastings)
        if chiral_centers is None and isinstance(topology, app.Topology):
            from .systems import chiral_centers as find_chiral_centers
            chiral_centers = find_chiral_centers(topology)
        for center in chiral_centers or ():
            self.addChiralCenter(*center)
        if warn_outside_domain:
            _warn_outside_domain(model_file, topology, kelvin)

    def step(self, steps: int) -> None:
        """Take ``steps`` Metropolis-Hastings steps (see :meth:`openmm.Integrator.step`).

        The first call on a Context whose System computes implicit solvent with a
        ``CustomGBForce`` warns once (:class:`~openmm_timewarp.errors.SlowSystemWarning`) and names
        the fast equivalent.
        """
        if not getattr(self, "_system_checked", False):
            self._system_checked = True
            if self.getSystemHasCustomGBForce():
                from .systems import warn_slow_once

                warn_slow_once(stacklevel=3)
        super().step(steps)

    def _apply_hmc_settings(self, model_file: ModelFile, interval: Optional[int], steps: Optional[int],
                            step_size: Optional[Time], minimum_mass: Optional[Mass] = None) -> None:
        """Override the model's recommended hybrid Monte Carlo settings where given; warn if the
        chain is then not ergodic."""
        if interval is not None:
            self.setHMCInterval(interval)
        if steps is not None:
            self.setHMCSteps(steps)
        if step_size is not None:
            self.setHMCStepSize(_value_in(step_size, unit.picosecond))
        if minimum_mass is not None:
            self.setHMCMinimumMass(_value_in(minimum_mass, unit.dalton))
        if model_file.needs_fast_coordinate_moves and self.getHMCInterval() == 0:
            recommended = self.getModelRecommendedHMCInterval()
            advice = f"use the model's recommended hmc_interval ({recommended})" if recommended > 0 else \
                "set hmc_interval > 0"
            warnings.warn(f"hmc_interval is 0, but the moves of model {model_file.name} never change bond lengths "
                          "and angles: the chain will not be ergodic (it samples them conditioned on their starting "
                          f"values, not the Boltzmann distribution); {advice} for exact sampling", NonErgodicWarning,
                          stacklevel=3)

    def _adopt(self, other: _plugin.TimewarpIntegrator) -> "TimewarpIntegrator":
        """Give a new C++ integrator this Python class and a copy of this object's Python attributes."""
        other.__class__ = self.__class__
        other.__dict__.update(copy.deepcopy({k: v for k, v in self.__dict__.items() if k != "this"}))
        return other

    def __copy__(self) -> "TimewarpIntegrator":
        return self._adopt(_plugin.TimewarpIntegrator._clone(self))

    def __deepcopy__(self, memo) -> "TimewarpIntegrator":
        return self.__copy__()

    def __getstate__(self) -> str:
        return XmlSerializer.serialize(self)

    @classmethod
    def deserialize(cls, xml: str) -> "TimewarpIntegrator":
        """The integrator an XML string of ``XmlSerializer.serialize`` describes, as this class.

        ``openmm.XmlSerializer.deserialize`` returns it typed as a plain ``openmm.Integrator``
        (OpenMM's Python layer knows only its own classes); this gives the full Python class.
        The model travels inside the XML, so its file need not exist.
        """
        restored = cls.__new__(cls)
        restored.__setstate__(xml)
        return restored

    def __setstate__(self, xml: str) -> None:
        restored = _plugin.TimewarpIntegrator._deserialize(xml)
        restored.thisown = False  # ownership of the C++ object passes to self
        self.this = restored.this
        self.thisown = True
