"""Temperature replica exchange with Timewarp moves: OpenMM's own ``ReplicaExchangeSampler``, unchanged.

The sampler sets each replica's temperature on the integrator before moving it, and the
TimewarpIntegrator reads the temperature at every step (its Metropolis-Hastings test and its hybrid
Monte Carlo), so each replica's moves are exact at its own temperature and the exchanges are
exact: the 310 K state samples the Boltzmann distribution. Higher temperatures accept the pivots
that cost the 310 K chain too much (on helical tetrapeptides, breaking hydrogen bonds), and the
exchanges bring those conformations down.

    python examples/replica_exchange_with_timewarp.py --sequence CHRN --t-max 450 --replicas 4 \\
        --iterations 2000 --steps 20 --out chrn-remd

Writes ``states.npz``: per iteration, the 310 K state's phi and psi (degrees, one column per
residue) and which replica held it; prints the exchange statistics and each residue's basin
populations at 310 K.
"""
import argparse
import os
import random
import time

import numpy as np
import openmm as mm
from openmm import app, unit

from openmm_timewarp import TimewarpIntegrator, analysis, systems

HERE = os.path.dirname(os.path.abspath(__file__))

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
source = parser.add_mutually_exclusive_group()
source.add_argument("--pdb", help="a capped peptide (default: examples/data/ace-ala-nme.pdb)")
source.add_argument("--sequence", help="one-letter residues between ACE and NME, built offline, e.g. CHRN")
parser.add_argument("--model", default="dipeptides-compiled", help="shipped model name or model file")
parser.add_argument("--temperature", type=float, default=310.0, help="the state sampled for results, K")
parser.add_argument("--t-max", type=float, default=450.0, help="top of the geometric ladder, K")
parser.add_argument("--replicas", type=int, default=4)
parser.add_argument("--iterations", type=int, default=500)
parser.add_argument("--steps", type=int, default=20, help="Timewarp steps per replica and iteration")
parser.add_argument("--platform", default="Reference")
parser.add_argument("--out", default="timewarp-remd")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()
if args.replicas < 2 or args.t_max <= args.temperature:
    parser.error("need at least 2 replicas and --t-max above --temperature")
if os.path.exists(args.out):
    parser.error(f"{args.out} exists; choose another --out (nothing is overwritten)")

if args.sequence:
    topology, positions = systems.peptide_from_sequence(args.sequence, seed=args.seed)
else:
    pdb = app.PDBFile(args.pdb or os.path.join(HERE, "data", "ace-ala-nme.pdb"))
    topology, positions = pdb.topology, pdb.positions
temperature = args.temperature * unit.kelvin
system = systems.create_system(topology)
ladder = np.geomspace(args.temperature, args.t_max, args.replicas)
print("ladder: " + ", ".join(f"{t:.0f}" for t in ladder) + " K")

integrator = TimewarpIntegrator(args.model, topology, temperature, random_seed=args.seed)
simulation = app.Simulation(topology, system, integrator, mm.Platform.getPlatformByName(args.platform))
simulation.context.setPositions(systems.thermalize(system, positions, temperature, seed=args.seed))
random.seed(args.seed)  # the sampler draws its exchanges from Python's random module
sampler = app.ReplicaExchangeSampler([{"temperature": t * unit.kelvin} for t in ladder], simulation, args.steps)

os.makedirs(args.out)
phi_rows, psi_rows, holders = [], [], []
began = time.time()
for iteration in range(args.iterations):
    sampler.simulate(1)
    holder = sampler.replicaStateIndex.index(0)
    frame = sampler.replicaConformation[holder].getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    phi, psi = analysis.backbone_dihedrals(frame[None], topology)
    phi_rows.append(phi[0])
    psi_rows.append(psi[0])
    holders.append(holder)
    if (iteration + 1) % max(1, args.iterations // 10) == 0:
        print(f"iteration {iteration + 1}/{args.iterations}, {time.time() - began:.0f} s, "
              f"acceptance {integrator.getAcceptanceRate():.3f}", flush=True)
        # What is done is kept: an interrupted run leaves the iterations so far.
        np.savez(os.path.join(args.out, "states.npz"), phi=np.array(phi_rows), psi=np.array(psi_rows),
                 holder=np.array(holders), temperatures=ladder)
np.savez(os.path.join(args.out, "states.npz"), phi=np.array(phi_rows), psi=np.array(psi_rows),
         holder=np.array(holders), temperatures=ladder)

phi, psi = np.array(phi_rows), np.array(psi_rows)
print(f"{args.iterations} iterations in {time.time() - began:.0f} s; another replica took over "
      f"{args.temperature:.0f} K after {np.mean(np.diff(holders) != 0):.2f} of them")
print(f"{'residue':8s} " + " ".join(f"{name:>8s}" for name in analysis.BASIN_NAMES))
for r in range(phi.shape[1]):
    labels = analysis.assign_basins(phi[:, r], psi[:, r])
    print(f"{r + 1:<8d} " + " ".join(f"{np.mean(labels == b):8.3f}" for b in range(len(analysis.BASIN_NAMES))))
