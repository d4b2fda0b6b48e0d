"""An umbrella restraint on psi combined with the TimewarpIntegrator.

A restraint is just another force: the integrator accepts each proposal against potential plus
restraint, so the chain samples the restrained ensemble exactly. Here a harmonic restraint holds
psi near -40 degrees (the alpha_R basin, about 39% of the unrestrained population), and the
sampled psi distribution is compared with the project's reference reweighted by the same
restraint, exp(-U_restraint / kT).

    python examples/restrained_sampling.py --steps 400 --out alanine-restrained
"""
import argparse
import math
import os

import numpy as np
import openmm as mm
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator, analysis, systems

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPERATURE = 310 * unit.kelvin

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--pdb", default=os.path.join(HERE, "data", "ace-ala-nme.pdb"))
parser.add_argument("--model", default="ace-ala-nme", help="shipped model name or model file")
parser.add_argument("--steps", type=int, default=400)
parser.add_argument("--psi0", type=float, default=-40.0, help="restraint centre, degrees")
parser.add_argument("--k", type=float, default=20.0, help="restraint constant, kJ/mol/rad^2")
parser.add_argument("--out", default="alanine-restrained")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
if os.path.exists(args.out):
    parser.error(f"{args.out} exists; choose another --out (nothing is overwritten)")
os.makedirs(args.out)

pdb = app.PDBFile(args.pdb)
system = systems.create_system(pdb.topology)
psi_atoms = analysis.backbone_dihedral_indices(pdb.topology)[1][0]
restraint = mm.CustomTorsionForce("0.5*k*d^2; d = atan2(sin(theta-theta0), cos(theta-theta0))")
restraint.addGlobalParameter("k", args.k)
restraint.addGlobalParameter("theta0", math.radians(args.psi0))
restraint.addTorsion(*[int(i) for i in psi_atoms], [])
system.addForce(restraint)

integrator = TimewarpIntegrator(args.model, pdb.topology, TEMPERATURE, random_seed=args.seed)
simulation = app.Simulation(pdb.topology, system, integrator, mm.Platform.getPlatformByName("Reference"))
# Minimize, then 2 ps of MD so that bonds and angles start with their thermal spread.
simulation.context.setPositions(systems.thermalize(system, pdb.positions, TEMPERATURE, seed=args.seed))
simulation.reporters.append(app.DCDReporter(os.path.join(args.out, "trajectory.dcd"), 1))
simulation.step(args.steps)
print(f"acceptance rate {integrator.getAcceptanceRate():.4f} over {integrator.getNumProposed()} proposals")

import mdtraj  # noqa: E402

phi, psi = analysis.backbone_dihedrals(mdtraj.load_dcd(os.path.join(args.out, "trajectory.dcd"), top=args.pdb))
phi, psi = phi[:, 0], psi[:, 0]

# Expected: the reference histogram times the restraint's Boltzmann factor, marginalised over phi.
reference = analysis.load_reference()
centres = 0.5 * (analysis.BIN_EDGES[1:] + analysis.BIN_EDGES[:-1])
kt = (unit.MOLAR_GAS_CONSTANT_R * TEMPERATURE).value_in_unit(unit.kilojoule_per_mole)
offset = np.radians((centres - args.psi0 + 180.0) % 360.0 - 180.0)
p_psi = reference.histogram.sum(axis=0) * np.exp(-0.5 * args.k * offset ** 2 / kt)
p_psi /= p_psi.sum()
sampled = np.histogram(psi, bins=analysis.BIN_EDGES)[0] / len(psi)
alpha_r = (centres >= -120.0) & (centres < 50.0)


def circular_mean(angles_deg: np.ndarray, weights: np.ndarray) -> float:
    radians = np.radians(angles_deg)
    return math.degrees(math.atan2((weights * np.sin(radians)).sum(), (weights * np.cos(radians)).sum()))


print(f"mean psi: sampled {circular_mean(psi, np.ones_like(psi)):.1f}, "
      f"expected {circular_mean(centres, p_psi):.1f} degrees")
print(f"share with -120 <= psi < 50: sampled {((psi >= -120) & (psi < 50)).mean():.3f}, "
      f"expected {p_psi[alpha_r].sum():.3f}")
print(f"ESS of sin(psi): {analysis.effective_sample_size(np.sin(np.radians(psi))):.0f} of {len(psi)} frames")
print(f"histogram total variation to expected: {0.5 * np.abs(sampled - p_psi).sum():.3f}")
