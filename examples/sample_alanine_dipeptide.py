"""Sample ACE-ALA-NME at 310 K with the shipped Timewarp model: an ordinary OpenMM script in which
only the integrator line differs from plain MD.

    python examples/sample_alanine_dipeptide.py --steps 20000 --out alanine-timewarp

Writes ``trajectory.dcd``, ``log.csv`` (step, energy, temperature) and ``ramachandran.png`` to the
output folder and prints the acceptance rate and the basin populations next to the reference's.
"""
import argparse
import os

import openmm as mm
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator, analysis, systems

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPERATURE = 310 * unit.kelvin

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--pdb", default=os.path.join(HERE, "data", "ace-ala-nme.pdb"))
parser.add_argument("--model", default="ace-ala-nme", help="shipped model name or model file")
parser.add_argument("--steps", type=int, default=20000)
parser.add_argument("--out", default="alanine-timewarp")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
if os.path.exists(args.out):
    parser.error(f"{args.out} exists; choose another --out (nothing is overwritten)")
os.makedirs(args.out)

pdb = app.PDBFile(args.pdb)
system = systems.create_system(pdb.topology)  # amber14 + built-in OBC2, no constraints

integrator = TimewarpIntegrator(args.model, pdb.topology, TEMPERATURE, random_seed=args.seed)

simulation = app.Simulation(pdb.topology, system, integrator, mm.Platform.getPlatformByName("Reference"))
# Minimize, then 2 ps of MD so that bonds and angles start with their thermal spread.
simulation.context.setPositions(systems.thermalize(system, pdb.positions, TEMPERATURE, seed=args.seed))
simulation.reporters.append(app.DCDReporter(os.path.join(args.out, "trajectory.dcd"), 10))
simulation.reporters.append(app.StateDataReporter(os.path.join(args.out, "log.csv"), 100, step=True, time=True,
                                                  potentialEnergy=True, temperature=True, speed=True))
simulation.reporters.append(app.StateDataReporter(None, max(1, args.steps // 20), step=True, progress=True,
                                                  remainingTime=True, totalSteps=args.steps))
simulation.step(args.steps)

print(f"acceptance rate {integrator.getAcceptanceRate():.4f} "
      f"({integrator.getNumAccepted()} of {integrator.getNumProposed()} proposals)")
import mdtraj  # noqa: E402

trajectory = mdtraj.load_dcd(os.path.join(args.out, "trajectory.dcd"), top=args.pdb)
phi, psi = analysis.backbone_dihedrals(trajectory)
reference = analysis.load_reference("ace-ala-nme_310K")
for name, (p, error) in analysis.basin_populations(phi[:, 0], psi[:, 0]).items():
    p_ref, error_ref = reference.populations.get(name, (float("nan"), float("nan")))
    print(f"{name:8s} {p:.4f} +- {error:.4f}   reference {p_ref:.4f} +- {error_ref:.4f}")
analysis.plot_free_energy(os.path.join(args.out, "ramachandran.png"), phi[:, 0], psi[:, 0],
                          title=f"ACE-ALA-NME, Timewarp, {args.steps} steps")
print(f"wrote {args.out}/trajectory.dcd, log.csv, ramachandran.png")
