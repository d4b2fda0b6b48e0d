"""The metadynamics reference script: choice of biased torsions and the frozen bias it samples under."""

import importlib.util
import math
import os

import numpy as np
import openmm
import pytest

from openmm_timewarp.analysis.dihedrals import backbone_dihedrals
from openmm_timewarp.systems import create_system, peptide_from_sequence

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "make_reference.py")


@pytest.fixture(scope="module")
def make_reference():
    spec = importlib.util.spec_from_file_location("make_reference", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pro_ser():
    return peptide_from_sequence("PS", seed=1)


def test_default_torsions_skip_the_proline_phi(make_reference, pro_ser):
    topology, _ = pro_ser
    assert [name for name, _ in make_reference.bias_torsions(topology)] == ["phi2", "psi1"]


def test_named_torsions_and_unknown_names(make_reference, pro_ser):
    topology, _ = pro_ser
    chosen = make_reference.bias_torsions(topology, ["psi1", "phi2", "psi2"])
    assert [name for name, _ in chosen] == ["psi1", "phi2", "psi2"]
    with pytest.raises(ValueError, match="psi3"):
        make_reference.bias_torsions(topology, ["psi3"])


@pytest.mark.parametrize("n_torsions", [2, 3])
def test_frozen_bias_is_the_grid_function_of_the_named_torsions(make_reference, pro_ser, n_torsions):
    """A smooth periodic bias on the grid must come back as the same function of the right torsions,
    in the right order (a transposed grid or a swapped torsion changes the energy by kJ/mol)."""
    topology, positions = pro_ser
    names = ["psi1", "phi2", "psi2"][:n_torsions]
    torsions = make_reference.bias_torsions(topology, names)
    grid = np.linspace(-math.pi, math.pi, 37)
    grid[-1] = grid[0]  # periodic splines need equal end values exactly, as Metadynamics' grids have
    axes = np.meshgrid(*[grid] * n_torsions, indexing="ij")  # axes[k] is torsion k

    def function(angles):
        return sum((k + 1) * np.cos(a - 0.5 * k) for k, a in enumerate(angles))

    bias = function(axes).transpose()  # Metadynamics' layout: the first torsion varies fastest
    system = create_system(topology)
    force = make_reference.static_bias_force(bias, torsions)
    force.setForceGroup(31)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    energy = context.getState(getEnergy=True, groups={31}).getPotentialEnergy()._value
    phi, psi = backbone_dihedrals(np.asarray(positions._value)[None], topology)
    values = {"phi1": phi[0, 0], "psi1": psi[0, 0], "phi2": phi[0, 1], "psi2": psi[0, 1]}
    expected = function([math.radians(values[name]) for name in names])
    assert energy == pytest.approx(expected, abs=0.02)


def test_residue_bias_is_the_same_table_at_every_residue(make_reference, pro_ser):
    topology, positions = pro_ser
    grid = np.linspace(-math.pi, math.pi, 37)
    grid[-1] = grid[0]
    phi_grid, psi_grid = np.meshgrid(grid, grid, indexing="ij")

    def function(phi, psi):
        return np.cos(phi) + 2.0 * np.sin(psi + 0.3)

    system = create_system(topology)
    force = make_reference.residue_bias_force(function(phi_grid, psi_grid).T.copy(), topology)  # [psi, phi]
    force.setForceGroup(31)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    energy = context.getState(getEnergy=True, groups={31}).getPotentialEnergy()._value
    phi, psi = np.radians(backbone_dihedrals(np.asarray(positions._value)[None], topology))
    assert energy == pytest.approx(float(function(phi[0], psi[0]).sum()), abs=0.02)


def test_residue_bias_grid_lifts_alanine_basins(make_reference):
    """-(1 - 1/gamma) F of ACE-ALA-NME: zero at the most populated corner, periodic, the capped
    barrier regions most negative, and the phi > 0 basin above the phi = 0 barrier."""
    args = make_reference.parse_args(["--sequence", "AA", "--residue-bias", "--bias-factor", "3"])[0]
    bias = make_reference.residue_bias_grid(args)
    assert bias.shape == (37, 37)
    assert bias.max() == 0.0
    assert bias.min() == pytest.approx(-2.0 / 3.0 * 35.0)
    np.testing.assert_array_equal(bias[0], bias[-1])
    np.testing.assert_array_equal(bias[:, 0], bias[:, -1])

    def at(phi_deg, psi_deg):
        return bias[(psi_deg + 180) // 10, (phi_deg + 180) // 10]

    assert at(-80, 160) > -3.0 and at(-70, -40) > -3.0  # beta and alpha_R: near the top
    assert at(0, -30) < at(60, 30) < at(-70, -40)  # barrier < alpha_L < alpha_R
