"""A TITO surrogate trajectory of ACE-ALA-NME: an ordinary OpenMM ``Simulation`` whose steps are lag moves.

    python examples/tito_trajectory.py --lag-ps 1000 --steps 2000 --out alanine-tito

First an exact Timewarp chain (``--equilibrium-steps`` of the default model) gives the basin
populations the TITO chain is made to keep (``basin_populations``; ``docs/tito.md``). Then each
step is one move of ``--lag-ps`` drawn from the TITO model, so the reporters' time axis is
simulated time (here 2 microseconds for 2,000 steps), and a hybrid Monte Carlo move after each
relaxes bonds and angles.  The shipped ``dipeptides-tito`` model is used unless ``--model`` names
another (``docs/tito.md``; its measured quality is in the README).  Writes ``trajectory.dcd``, ``log.csv`` and
``ramachandran.png`` and prints the basin populations next to the reference's.  TITO is a
surrogate of the dynamics, not an exact sampler: use ``TimewarpIntegrator`` for equilibrium
averages.
"""
import argparse
import os

import openmm as mm
from openmm import app, unit

from openmm_timewarp import TitoIntegrator, analysis, systems
from openmm_timewarp.run import sample
from openmm_timewarp.run.tito import basin_table

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPERATURE = 310 * unit.kelvin

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--pdb", default=os.path.join(HERE, "data", "ace-ala-nme.pdb"))
parser.add_argument("--model", default="dipeptides-tito", help="TITO model file or shipped name (default "
                    "dipeptides-tito)")
parser.add_argument("--lag-ps", type=float, default=1000.0, help="simulated time per step, within the model's range")
parser.add_argument("--steps", type=int, default=2000)
parser.add_argument("--out", default="alanine-tito")
parser.add_argument("--seed", type=int, default=1)
parser.add_argument("--equilibrium-steps", type=int, default=20000,
                    help="steps of the exact chain for the basin populations (0: the model's own)")
args = parser.parse_args()
if os.path.exists(args.out):
    parser.error(f"{args.out} exists; choose another --out (nothing is overwritten)")
os.makedirs(args.out)

populations = None
if args.equilibrium_steps > 0:
    exact = sample(args.pdb, steps=args.equilibrium_steps, frame_every=1, seed=args.seed)
    populations = basin_table(exact.populations, exact.summary["n_frames"])
    print(f"exact chain of {args.equilibrium_steps} steps: basin populations {populations}")
pdb = app.PDBFile(args.pdb)
system = systems.create_system(pdb.topology)
integrator = TitoIntegrator(args.model, pdb.topology, TEMPERATURE, args.lag_ps * unit.picosecond, random_seed=args.seed,
                            basin_populations=populations)
simulation = app.Simulation(pdb.topology, system, integrator, mm.Platform.getPlatformByName("Reference"))
simulation.context.setPositions(systems.thermalize(system, pdb.positions, TEMPERATURE, seed=args.seed))
simulation.reporters.append(app.DCDReporter(os.path.join(args.out, "trajectory.dcd"), 1))
every = max(1, min(100, args.steps // 10))
simulation.reporters.append(app.StateDataReporter(os.path.join(args.out, "log.csv"), every, step=True, time=True,
                                                  potentialEnergy=True, speed=True))
simulation.reporters.append(app.StateDataReporter(None, max(1, args.steps // 10), step=True, progress=True,
                                                  remainingTime=True, totalSteps=args.steps))
simulation.step(args.steps)

import mdtraj  # noqa: E402

phi, psi = analysis.backbone_dihedrals(mdtraj.load_dcd(os.path.join(args.out, "trajectory.dcd"), top=args.pdb))
analysis.plot_free_energy(os.path.join(args.out, "ramachandran.png"), phi[:, 0], psi[:, 0],
                          title=f"ACE-ALA-NME, TITO at {args.lag_ps:g} ps per step")
print(f"{args.steps} steps of {args.lag_ps:g} ps ({args.steps * args.lag_ps / 1000:g} ns); moves passing the "
      f"energy/chirality check: {integrator.getAcceptanceRate():.3f}")
reference = analysis.load_reference("ace-ala-nme_310K")
for name, (p, error) in analysis.basin_populations(phi[:, 0], psi[:, 0]).items():
    print(f"{name:8s} {p:.4f} +- {error:.4f}   reference {reference.populations[name][0]:.4f}")
