"""The shipped combination of moves samples a known law exactly through the C++ integrator.

The shipped ``dipeptides`` model file is run as users run it (``TimewarpIntegrator("dipeptides", ...)``
with hybrid Monte Carlo every 2 steps, as it recommends): Ramachandran-density pivots with a basin
prior, side-chain moves (rotamer jumps and symmetric chi increments) and hybrid Monte Carlo, all
accepted with Metropolis-Hastings.  The molecule is ACE-ALA-VAL-NME with a System whose law of
five torsions is known exactly: the force field's bonds, angles and torsions about every other
bond, no nonbonded forces, and on each tested bond one term of known law, a two-dimensional
mixture of von Mises basins for each residue's (phi, psi) and a three-rotamer law for valine's
chi1.  Without nonbonded forces every tested torsion turns a rigid part of a tree about its bond,
which changes no other term's energy and has a unit Jacobian, so the tested torsions follow exactly
the product of their laws whatever the rest of the molecule does.  The force field's torsions about
the other bonds keep the peptide bonds trans, so that free rotors do not pile atoms on top of each
other (the kernels refuse moves that change the bond graph, which would slow mixing, not bias it).

Statistics: the means of cos and sin of each tested torsion against their exact values, with
standard errors from each series' statistical inefficiency (pymbar); 10 z-scores must stay within
4.  Power checks: the same chain of the same length fails the same test when the shipped model's
log ratio lacks the pivots' density ratio, and when its rotamer jumps go one way only (+120
degrees, whose reverse move is never proposed).
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Tuple

import mdtraj as md
import numpy as np
import openmm as mm
import pytest
import torch
from openmm import unit

from conftest import BOLTZMANN
from openmm_timewarp import TimewarpIntegrator, systems
from openmm_timewarp.analysis import backbone_dihedral_indices, statistical_inefficiency, to_mdtraj
from openmm_timewarp.model_file import resolve_model_path

TEMPERATURE = 310.0
KT = BOLTZMANN * TEMPERATURE
SEQUENCE = "AV"
STEPS = 25_000
BURN_IN = 500
Z_LIMIT = 4.0
#: Basins of each residue's (phi, psi) law: (weight, phi centre, psi centre, kappa phi, kappa psi), radians.
#: Beta, PPII, alpha_R and alpha_L, with more alpha_L than a real peptide has, so that pivots must carry
#: mass across phi = 0 where the shipped density has little.
RAMACHANDRAN = [
    [(0.4, -2.2, 2.5, 6.0, 6.0), (0.2, -1.3, 2.6, 8.0, 6.0), (0.3, -1.2, -0.7, 8.0, 8.0), (0.1, 1.0, 0.6, 8.0, 8.0)],
    [(0.3, -2.2, 2.5, 6.0, 6.0), (0.2, -1.3, 2.6, 8.0, 6.0), (0.35, -1.2, -0.7, 8.0, 8.0), (0.15, 1.0, 0.6, 8.0, 8.0)],
]
#: Valine's chi1 law: (weight, centre, kappa) of three rotamers.
CHI1 = [(0.5, -1.05, 3.0), (0.3, math.pi, 3.0), (0.2, 1.05, 3.0)]
NAMES = ["phi1", "psi1", "phi2", "psi2", "chi1"]


def _ramachandran_expression(basins) -> str:
    terms = [f"{w}*exp({a}*(cos(phi-({m}))-1)+{b}*(cos(psi-({n}))-1))" for w, m, n, a, b in basins]
    return f"-{KT}*log({' + '.join(terms)})"


def _torsion_cv(quadruplet) -> mm.CustomTorsionForce:
    force = mm.CustomTorsionForce("theta")
    force.addTorsion(*[int(i) for i in quadruplet], [])
    return force


def law_torsions(topology) -> np.ndarray:
    """Atom quadruplets of phi1, psi1, phi2, psi2 and valine's chi1 (N-CA-CB-CG1)."""
    phi, psi = backbone_dihedral_indices(topology)
    atoms = {(a.residue.index, a.name): a.index for a in topology.atoms()}
    chi1 = [atoms[(2, name)] for name in ("N", "CA", "CB", "CG1")]
    return np.array([phi[0], psi[0], phi[1], psi[1], chi1], dtype=np.int64)


def _covalent_terms(full: mm.System, tested_bonds) -> List[mm.Force]:
    """The force field's bonds and angles, and its torsions about every bond that is not tested."""
    forces = []
    for force in full.getForces():
        if isinstance(force, (mm.HarmonicBondForce, mm.HarmonicAngleForce)):
            forces.append(mm.XmlSerializer.deserialize(mm.XmlSerializer.serialize(force)))
        elif isinstance(force, mm.PeriodicTorsionForce):
            kept = mm.PeriodicTorsionForce()
            for t in range(force.getNumTorsions()):
                a, b, c, d, periodicity, phase, k = force.getTorsionParameters(t)
                if frozenset((b, c)) not in tested_bonds:
                    kept.addTorsion(a, b, c, d, periodicity, phase, k)
            forces.append(kept)
    return forces


def known_law_system(topology) -> mm.System:
    """ACE-ALA-VAL-NME whose tested torsions follow :data:`RAMACHANDRAN` and :data:`CHI1` exactly."""
    full = systems.create_system(topology)
    system = mm.System()
    for i in range(full.getNumParticles()):
        system.addParticle(full.getParticleMass(i))
    quadruplets = law_torsions(topology)
    for force in _covalent_terms(full, {frozenset((int(q[1]), int(q[2]))) for q in quadruplets}):
        system.addForce(force)
    for residue, basins in enumerate(RAMACHANDRAN):
        force = mm.CustomCVForce(_ramachandran_expression(basins))
        force.addCollectiveVariable("phi", _torsion_cv(quadruplets[2 * residue]))
        force.addCollectiveVariable("psi", _torsion_cv(quadruplets[2 * residue + 1]))
        system.addForce(force)
    chi = mm.CustomTorsionForce(f"-{KT}*log({' + '.join(f'{w}*exp({k}*(cos(theta-({m}))-1))' for w, m, k in CHI1)})")
    chi.addTorsion(*[int(i) for i in quadruplets[4]], [])
    system.addForce(chi)
    return system


def exact_marginals(n: int = 720) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """Grid and probabilities of each tested torsion's marginal law, by summing the laws on an n-point grid."""
    grid = (np.arange(n) + 0.5) * 2 * math.pi / n - math.pi
    phi, psi = np.meshgrid(grid, grid, indexing="ij")
    marginals = {}
    for residue, basins in enumerate(RAMACHANDRAN):
        p = sum(w * np.exp(a * (np.cos(phi - m) - 1) + b * (np.cos(psi - c) - 1)) for w, m, c, a, b in basins)
        p /= p.sum()
        marginals[f"phi{residue + 1}"] = (grid, p.sum(axis=1))
        marginals[f"psi{residue + 1}"] = (grid, p.sum(axis=0))
    p = sum(w * np.exp(k * (np.cos(grid - m) - 1)) for w, m, k in CHI1)
    marginals["chi1"] = (grid, p / p.sum())
    return marginals


def sample_torsions(model: str, seed: int = 3) -> Tuple[np.ndarray, float]:
    """Tested torsions (radians) of every step after the burn-in of a chain of the shipped
    combination, and its acceptance rate."""
    topology, positions = systems.peptide_from_sequence(SEQUENCE, seed=1)
    integrator = TimewarpIntegrator(model, topology, TEMPERATURE * unit.kelvin, random_seed=seed, hmc_interval=2)
    context = mm.Context(known_law_system(topology), integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    frames = np.empty((STEPS, topology.getNumAtoms(), 3), np.float32)
    for i in range(STEPS):
        integrator.step(1)
        frames[i] = context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    torsions = md.compute_dihedrals(to_mdtraj(frames[BURN_IN:], topology), law_torsions(topology))
    return torsions, integrator.getAcceptanceRate()


def z_scores(torsions: np.ndarray) -> Dict[str, float]:
    """z-scores of the sample means of cos and sin of each tested torsion against their exact values."""
    scores = {}
    for column, (name, (grid, p)) in enumerate(exact_marginals().items()):
        for f in (np.cos, np.sin):
            mean = float((f(grid) * p).sum())
            variance = float((f(grid) ** 2 * p).sum()) - mean ** 2
            values = f(torsions[:, NAMES.index(name)])
            g = statistical_inefficiency(values)
            scores[f"{f.__name__} {name}"] = (values.mean() - mean) / math.sqrt(variance * g / len(values))
    return scores


class WithoutDensityRatio(torch.nn.Module):
    """The shipped model with the pivots' density ratio dropped from its log ratio (a wrong sampler)."""

    def __init__(self, shipped: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.shipped = shipped

    def forward(self, positions: torch.Tensor, atom_types: torch.Tensor, num_proposals: int):
        y, log_ratio = self.shipped(positions, atom_types, num_proposals)
        return y, torch.where(log_ratio > -1e29, torch.zeros_like(log_ratio), log_ratio)  # refusals stay refused

    @torch.jit.export
    def elements(self) -> List[str]:
        return self.shipped.elements()

    @torch.jit.export
    def lag_time_ps(self) -> float:
        return self.shipped.lag_time_ps()

    @torch.jit.export
    def temperature_kelvin(self) -> float:
        return self.shipped.temperature_kelvin()

    @torch.jit.export
    def has_density(self) -> bool:
        return self.shipped.has_density()

    @torch.jit.export
    def contract_version(self) -> int:
        return self.shipped.contract_version()


def test_the_law_is_exact_for_the_system():
    """The System's energy is the stated law: the tested terms at a frame equal -kT log of the laws."""
    topology, positions = systems.peptide_from_sequence(SEQUENCE, seed=1)
    system = known_law_system(topology)
    tested = system.getNumForces() - 3
    for k in range(tested, system.getNumForces()):
        system.getForce(k).setForceGroup(1)
    context = mm.Context(system, mm.VerletIntegrator(0.001), mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    energy = context.getState(getEnergy=True, groups={1}).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    x = np.asarray(positions.value_in_unit(unit.nanometer))[None]
    t = md.compute_dihedrals(to_mdtraj(x, topology), law_torsions(topology))[0]
    expected = 0.0
    for residue, basins in enumerate(RAMACHANDRAN):
        phi, psi = t[2 * residue], t[2 * residue + 1]
        expected -= KT * math.log(sum(w * math.exp(a * (math.cos(phi - m) - 1) + b * (math.cos(psi - c) - 1))
                                      for w, m, c, a, b in basins))
    expected -= KT * math.log(sum(w * math.exp(k * (math.cos(t[4] - m) - 1)) for w, m, k in CHI1))
    assert energy == pytest.approx(expected, abs=1e-4)  # mdtraj gives the torsions in float32


@pytest.mark.slow
def test_the_shipped_combination_samples_the_exact_law():
    torsions, acceptance = sample_torsions("dipeptides")
    assert 0.1 < acceptance < 0.95
    scores = z_scores(torsions)
    assert all(abs(z) < Z_LIMIT for z in scores.values()), scores


@pytest.mark.slow
def test_the_combination_without_the_density_ratio_is_detected(tmp_path):
    """Power check: the same chain, same length, without log g(x) - log g(y) for pivots, must fail."""
    wrong = torch.jit.script(WithoutDensityRatio(torch.jit.load(resolve_model_path("dipeptides"))))
    path = str(tmp_path / "without_density_ratio.pt")
    torch.jit.save(wrong, path)
    torsions, _ = sample_torsions(path)
    scores = z_scores(torsions)
    assert max(abs(z) for z in scores.values()) > Z_LIMIT, scores


@pytest.mark.slow
def test_the_combination_with_one_way_rotamer_jumps_is_detected(tmp_path):
    """Power check: side-chain jumps of +120 degrees only (no reverse move, same ratio) must fail."""
    shipped = torch.jit.load(resolve_model_path("dipeptides"))
    kernels = [module for _, module in shipped.named_modules() if module.original_name == "BackboneProposal"]
    assert len(kernels) == 1 and len(kernels[0].chi_jumps) == 3  # +-120 and 180 degrees
    kernels[0].chi_jumps = [2 * math.pi / 3]
    path = os.path.join(tmp_path, "one_way_jumps.pt")
    torch.jit.save(shipped, path)
    torsions, _ = sample_torsions(path)
    scores = z_scores(torsions)
    assert max(abs(z) for z in scores.values()) > Z_LIMIT, scores
