"""Well-tempered metadynamics on phi and psi driven by the TimewarpIntegrator, reweighted back.

``openmm.app.Metadynamics`` adds its bias as an ordinary force, and the integrator accepts each
proposal against the full energy (potential + bias), so the chain samples the biased ensemble
exactly. Phase 1 builds the bias (a hill every ``--hill-every`` Timewarp steps); phase 2 keeps it
frozen, and each frame of phase 2 gets the weight exp(+V(phi, psi) / kT), which recovers the
unbiased populations exactly (up to statistics).

    python examples/metadynamics_with_timewarp.py --build-steps 400 --production-steps 400 --out alanine-metad

Writes ``phase2.npz`` (phi, psi in degrees, bias in kJ/mol per frame) and prints the reweighted
basin populations next to the project's reference.
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
parser.add_argument("--build-steps", type=int, default=400, help="Timewarp steps that deposit hills")
parser.add_argument("--production-steps", type=int, default=400, help="Timewarp steps with the bias frozen")
parser.add_argument("--hill-every", type=int, default=2, help="Timewarp steps between hills")
parser.add_argument("--out", default="alanine-metad")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
if os.path.exists(args.out):
    parser.error(f"{args.out} exists; choose another --out (nothing is overwritten)")
os.makedirs(args.out)

pdb = app.PDBFile(args.pdb)
system = systems.create_system(pdb.topology)
phi_indices, psi_indices = analysis.backbone_dihedral_indices(pdb.topology)
phi_atoms, psi_atoms = phi_indices[0], psi_indices[0]  # the one residue of a dipeptide


def torsion(atoms) -> mm.CustomTorsionForce:
    force = mm.CustomTorsionForce("theta")
    force.addTorsion(*[int(i) for i in atoms], [])
    return force


variables = [app.BiasVariable(torsion(atoms), -math.pi, math.pi, math.radians(20), periodic=True, gridWidth=36)
             for atoms in (phi_atoms, psi_atoms)]
np.random.seed(args.seed)  # Metadynamics draws its file id from numpy's global generator
meta = app.Metadynamics(system, variables, TEMPERATURE, biasFactor=6.0, height=1.5 * unit.kilojoule_per_mole,
                        frequency=args.hill_every)
bias_group = system.getForce(system.getNumForces() - 1).getForceGroup()  # Metadynamics' force, added last

integrator = TimewarpIntegrator(args.model, pdb.topology, TEMPERATURE, random_seed=args.seed)
simulation = app.Simulation(pdb.topology, system, integrator, mm.Platform.getPlatformByName("Reference"))
# Minimize, then 2 ps of MD so that bonds and angles start with their thermal spread.
simulation.context.setPositions(systems.thermalize(system, pdb.positions, TEMPERATURE, seed=args.seed))

meta.step(simulation, args.build_steps)
print(f"phase 1: {args.build_steps} steps, acceptance {integrator.getAcceptanceRate():.4f}")
integrator.resetStatistics()

# Phase 2: the bias stays in the System but no hills are added (plain simulation.step).
frames = np.empty((args.production_steps, 3))
for i in range(args.production_steps):
    simulation.step(1)
    frames[i, :2] = np.degrees(meta.getCollectiveVariables(simulation))
    frames[i, 2] = simulation.context.getState(getEnergy=True, groups={bias_group}).getPotentialEnergy().value_in_unit(
        unit.kilojoule_per_mole)
print(f"phase 2: {args.production_steps} steps, acceptance {integrator.getAcceptanceRate():.4f}")
np.savez(os.path.join(args.out, "phase2.npz"), phi=frames[:, 0], psi=frames[:, 1], bias=frames[:, 2])

kt = (unit.MOLAR_GAS_CONSTANT_R * TEMPERATURE).value_in_unit(unit.kilojoule_per_mole)
weights = np.exp((frames[:, 2] - frames[:, 2].max()) / kt)
labels = analysis.assign_basins(frames[:, 0], frames[:, 1])
reference = analysis.load_reference()
print(f"{'basin':8s} {'reweighted':>10s} {'reference':>16s}")
for index, name in enumerate(analysis.BASIN_NAMES):
    ref, err = reference.populations[name]
    share = weights[labels == index].sum() / weights.sum()
    print(f"{name:8s} {share:10.3f} {ref:10.3f} +- {err:.3f}")
print(f"effective frames after reweighting: {weights.sum() ** 2 / (weights ** 2).sum():.0f} of {len(weights)}")
