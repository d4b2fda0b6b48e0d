"""Shared fixtures: small systems with exactly known distributions and test proposal models."""
from __future__ import annotations

import os
import sys

import numpy as np
import openmm as mm
import pytest

# tests/known_proposals.py and tests/kernel_cli.py are helpers shared by test modules in the folders below.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openmm_timewarp  # noqa: E402,F401  (registers the plugin kernels)
from openmm_timewarp import TimewarpIntegrator  # noqa: E402
import known_proposals as proposals  # noqa: E402

BOLTZMANN = 0.00831446261815324  # kJ/mol/K
KT_300 = BOLTZMANN * 300.0  # kJ/mol

#: Why the CUDA kernel cannot be tested here (no GPU, no OpenMM CUDA platform, or a build without the
#: kernel), or None when it can.
CUDA_SKIP_REASON = (None if openmm_timewarp.CUDA_KERNEL_UNAVAILABLE is None
                    else f"CUDA kernel not testable here: {openmm_timewarp.CUDA_KERNEL_UNAVAILABLE}")
requires_cuda = pytest.mark.skipif(CUDA_SKIP_REASON is not None, reason=CUDA_SKIP_REASON or "")
#: Every platform the platform-parametrised tests run on; CUDA is skipped with the reason where it cannot run.
PLATFORMS = ["Reference", "CPU", pytest.param("CUDA", marks=requires_cuda)]
#: The repository root, and the example peptide every layer's tests use.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALA_PDB = os.path.join(ROOT, "examples", "data", "ace-ala-nme.pdb")


def cli_options() -> dict:
    """Keyword arguments of ``subprocess.run``/``Popen`` for ``python -m openmm_timewarp.cli``: the
    package these tests imported (installed, or the built source tree) first on its path, one torch
    thread, and a working folder outside the repository root, whose source folder would otherwise
    shadow the installed package."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(openmm_timewarp.__file__)))
    env = dict(os.environ, PYTHONPATH=parent + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return dict(env=env, cwd=os.path.dirname(ALA_PDB))


@pytest.fixture(params=PLATFORMS)
def platform(request) -> mm.Platform:
    return mm.Platform.getPlatformByName(request.param)


@pytest.fixture(scope="session")
def walk_model(tmp_path_factory) -> str:
    """A tiny symmetric Gaussian walk of peptide atoms (the elements of the shipped models, 310 K):
    runs of the command line that need a model without the cost of a real one."""
    return proposals.save(proposals.GaussianDriftProposal(0.0, 0.001, ["H", "C", "N", "O", "S"], temperature=310.0),
                          tmp_path_factory.mktemp("model") / "walk.pt")


@pytest.fixture
def drift_model(tmp_path) -> str:
    """An asymmetric Gaussian proposal for argon atoms with an exact log ratio."""
    return proposals.save(proposals.GaussianDriftProposal(0.2, 0.4, ["Ar"]), tmp_path / "drift.pt")


def sample_positions(model_path, elements, system: mm.System, positions, steps: int, seed: int,
                     temperature: float) -> tuple:
    """Positions (steps, N, 3) after each of ``steps`` steps of a TimewarpIntegrator on the Reference
    platform, and its acceptance rate (read while its Context exists)."""
    integrator = TimewarpIntegrator(str(model_path), elements, temperature, random_seed=seed)
    context = mm.Context(system, integrator, mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    x = np.empty((steps, system.getNumParticles(), 3))
    for i in range(steps):
        integrator.step(1)
        x[i] = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    return x, integrator.getAcceptanceRate()


def harmonic_system(num_particles: int = 1, sigma: float = 0.5, temperature: float = 300.0) -> mm.System:
    """Particles in an isotropic harmonic well whose Boltzmann distribution at ``temperature`` (K)
    has standard deviation ``sigma`` (nm)."""
    system = mm.System()
    force = mm.CustomExternalForce("0.5*k*(x^2+y^2+z^2)")
    force.addGlobalParameter("k", BOLTZMANN * temperature / sigma**2)
    for i in range(num_particles):
        system.addParticle(39.948)
        force.addParticle(i, [])
    system.addForce(force)
    return system


# Chains on argon atoms (test_sampling.py, test_hmc.py).

Z_LIMIT = 4.5  # |z| beyond this has probability < 1e-5 for a correct sampler


def make_chain(model: str, system: mm.System, platform: mm.Platform, seed: int = 7, start=(0.0, 0.0, 0.0),
               **options) -> tuple:
    """A TimewarpIntegrator on argon atoms and a Context with every atom at ``start``."""
    integrator = TimewarpIntegrator(model, ["Ar"] * system.getNumParticles(), 300.0, random_seed=seed, **options)
    context = mm.Context(system, integrator, platform)
    context.setPositions([mm.Vec3(*start)] * system.getNumParticles())
    return integrator, context


def record(integrator: TimewarpIntegrator, context: mm.Context, samples: int) -> np.ndarray:
    """Positions of particle 0 after each of ``samples`` steps."""
    out = np.empty((samples, 3))
    for i in range(samples):
        integrator.step(1)
        out[i] = context.getState(getPositions=True).getPositions(asNumpy=True)._value[0]
    return out


def z_score(series: np.ndarray, expected: float, variance: float) -> float:
    """Deviation of the mean of a correlated series from its exact value, in standard errors."""
    from pymbar import timeseries

    g = timeseries.statistical_inefficiency(series)
    return abs(series.mean() - expected) / np.sqrt(variance * g / len(series))


def harmonic_z_scores(x: np.ndarray, sigma: float) -> np.ndarray:
    """z-scores of the mean and second moment of every coordinate in an isotropic Gaussian well."""
    return np.array([z for d in range(3) for z in (z_score(x[:, d], 0.0, sigma**2),
                                                   z_score(x[:, d] ** 2, sigma**2, 2 * sigma**4))])


# Peptides and backbone kernels (test_backbone.py, test_side_chains.py).

ELEMENTS = ["H", "C", "N", "O", "S"]


def minimized_peptide(sequence: str):
    """Minimized positions (N, 3) float64 tensor, element indices into :data:`ELEMENTS` and
    ``RES:ATOM`` names of capped ``sequence``."""
    import torch

    from openmm_timewarp import systems

    topology, positions = systems.peptide_from_sequence(sequence)
    context = mm.Context(systems.create_system(topology), mm.VerletIntegrator(0.001),
                         mm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    mm.LocalEnergyMinimizer.minimize(context)
    x = context.getState(getPositions=True).getPositions(asNumpy=True)._value
    types = torch.tensor([ELEMENTS.index(a.element.symbol) for a in topology.atoms()])
    names = [f"{a.residue.name}:{a.name}" for a in topology.atoms()]
    return torch.tensor(x, dtype=torch.float64), types, names


def perturbed_kernel(seed: int = 0, elements=ELEMENTS):
    """A backbone kernel whose density is far from uniform, as a trained one would be."""
    import torch

    from openmm_timewarp.proposals.backbone import BackboneProposal
    from openmm_timewarp.proposals.ramachandran import RamachandranDensity

    torch.manual_seed(seed)
    density = RamachandranDensity(len(elements) * 3 + 2, num_components=4, hidden=16)
    with torch.no_grad():
        density.net[-1].bias.add_(torch.randn_like(density.net[-1].bias))
    return BackboneProposal(elements, density).eval()
